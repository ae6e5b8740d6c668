"""The runtime every stage executor shares: lineage recording, timing and structured logs.

A stage runs inside `stage_execution(...)`. It declares what it read and wrote; when the block
ends the execution is recorded in MLMD as COMPLETE, or as FAILED with the error and every output
written so far (a failed gate's evidence is never lost), and the exception propagates so that
KFP fails the task and nothing downstream runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aiact.custody import Custody, CustodyError, Verifier, short
from aiact.hashing import canonical_json, sha256_json, sha256_path
from aiact.lineage import (
    GATE_POLICY,
    ArtifactRecord,
    LineageStore,
    PropertyValue,
    RunInfo,
    properties_of,
)
from aiact.observability import log_event
from aiact.policy import GateFailed, policy_sha256


@dataclass
class StageContext:
    """What one stage execution read, wrote and measured."""

    stage: str
    run: RunInfo
    lineage: LineageStore
    inputs: list[ArtifactRecord] = field(default_factory=list)
    outputs: list[ArtifactRecord] = field(default_factory=list)
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    artifact_ids: dict[str, int] = field(default_factory=dict)
    execution_id: int = 0
    _verifier: Verifier | None = None

    @property
    def verifier(self) -> Verifier:
        """The chain-of-custody verifier of this execution (one per stage, files re-hashed)."""
        if self._verifier is None:
            self._verifier = Verifier(self.lineage)
        return self._verifier

    def verified(self, custody: Custody) -> Custody:
        """Record a verified upstream chain on this execution."""
        self.properties["custody_through"] = custody.through
        self.properties["custody_sha256"] = custody.sha256()
        return custody

    def require_same(self, what: str, given: str, expected: str, source: str) -> None:
        """Refuse an input that is not the one the verified chain produced."""
        if given != expected:
            raise CustodyError(
                f"{what} {short(given)} is not the one {source} produced in run "
                f"{self.run.run_id} ({short(expected)}): inputs are cross-wired"
            )

    def read(
        self,
        type_name: str,
        path: Path,
        uri: str,
        role: str,
        *,
        upstream: bool = True,
        properties: Mapping[str, PropertyValue] | None = None,
    ) -> ArtifactRecord:
        """Declare an input. An upstream input must have been produced by a completed stage."""
        digest = sha256_path(path)
        if upstream:
            self.lineage.require_passed(type_name, digest)
        record = ArtifactRecord(type_name, uri, digest, role, dict(properties or {}))
        self.inputs.append(record)
        return record

    def wrote(
        self,
        type_name: str,
        path: Path,
        uri: str,
        role: str,
        properties: Mapping[str, PropertyValue] | None = None,
        *,
        content_sha256: str = "",
    ) -> ArtifactRecord:
        """Declare an output; its content hash (computed here unless the caller already has it)
        becomes its identity in MLMD."""
        digest = content_sha256 or sha256_path(path)
        record = ArtifactRecord(type_name, uri, digest, role, dict(properties or {}))
        self.outputs.append(record)
        return record

    def record_statistics(self, when: str, digest: Mapping[str, Any]) -> None:
        """Keep a statistics digest (`when` = before/after the step) and its hash on the
        execution, so an auditor sees what the step changed."""
        self.properties[f"statistics_{when}"] = canonical_json(dict(digest)).decode()
        self.properties[f"statistics_{when}_sha256"] = sha256_json(dict(digest))

    def read_policy(self, policy: Mapping[str, Any]) -> str:
        """Declare the gate policy as an input; its full text is kept on the artefact."""
        digest = policy_sha256(policy)
        self.inputs.append(
            ArtifactRecord(
                GATE_POLICY,
                f"aiact-policy:sha256:{digest}",
                digest,
                "gate_policy",
                {
                    "policy_json": canonical_json(dict(policy)).decode(),
                    "policy_version": policy["version"],
                },
            )
        )
        self.properties["policy_sha256"] = digest
        return digest


@contextmanager
def stage_execution(stage: str, run: RunInfo, metadata_uri: str) -> Iterator[StageContext]:
    """Run a stage body and record its execution, whatever its outcome."""
    lineage = LineageStore.connect(metadata_uri)
    stored = properties_of(lineage.ensure_run(run))
    # The run context is authoritative: the first stage fixed environment, commit and spec hash.
    run = RunInfo(
        run_id=run.run_id,
        **{
            f.name: str(stored[f.name])
            for f in fields(RunInfo)
            if f.name in stored and f.name != "run_id"
        },
    )
    context = StageContext(stage=stage, run=run, lineage=lineage)
    started = time.time()
    log_event(stage, "started", run_id=run.run_id)
    error: BaseException | None = None
    try:
        yield context
    except BaseException as exc:
        error = exc
        raise
    finally:
        finished = time.time()
        context.properties.update(
            started_at_ms=int(started * 1000),
            duration_s=round(finished - started, 3),
            outcome="completed" if error is None else type(error).__name__,
        )
        if error is not None:
            context.properties["error"] = str(error)[:4000]
        if isinstance(error, GateFailed):
            context.properties["gate_breaches"] = "; ".join(
                check.name for check in error.result.breaches
            )
        if context._verifier is not None:
            context._verifier.close()
        context.execution_id, context.artifact_ids = lineage.record_execution(
            run=run,
            stage=stage,
            inputs=context.inputs,
            outputs=context.outputs,
            succeeded=error is None,
            properties=context.properties,
        )
        log_event(
            stage,
            "finished" if error is None else "failed",
            run_id=run.run_id,
            execution_id=context.execution_id,
            duration_s=context.properties["duration_s"],
            error=str(error) if error else None,
            outputs={r.role: r.content_sha256[:12] for r in context.outputs},
        )


ENVIRONMENT_ENV = "AIACT_ENVIRONMENT"
PIPELINE_NAME = "aiact-compliance-pipeline"


def resolve_environment(environment: str) -> str:
    """The target environment: the parameter, else AIACT_ENVIRONMENT, else development."""
    return environment or os.environ.get(ENVIRONMENT_ENV, "") or "development"


def run_info(
    run_id: str, code_commit: str = "", pipeline_spec_sha256: str = "", environment: str = ""
) -> RunInfo:
    """The run identity a stage records under; the commit falls back to the image's own."""
    return RunInfo(
        run_id=run_id,
        pipeline_name=PIPELINE_NAME,
        code_commit=code_commit or os.environ.get("AIACT_CODE_COMMIT", ""),
        pipeline_spec_sha256=pipeline_spec_sha256,
        environment=resolve_environment(environment),
    )
