"""Run the whole pipeline on this machine through KFP's local runner (`kfp.local`), on the
bundled reference data, with an embedded SQLite MLMD store and the local approval backend."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_metadata import metadata_store as mlmd

from aiact.lineage import LineageStore
from aiact.refdata import write_reference_dataset
from aiact.stage import source_commit
from pipelines.spec import compile_documents, embedded_sha256


@dataclass(frozen=True)
class LocalRunConfig:
    """Everything a local run needs; paths live under `workdir`."""

    workdir: Path
    demo_approver: str = ""
    approval_timeout_s: float = 3600.0
    rows: int = 5000
    data_seed: int = 7
    label_bias: float = 0.0
    drift: float = 0.0
    corruption: float = 0.0
    environment: str = "development"
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def metadata_uri(self) -> str:
        """The embedded MLMD store."""
        return f"sqlite://{(self.workdir / 'mlmd.sqlite').resolve()}"

    @property
    def approvals_uri(self) -> str:
        """The local approval backend."""
        return f"local:{(self.workdir / 'approvals').resolve()}"

    @property
    def ledger_uri(self) -> str:
        """The local deployment ledger."""
        return f"file://{(self.workdir / 'ledger').resolve()}"


@dataclass(frozen=True)
class LocalRunResult:
    """How a local run ended and where its evidence lies."""

    run_id: str
    succeeded: bool
    error: str
    pipeline_spec_sha256: str


def run_local(config: LocalRunConfig) -> LocalRunResult:
    """Generate the reference data, then run all eight stages with `kfp.local`."""
    from kfp import local

    from pipelines.compliance_pipeline import compliance_pipeline

    workdir = config.workdir.resolve()
    # One folder per generator setting, so a later run never overwrites a source an earlier
    # run's lineage points at.
    variant = (
        f"rows{config.rows}-seed{config.data_seed}-bias{config.label_bias:g}"
        f"-drift{config.drift:g}-corruption{config.corruption:g}"
    )
    reference = write_reference_dataset(
        workdir / "data" / variant,
        rows=config.rows,
        seed=config.data_seed,
        label_bias=config.label_bias,
        drift=config.drift,
        corruption=config.corruption,
    )
    spec_hash = embedded_sha256(compile_documents())
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(workdir / "pipeline_root"),
        raise_on_error=True,
    )
    lineage = LineageStore.connect(config.metadata_uri)
    submission = uuid.uuid4().hex
    arguments: dict[str, Any] = {
        "source_uri": str(reference.data_path),
        "data_card_uri": str(reference.data_card_path),
        "metadata_uri": config.metadata_uri,
        "environment": config.environment,
        "code_commit": source_commit(Path(__file__).resolve().parent.parent),
        "pipeline_spec_sha256": spec_hash,
        "approval_backend": config.approvals_uri,
        "requested_by": "aiact-run-local",
        "demo_approver": config.demo_approver,
        "approval_timeout_s": float(config.approval_timeout_s),
        "ledger_uri": config.ledger_uri,
        "submission_id": submission,
        **config.overrides,
    }
    error = ""
    started = time.time()
    try:
        compliance_pipeline(**arguments)
    except RuntimeError as exc:
        error = str(exc)
    # This submission's own run, found by the id it passed: another run-local on the same
    # store may have started runs meanwhile.
    mine = lineage.store.get_contexts(
        list_options=mlmd.ListOptions(
            filter_query=f"custom_properties.submission_id.string_value = '{submission}'"
        )
    )
    if not mine:
        raise RuntimeError(
            f"the pipeline recorded no run in {config.metadata_uri} ({error or 'no error'}); "
            f"started {started:.0f}"
        )
    return LocalRunResult(
        run_id=mine[0].name,
        succeeded=not error,
        error=error,
        pipeline_spec_sha256=spec_hash,
    )
