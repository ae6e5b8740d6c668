"""Lineage in ML Metadata: every stage an execution, every artefact content-addressed.

One module owns the MLMD store. Stages describe what they read and wrote as `ArtifactRecord`s;
`LineageStore.record_execution` writes the execution, its input and output events and the run
context in one call. Artefacts are identified by (type, content hash): recording the same content
twice reuses the stored artefact, so re-running a stage on unchanged input creates no new version.
An artefact's `uri` is where its producer wrote it until a second run records it; from then on it
names the artefact's content-addressed object (`object_uri`, see `aiact.storage`), and
`first_uri` keeps the producer's location, so deleting one run's folder never breaks another's.

The store is chosen by a URI, so no stage changes when production moves from the embedded SQLite
file to MySQL or to a metadata gRPC service:

- ``sqlite:///abs/path/mlmd.sqlite`` (or a plain path): embedded store, created on first use;
- ``mysql://user@host:3306/database``: password from ``AIACT_METADATA_PASSWORD``;
- ``grpc://host:8080``: an ML Metadata gRPC server;
- ``memory:``: an in-memory store for tests.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

PropertyValue = str | int | float | bool

METADATA_URI_ENV = "AIACT_METADATA_URI"
METADATA_PASSWORD_ENV = "AIACT_METADATA_PASSWORD"
RUN_CONTEXT_TYPE = "aiact.PipelineRun"
# What `aiact run-local` submitted (its pipeline arguments), so `aiact resume` can rebuild them:
# one context per submission, named by its submission id, which the run context carries.
SUBMISSION_CONTEXT_TYPE = "aiact.Submission"
# Artefact properties: its content-addressed object, and the producer's own location once the
# artefact's `uri` names the object instead (see `LineageStore._relocate_if_shared`).
OBJECT_URI = "object_uri"
FIRST_URI = "first_uri"

# Artefact types the suite records; names are the audit vocabulary.
RAW_DATASET = "aiact.RawDataset"
DATA_CARD = "aiact.DataCard"
USE_CASE = "aiact.UseCase"
GATE_POLICY = "aiact.GatePolicy"
DATA_VALIDATION_REPORT = "aiact.DataValidationReport"
DATASET = "aiact.Dataset"
FEATURE_SET = "aiact.FeatureSet"
FEATURE_TRANSFORM = "aiact.FeatureTransform"
MODEL = "aiact.Model"
TRAINING_REPORT = "aiact.TrainingReport"
EVALUATION_REPORT = "aiact.EvaluationReport"
MODEL_REGISTRATION = "aiact.ModelRegistration"
INTEGRATION_TEST_REPORT = "aiact.IntegrationTestReport"
GATE_VERDICT = "aiact.GateVerdict"
APPROVAL = "aiact.Approval"
DEPLOYMENT = "aiact.Deployment"

# MLMD's SQLite backend has no busy timeout: a writer that meets another process's transaction
# retries briefly, then raises AbortedError (the transaction was rolled back, so a retry is
# safe). Concurrent runs on one store therefore retry such calls for up to this long.
RETRY_DEADLINE_S = 60.0


class LineageError(RuntimeError):
    """The metadata store is misconfigured or lacks an artefact a stage depends on."""


@dataclass(frozen=True)
class ArtifactRecord:
    """An artefact as a stage saw it: what it is, where it lies, and its content hash."""

    type_name: str
    uri: str
    content_sha256: str
    role: str
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """The pipeline run every execution belongs to."""

    run_id: str
    pipeline_name: str = ""
    code_commit: str = ""
    pipeline_spec_sha256: str = ""
    environment: str = ""
    submission_id: str = ""

    def properties(self) -> dict[str, PropertyValue]:
        """The run's non-empty attributes as MLMD properties."""
        return {key: value for key, value in self.__dict__.items() if value}


@dataclass(frozen=True)
class ExecutionRecord:
    """One stage execution read back from the store."""

    id: int
    stage: str
    state: str
    properties: dict[str, PropertyValue]


def connection_config(uri: str) -> Any:
    """Translate a metadata URI into an MLMD connection or client config."""
    uri = uri or os.environ.get(METADATA_URI_ENV, "")
    if not uri:
        raise LineageError(
            f"no metadata store configured: pass metadata_uri or set {METADATA_URI_ENV}"
        )
    if uri == "memory:":
        config = mlmd_pb.ConnectionConfig()
        config.fake_database.SetInParent()
        return config
    parsed = urlparse(uri)
    if parsed.scheme in ("", "sqlite", "file"):
        path = Path(parsed.path if parsed.scheme else uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = mlmd_pb.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = mlmd_pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return config
    if parsed.scheme == "mysql":
        config = mlmd_pb.ConnectionConfig()
        config.mysql.host = parsed.hostname or "127.0.0.1"
        config.mysql.port = parsed.port or 3306
        config.mysql.database = parsed.path.lstrip("/") or "aiact_metadata"
        config.mysql.user = parsed.username or "root"
        config.mysql.password = os.environ.get(METADATA_PASSWORD_ENV, "")
        return config
    if parsed.scheme == "grpc":
        client = mlmd_pb.MetadataStoreClientConfig()
        client.host = parsed.hostname or "localhost"
        client.port = parsed.port or 8080
        return client
    raise LineageError(
        f"unsupported metadata URI scheme {parsed.scheme!r} in {uri!r}: "
        "use sqlite:///path, mysql://user@host:port/db, grpc://host:port or memory:"
    )


def version_of(content_sha256: str) -> str:
    """The version label of an artefact: the first 16 hex digits of its content hash."""
    return content_sha256[:16]


def _set_value(target: Any, value: PropertyValue) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    else:
        target.string_value = str(value)


def property_value(value: mlmd_pb.Value) -> PropertyValue:
    """Read back a MLMD property value as plain Python."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    result: PropertyValue = getattr(value, kind)
    return result


def properties_of(node: Any) -> dict[str, PropertyValue]:
    """All properties (declared and custom) of an artefact, execution or context."""
    values = {key: property_value(v) for key, v in node.custom_properties.items()}
    values.update({key: property_value(v) for key, v in node.properties.items()})
    return values


class RetryingStore:
    """A MetadataStore whose calls are retried, with jittered backoff, while the backend reports
    a concurrent transaction (``AbortedError``, SQLite "database is locked")."""

    def __init__(self, store: metadata_store.MetadataStore, deadline_s: float = RETRY_DEADLINE_S):
        self._store = store
        self._deadline_s = deadline_s

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._retry(method, *args, **kwargs)

        return call

    def _retry(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self._deadline_s
        delay = 0.02
        while True:
            try:
                return method(*args, **kwargs)
            except mlmd_errors.AbortedError:
                if time.monotonic() >= deadline:
                    raise
            except mlmd_errors.InternalError as exc:
                if "locked" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


class LineageStore:
    """The suite's view of one ML Metadata store."""

    def __init__(self, store: metadata_store.MetadataStore, backend: str = "") -> None:
        self.store: Any = RetryingStore(store) if not isinstance(store, RetryingStore) else store
        self._type_ids: dict[tuple[str, str], int] = {}
        # The database behind the store when it is known ("sqlite", "mysql", "fake_database";
        # "" for a gRPC server): queries whose best form differs by database ask for it.
        self.backend = backend

    @classmethod
    def connect(cls, uri: str) -> LineageStore:
        """Open (and on first use create) the store named by `uri`."""
        config = connection_config(uri)
        deadline = time.monotonic() + RETRY_DEADLINE_S
        while True:
            try:
                direct = isinstance(config, mlmd_pb.ConnectionConfig)  # else a gRPC client
                backend = config.WhichOneof("config") if direct else ""
                return cls(metadata_store.MetadataStore(config), backend)
            except (mlmd_errors.AbortedError, mlmd_errors.InternalError) as exc:
                if "locked" not in str(exc).lower() and not isinstance(
                    exc, mlmd_errors.AbortedError
                ):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05 + random.random() * 0.1)

    # -- types -------------------------------------------------------------------------------

    def _type_id(self, kind: str, name: str) -> int:
        key = (kind, name)
        if key not in self._type_ids:
            if kind == "artifact":
                self._type_ids[key] = self.store.put_artifact_type(mlmd_pb.ArtifactType(name=name))
            elif kind == "execution":
                self._type_ids[key] = self.store.put_execution_type(
                    mlmd_pb.ExecutionType(name=name)
                )
            else:
                self._type_ids[key] = self.store.put_context_type(mlmd_pb.ContextType(name=name))
        return self._type_ids[key]

    # -- runs --------------------------------------------------------------------------------

    def ensure_run(self, run: RunInfo) -> mlmd_pb.Context:
        """Get or create the run's context, adding any attributes it does not have yet."""
        context = self.store.get_context_by_type_and_name(RUN_CONTEXT_TYPE, run.run_id)
        if context is None:
            context = mlmd_pb.Context(
                type_id=self._type_id("context", RUN_CONTEXT_TYPE), name=run.run_id
            )
        known = properties_of(context)
        missing = {k: v for k, v in run.properties().items() if k not in known}
        if context.id and not missing:
            return context
        for key, value in missing.items():
            _set_value(context.custom_properties[key], value)
        try:
            [context_id] = self.store.put_contexts([context])
        except mlmd_errors.AlreadyExistsError:
            return self.ensure_run(run)
        context.id = context_id
        return context

    def run_context(self, run_id: str) -> mlmd_pb.Context:
        """The context of an existing run."""
        context = self.store.get_context_by_type_and_name(RUN_CONTEXT_TYPE, run_id)
        if context is None:
            raise LineageError(f"no pipeline run {run_id!r} in the metadata store")
        return context

    def update_run(self, run_id: str, updates: Mapping[str, PropertyValue]) -> mlmd_pb.Context:
        """Set properties on an existing run's context (e.g. that it was abandoned)."""
        context = self.run_context(run_id)
        for key, value in updates.items():
            _set_value(context.custom_properties[key], value)
        self.store.put_contexts([context])
        return context

    def record_submission(
        self, submission_id: str, properties: Mapping[str, PropertyValue]
    ) -> mlmd_pb.Context:
        """Record (or add properties to) a submission's context."""
        context = self.store.get_context_by_type_and_name(SUBMISSION_CONTEXT_TYPE, submission_id)
        if context is None:
            context = mlmd_pb.Context(
                type_id=self._type_id("context", SUBMISSION_CONTEXT_TYPE), name=submission_id
            )
        for key, value in properties.items():
            _set_value(context.custom_properties[key], value)
        [context.id] = self.store.put_contexts([context])
        return context

    def submission(self, submission_id: str) -> mlmd_pb.Context | None:
        """A recorded submission's context, if any."""
        found: mlmd_pb.Context | None = self.store.get_context_by_type_and_name(
            SUBMISSION_CONTEXT_TYPE, submission_id
        )
        return found

    def runs(self) -> list[mlmd_pb.Context]:
        """All recorded runs, oldest first."""
        contexts = self.store.get_contexts_by_type(RUN_CONTEXT_TYPE)
        return sorted(contexts, key=lambda c: (c.create_time_since_epoch, c.id))

    # -- artefacts ---------------------------------------------------------------------------

    def find_artifact(self, type_name: str, content_sha256: str) -> mlmd_pb.Artifact | None:
        """The stored artefact of this type and content, if any."""
        found: mlmd_pb.Artifact | None = self.store.get_artifact_by_type_and_name(
            type_name, content_sha256
        )
        return found

    def require_artifact(self, type_name: str, content_sha256: str) -> mlmd_pb.Artifact:
        """The stored artefact of this type and content; fails if an upstream stage never
        recorded it (the input did not come through the suite)."""
        artifact = self.find_artifact(type_name, content_sha256)
        if artifact is None:
            raise LineageError(
                f"input {type_name} sha256:{content_sha256[:12]} has no recorded lineage: "
                "it was not produced by a recorded stage"
            )
        return artifact

    def require_passed(self, type_name: str, content_sha256: str) -> mlmd_pb.Artifact:
        """The stored artefact, provided a completed (gate-passing) execution produced it.

        This is what makes it structurally impossible to consume unvalidated input: an artefact
        that only a failed execution wrote, or that no stage wrote, is refused.
        """
        artifact = self.require_artifact(type_name, content_sha256)
        events = self.store.get_events_by_artifact_ids([artifact.id])
        producers = [e.execution_id for e in events if e.type == mlmd_pb.Event.OUTPUT]
        executions = self.store.get_executions_by_id(producers) if producers else []
        if not any(e.last_known_state == mlmd_pb.Execution.COMPLETE for e in executions):
            raise LineageError(
                f"input {type_name} sha256:{content_sha256[:12]} was not produced by a completed "
                "stage: it did not pass its gate"
            )
        return artifact

    def _artifact_for(self, record: ArtifactRecord, context_id: int = 0) -> mlmd_pb.Artifact:
        existing = self.find_artifact(record.type_name, record.content_sha256)
        if existing is not None:
            self._relocate_if_shared(existing, record, context_id)
            return existing
        artifact = mlmd_pb.Artifact(
            type_id=self._type_id("artifact", record.type_name),
            name=record.content_sha256,
            uri=record.uri,
            state=mlmd_pb.Artifact.LIVE,
        )
        _set_value(artifact.custom_properties["content_sha256"], record.content_sha256)
        _set_value(artifact.custom_properties["version"], version_of(record.content_sha256))
        for key, value in record.properties.items():
            _set_value(artifact.custom_properties[key], value)
        return artifact

    def _relocate_if_shared(
        self, artifact: mlmd_pb.Artifact, record: ArtifactRecord, context_id: int
    ) -> None:
        """An artefact another run already recorded names its content-addressed object as its
        `uri` from now on, never the folder of the run that first wrote it (`aiact.storage`):
        deleting one run's folder must not break another run's evidence."""
        # This execution's own object (just stored from its verified copy) comes first.
        target = str(
            record.properties.get(OBJECT_URI) or properties_of(artifact).get(OBJECT_URI, "")
        )
        if not target or artifact.uri == target or not context_id:
            return
        runs = {c.id for c in self.store.get_contexts_by_artifact(artifact.id)}
        if runs - {context_id}:
            _set_value(artifact.custom_properties[OBJECT_URI], target)
            _set_value(artifact.custom_properties[FIRST_URI], artifact.uri)
            artifact.uri = target

    def update_artifact(self, artifact_id: int, updates: Mapping[str, PropertyValue]) -> None:
        """Set custom properties on a stored artefact (e.g. a model's stage)."""
        [artifact] = self.store.get_artifacts_by_id([artifact_id])
        for key, value in updates.items():
            _set_value(artifact.custom_properties[key], value)
        self.store.put_artifacts([artifact])

    def artifacts_of_run(self, run_id: str, type_name: str | None = None) -> list[mlmd_pb.Artifact]:
        """Artefacts attributed to a run, optionally of one type."""
        context = self.run_context(run_id)
        artifacts = self.store.get_artifacts_by_context(context.id)
        if type_name is None:
            return list(artifacts)
        type_id = self._type_id("artifact", type_name)
        return [a for a in artifacts if a.type_id == type_id]

    # -- executions --------------------------------------------------------------------------

    def record_execution(
        self,
        *,
        run: RunInfo,
        stage: str,
        inputs: Sequence[ArtifactRecord],
        outputs: Sequence[ArtifactRecord],
        succeeded: bool,
        properties: Mapping[str, PropertyValue],
    ) -> tuple[int, dict[str, int]]:
        """Record one stage execution with its events, inside the run's context.

        Returns the execution id and the stored artefact id of each record, keyed by role.
        """
        context = self.ensure_run(run)
        execution = mlmd_pb.Execution(
            type_id=self._type_id("execution", f"aiact.{stage}"),
            last_known_state=(
                mlmd_pb.Execution.COMPLETE if succeeded else mlmd_pb.Execution.FAILED
            ),
        )
        for key, value in {"stage": stage, "run_id": run.run_id, **properties}.items():
            _set_value(execution.custom_properties[key], value)
        pairs = []
        for event_type, records in (
            (mlmd_pb.Event.INPUT, inputs),
            (mlmd_pb.Event.OUTPUT, outputs),
        ):
            for record in records:
                event = mlmd_pb.Event(type=event_type)
                event.path.steps.add().key = record.role
                pairs.append((self._artifact_for(record, context.id), event))
        execution_id, artifact_ids, _ = self.store.put_execution(
            execution, pairs, [context], reuse_context_if_already_exist=True
        )
        roles = [record.role for records in (inputs, outputs) for record in records]
        return execution_id, dict(zip(roles, artifact_ids, strict=True))

    def executions_of_run(self, run_id: str) -> list[ExecutionRecord]:
        """A run's stage executions in the order they were recorded."""
        context = self.run_context(run_id)
        executions = sorted(self.store.get_executions_by_context(context.id), key=lambda e: e.id)
        return [
            ExecutionRecord(
                id=e.id,
                stage=str(properties_of(e).get("stage", "")),
                state=mlmd_pb.Execution.State.Name(e.last_known_state),
                properties=properties_of(e),
            )
            for e in executions
        ]
