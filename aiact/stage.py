"""The runtime every stage executor shares: lineage recording, timing and structured logs.

A stage runs inside `stage_execution(...)`. It declares what it read and wrote; when the block
ends the execution is recorded in MLMD as COMPLETE, or as FAILED with the error and every output
written so far (a failed gate's evidence is never lost), and the exception propagates so that
KFP fails the task and nothing downstream runs.

Every output is also kept as a content-addressed object when the execution is recorded
(`aiact.storage.keep_object`). A reusable stage (data preparation, feature engineering,
training) calls `StageContext.reuse(...)` once its inputs are declared and verified: a completed
execution with the same reuse key (`aiact.reuse`) is then reused, and the new execution records
`reused_execution_id`, `reused_from_run` and `reuse_key`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from aiact.custody import Custody, CustodyError, Verifier, short, verdict_stage
from aiact.hashing import canonical_json, sha256_json, sha256_path
from aiact.lineage import (
    GATE_POLICY,
    GATE_VERDICT,
    OBJECT_URI,
    ArtifactRecord,
    LineageStore,
    PropertyValue,
    RunInfo,
    properties_of,
)
from aiact.observability import log_event
from aiact.platform import (
    PlatformConfig,
    PlatformError,
    enforce_policy_floor,
    load_platform,
    resolve_run_settings,
)
from aiact.policy import GateFailed, GateResult, policy_sha256
from aiact.runsummary import update_run_summary
from aiact.storage import StorageError


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
    platform: PlatformConfig | None = None
    _verifier: Verifier | None = None
    # Local paths of declared outputs by role, and of the task's other output files a reusable
    # stage named (kept as content-addressed objects when the execution is recorded).
    _output_paths: dict[str, Path] = field(default_factory=dict)
    _reuse_files: dict[str, Path] = field(default_factory=dict)
    _reused: Any = None
    _raise_after: BaseException | None = None

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

    def verify_upstream(
        self,
        *,
        through: str,
        model: str = "",
        dataset: str = "",
        feature_set: str = "",
        transform: str = "",
        policy: str = "",
        **consumed: str,
    ) -> Custody:
        """Verify the chain this stage depends on, in this run, through stage `through`, and
        that every other input it was handed (`role=digest`, e.g. evaluation_report=...) and its
        gate policy are the ones that chain produced and used."""
        verifier, run_id = self.verifier, self.run.run_id
        if model:
            custody = verifier.verify_model(model, run_id=run_id, through=through)
        elif feature_set:
            custody = verifier.verify_features(feature_set, transform, run_id)
        else:
            custody = verifier.verify_dataset(dataset, run_id)
        wanted = dict(consumed)
        if model and feature_set:
            wanted["feature_set"] = feature_set
        if model and dataset:
            wanted["dataset"] = dataset
        for role, given in wanted.items():
            producer, expected = custody.produced(role)
            self.require_same(role.replace("_", " "), given, expected, producer)
        if policy:
            self.require_same("gate policy", policy, custody.policy_sha256, "the gates before")
        return self.verified(custody)

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
        self._output_paths[role] = path
        return record

    def reuse(
        self,
        parameters: Mapping[str, Any],
        outputs: Mapping[str, Path | None],
        *,
        halt: bool = False,
    ) -> dict[str, PropertyValue] | None:
        """Reuse a completed execution with this one's exact inputs, parameters, policy, code
        and image (`aiact.reuse`), called once every input is declared and verified, before the
        stage computes anything. `outputs` names every output path of the task: the roles the
        stage records in MLMD (the first is its primary output) and its other files (HTML,
        summary). On a reuse, those are filled from the reused execution, the execution records
        what it reused, and the result to return is given back (`halt`: a reused breached gate
        raises GateFailed once recorded); None means compute (the key is recorded either way,
        so a later run may reuse this one)."""
        from aiact import reuse

        if self.stage not in reuse.REUSABLE_STAGES:
            raise reuse.ReuseError(
                f"stage {self.stage} never reuses an execution: "
                f"{reuse.NEVER_REUSED.get(self.stage, 'it is not a reusable stage')}"
            )
        targets = {name: path for name, path in outputs.items() if path is not None}
        document = reuse.key_document(
            stage=self.stage,
            inputs=reuse.key_inputs(self.inputs),
            parameters=parameters,
            policy_sha256=str(self.properties.get("policy_sha256", "")),
            code_commit=self.run.code_commit,
            image=reuse.image_identity(),
        )
        key, text = reuse.key_of(document)
        self.properties[reuse.REUSE_KEY] = key
        self.properties[reuse.REUSE_KEY_JSON] = text
        self._reuse_files = dict(targets)
        if not reuse.enabled():
            return None
        found = reuse.try_reuse(
            self.lineage, stage=self.stage, key=key, document=document, targets=targets
        )
        if found is None:
            return None
        self._reused = found
        self._reuse_files = {}
        for name, value in found.properties.items():
            self.properties.setdefault(name, value)
        self.properties[reuse.REUSED_EXECUTION_ID] = found.origin_id
        self.properties[reuse.REUSED_FROM_RUN] = found.origin_run
        if found.execution_id != found.origin_id:
            self.properties["reused_via_execution_id"] = found.execution_id
        self.outputs = list(found.outputs)
        self._output_paths = {r.role: targets[r.role] for r in found.outputs}
        log_event(
            self.stage,
            "reused",
            run_id=self.run.run_id,
            reused_execution_id=found.origin_id,
            reused_from_run=found.origin_run,
        )
        primary = next(iter(outputs))
        if halt and found.properties.get("verdict") == "breached":
            from aiact.custody import GATE_REPORTS
            from aiact.policy import GateResult

            report = json.loads(Path(targets[GATE_REPORTS[self.stage]]).read_text())
            self._raise_after = GateFailed(GateResult.from_dict(report.get("gate") or {}))
        return reuse.result_of(found, primary, self.stage, targets)

    def _keep_objects(self, metadata_uri: str) -> None:
        """Keep every output (and a reusable stage's other output files) as a content-addressed
        object, named on its record (`object_uri`), so no run's folder holds the only copy."""
        from aiact.storage import keep_object, object_store_root

        if not self.outputs:
            return
        root = object_store_root(metadata_uri, self.outputs[0].uri)
        if not root:
            return
        kept = []
        for record in self.outputs:
            path = self._output_paths.get(record.role)
            if path is None or not path.exists():
                kept.append(record)
                continue
            name = Path(record.uri.rstrip("/")).name or record.role
            location = keep_object(path, record.content_sha256, name, root)
            kept.append(replace(record, properties={**record.properties, OBJECT_URI: location}))
        self.outputs = kept
        files = {}
        for name, path in self._reuse_files.items():
            if name in self._output_paths or not path.exists():
                continue
            digest = sha256_path(path)
            files[name] = {"uri": keep_object(path, digest, path.name, root), "sha256": digest}
        if files:
            self.properties["reuse_files"] = json.dumps(files, sort_keys=True)

    def read_verdict(self, gate: str, path: Path, uri: str) -> dict[str, str]:
        """Declare the verdict of the gate before this stage (its verdict task's output) as an
        input; returns `{role: digest}` for `verify_upstream`, which checks it is the passed
        verdict of this run's gate."""
        role = verdict_stage(gate)
        return {role: self.read(GATE_VERDICT, path, uri, role).content_sha256}

    def record_verdict(self, result: GateResult) -> None:
        """Record the gate's verdict on this (evidence) execution, which completes either way:
        its evidence is published, and the gate's verdict task halts the run on a breach."""
        self.properties["gate"] = result.gate
        self.properties["verdict"] = result.verdict
        self.properties["gate_breaches"] = "; ".join(c.name for c in result.breaches)

    def record_statistics(self, when: str, digest: Mapping[str, Any]) -> None:
        """Keep a statistics digest (`when` = before/after the step) and its hash on the
        execution, so an auditor sees what the step changed."""
        self.properties[f"statistics_{when}"] = canonical_json(dict(digest)).decode()
        self.properties[f"statistics_{when}_sha256"] = sha256_json(dict(digest))

    def read_policy(self, policy: Mapping[str, Any]) -> str:
        """Declare the gate policy as an input; its full text is kept on the artefact."""
        digest = policy_sha256(policy)
        if self.platform is not None:
            enforce_policy_floor(policy, self.platform)
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
    """Run a stage body and record its execution, whatever its outcome.

    Before the body runs, the platform configuration is loaded (`aiact.platform`: on a cluster
    from aiact-system, which the submitter cannot write) and the run's claims are checked
    against it: the environment must be the platform's, the code commit the one this image was
    built from. A contradiction fails the stage, recorded like any other failure."""
    lineage = LineageStore.connect(metadata_uri)
    claimed = run
    platform: PlatformConfig | None = None
    problem: Exception | None = None
    try:
        platform = load_platform()
        resolve_run_settings(platform, environment=claimed.environment)
        commit = confirmed_commit(claimed.code_commit)
    except (PlatformError, ValueError) as exc:
        problem, commit = exc, ""
    stored = properties_of(
        lineage.ensure_run(
            replace(
                claimed,
                environment=platform.environment if platform else "",
                code_commit=commit,
            )
        )
    )
    # The run context is authoritative: the first stage fixed environment, commit and spec hash.
    run = RunInfo(
        run_id=run.run_id,
        **{
            f.name: str(stored[f.name])
            for f in fields(RunInfo)
            if f.name in stored and f.name != "run_id"
        },
    )
    if problem is None and platform is not None and run.environment != platform.environment:
        problem = PlatformError(
            f"run {run.run_id} targets {run.environment!r} but this stage's platform "
            f"configuration says {platform.environment!r} ({platform.source})"
        )
    context = StageContext(stage=stage, run=run, lineage=lineage)
    started = time.time()
    log_event(stage, "started", run_id=run.run_id)
    if platform is not None:
        context.platform = platform
        context.properties["platform_sha256"] = platform.sha256()
        context.properties["platform_source"] = platform.source
    if claimed.code_commit:
        context.properties["claimed_code_commit"] = claimed.code_commit
    error: BaseException | None = None
    try:
        if problem is not None:
            raise problem
        yield context
    except BaseException as exc:
        error = exc
        raise
    finally:
        finished = time.time()
        context.properties.update(
            # A double: MLMD's MySQL schema keeps int properties in a 32-bit column, which a
            # millisecond timestamp overflows (tests/aiact/test_lineage_mysql.py).
            started_at_ms=float(int(started * 1000)),
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
        unstored: Exception | None = None
        try:
            context._keep_objects(metadata_uri)
        except (OSError, StorageError) as exc:
            unstored = exc
            if error is None:
                error = exc
                context.properties["outcome"] = type(exc).__name__
                context.properties["error"] = f"outputs not stored: {exc}"[:4000]
        context.execution_id, context.artifact_ids = lineage.record_execution(
            run=run,
            stage=stage,
            inputs=context.inputs,
            outputs=context.outputs,
            succeeded=error is None,
            properties=context.properties,
        )
        update_run_summary(lineage, run.run_id)  # the dashboard's per-run summary; never raises
        log_event(
            stage,
            "finished" if error is None else "failed",
            run_id=run.run_id,
            execution_id=context.execution_id,
            duration_s=context.properties["duration_s"],
            error=str(error) if error else None,
            outputs={r.role: r.content_sha256[:12] for r in context.outputs},
        )
    if unstored is not None:
        raise unstored
    if context._raise_after is not None:
        raise context._raise_after


PIPELINE_NAME = "aiact-compliance-pipeline"
CODE_COMMIT_ENV = "AIACT_CODE_COMMIT"
UNKNOWN_COMMIT = "unknown"


def source_commit(repo: Path) -> str:
    """HEAD's commit of a git checkout, suffixed `-dirty` when tracked files changed; '' when
    `repo` is not a git checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f"{head}-dirty" if dirty else head


def build_commit() -> str:
    """The commit this code was built from: the image's (AIACT_CODE_COMMIT, set at image build),
    else the git checkout the package runs from (a development install), else 'unknown'."""
    baked = os.environ.get(CODE_COMMIT_ENV, "")
    if baked and baked != UNKNOWN_COMMIT:
        return baked
    return source_commit(Path(__file__).resolve().parent.parent) or UNKNOWN_COMMIT


def confirmed_commit(claimed: str) -> str:
    """The commit to record: the build's own. A run parameter may only confirm it."""
    actual = build_commit()
    if claimed and actual != UNKNOWN_COMMIT and claimed != actual:
        raise PlatformError(
            f"run parameter code_commit={claimed!r} does not match the commit this code was "
            f"built from ({actual})"
        )
    return actual


def run_info(
    run_id: str,
    code_commit: str = "",
    pipeline_spec_sha256: str = "",
    environment: str = "",
    submission_id: str = "",
) -> RunInfo:
    """The run identity a stage claims; `stage_execution` checks environment and commit
    against the platform and the build before anything is recorded under them."""
    return RunInfo(
        run_id=run_id,
        pipeline_name=PIPELINE_NAME,
        code_commit=code_commit,
        pipeline_spec_sha256=pipeline_spec_sha256,
        environment=environment,
        submission_id=submission_id,
    )
