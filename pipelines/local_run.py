"""Run the whole pipeline on this machine through KFP's local runner (`kfp.local`), on the
bundled reference data, with an embedded SQLite MLMD store and the local approval backend."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_metadata import metadata_store as mlmd

from aiact.lineage import LineageStore
from aiact.refdata import write_reference_dataset
from aiact.resume import ResumePlan
from aiact.stage import source_commit
from pipelines.run_output import reporting
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
    # Your own data (`aiact run-local --source --use-case ...`): with `source_uri` no reference
    # data is generated (rows .. corruption do not apply). `use_case_uri` '' = the bundled
    # credit use case; `policy_path` (a YAML file), `data_card_uri` and `model_name` override
    # the use case's policy.yaml, data_card.yaml and model_name when given.
    source_uri: str = ""
    use_case_uri: str = ""
    policy_path: Path | None = None
    data_card_uri: str = ""
    model_name: str = ""
    environment: str = "development"
    overrides: dict[str, Any] = field(default_factory=dict)
    # Output (the CLI turns both on unless --verbose): send the executors' logs to
    # `WORKDIR/logs/<submission>.log` instead of stdout/stderr, and print one live line per
    # stage to the terminal.
    log_to_file: bool = False
    progress: bool = False

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
    log_path: Path | None = None


def _as_uri(value: str) -> str:
    """A local path made absolute (the stages run in their own processes); URIs unchanged."""
    return value if "://" in value else str(Path(value).resolve())


def _source(config: LocalRunConfig, workdir: Path) -> tuple[str, str]:
    """The run's source and data card: the user's (`source_uri`; '' card = the use case's),
    else freshly generated credit reference data and its card."""
    card = _as_uri(config.data_card_uri) if config.data_card_uri else ""
    if config.source_uri:
        return _as_uri(config.source_uri), card
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
    return str(reference.data_path), card or str(reference.data_card_path)


def _use_case_arguments(config: LocalRunConfig) -> dict[str, Any]:
    """`use_case_uri`, `gate_policy` and `model_name`, checked here first so that a bad use
    case or policy is one line before any stage starts (every stage checks them again)."""
    import tempfile

    import yaml

    from aiact.usecase import POLICY, UseCaseError, load_use_case, resolve_policy

    use_case_uri = _as_uri(config.use_case_uri) if config.use_case_uri else ""
    with tempfile.TemporaryDirectory() as scratch:
        use_case = load_use_case(use_case_uri, Path(scratch))
    arguments: dict[str, Any] = {
        "use_case_uri": use_case_uri,
        "model_name": config.model_name or use_case.model_name,
    }
    if config.policy_path is not None:
        path = config.policy_path
        try:
            policy = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise UseCaseError(f"{path.name}: not valid YAML: {exc}") from None
        if not isinstance(policy, dict):
            raise UseCaseError(f"{path.name}: must be a mapping with 'version'")
        try:
            resolve_policy(policy, use_case)
        except UseCaseError as exc:
            raise UseCaseError(f"{path.name}{str(exc).removeprefix(POLICY)}") from None
        arguments["gate_policy"] = policy
    return arguments


def run_local(config: LocalRunConfig) -> LocalRunResult:
    """Generate the reference data (unless `source_uri` names the user's own), then run all
    eight stages with `kfp.local`."""
    workdir = config.workdir.resolve()
    source_uri, data_card_uri = _source(config, workdir)
    use_case_arguments = _use_case_arguments(config)
    spec_hash = embedded_sha256(compile_documents())
    arguments: dict[str, Any] = {
        "source_uri": source_uri,
        "data_card_uri": data_card_uri,
        **use_case_arguments,
        "metadata_uri": config.metadata_uri,
        "environment": config.environment,
        "code_commit": source_commit(Path(__file__).resolve().parent.parent),
        "pipeline_spec_sha256": spec_hash,
        "approval_backend": config.approvals_uri,
        "requested_by": "aiact-run-local",
        "demo_approver": config.demo_approver,
        "approval_timeout_s": float(config.approval_timeout_s),
        "ledger_uri": config.ledger_uri,
        **config.overrides,
    }
    return _submit(config, arguments, spec_hash)


@dataclass(frozen=True)
class ResumeResult:
    """A resumed run: the plan (the old run, where it stopped) and the new run's result."""

    plan: ResumePlan
    withdrawn: list[str]
    result: LocalRunResult


def resume_local(config: LocalRunConfig, run_id: str) -> ResumeResult:
    """Re-run a failed or killed run of this workdir's store from its first incomplete stage:
    a new `kfp.local` run with the arguments the old one was submitted with (the code commit
    and spec hash taken afresh), whose stages before that one reuse the old run's executions
    (`aiact.reuse`); the old run is marked abandoned first and its pending approval withdrawn.
    """
    from aiact import resume

    lineage = LineageStore.connect(config.metadata_uri)
    plan = resume.plan(lineage, run_id)
    recorded = str(plan.arguments.get("metadata_uri", ""))
    if recorded != config.metadata_uri:
        raise resume.ResumeError(
            f"run {run_id} recorded into {recorded or '(none)'}, not {config.metadata_uri}: "
            "resume it with the workdir it ran in"
        )
    spec_hash = embedded_sha256(compile_documents())
    arguments = {
        **plan.arguments,
        "code_commit": source_commit(Path(__file__).resolve().parent.parent),
        "pipeline_spec_sha256": spec_hash,
    }
    withdrawn = resume.abandon(lineage, plan)
    result = _submit(config, arguments, spec_hash, resumes=run_id)
    lineage.update_run(run_id, {resume.RESUMED_BY: result.run_id})
    lineage.update_run(result.run_id, {resume.RESUMES: run_id})
    return ResumeResult(plan=plan, withdrawn=withdrawn, result=result)


def _submit(
    config: LocalRunConfig, arguments: dict[str, Any], spec_hash: str, resumes: str = ""
) -> LocalRunResult:
    """Record the submission (its arguments, for `aiact resume`) and run the pipeline."""
    from kfp import local

    from aiact import resume
    from pipelines.compliance_pipeline import compliance_pipeline

    workdir = config.workdir.resolve()
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(workdir / "pipeline_root"),
        raise_on_error=True,
    )
    lineage = LineageStore.connect(config.metadata_uri)
    submission = uuid.uuid4().hex
    arguments = {**arguments, "submission_id": submission}
    lineage.record_submission(
        submission,
        {
            resume.ARGUMENTS: json.dumps(
                {k: v for k, v in arguments.items() if k != "submission_id"}, sort_keys=True
            ),
            "workdir": str(workdir),
            "submitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **resume.submitter(),
            **({resume.RESUMES: resumes} if resumes else {}),
        },
    )
    error = ""
    started = time.time()
    log_path = workdir / "logs" / f"{submission}.log" if config.log_to_file else None
    with reporting(
        log_path=log_path,
        progress=config.progress,
        metadata_uri=config.metadata_uri,
        submission_id=submission,
        approvals_uri=config.approvals_uri,
    ) as monitor:
        try:
            compliance_pipeline(**arguments)
        except RuntimeError as exc:
            error = str(exc)
        if monitor is not None:
            monitor.stop(error)
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
        log_path=log_path,
    )
