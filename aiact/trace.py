"""Trace an artefact back through MLMD: which execution produced it, from which inputs, down to
the raw data. This is what `aiact trace` prints for a production model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage, queries
from aiact.lineage import LineageStore, PropertyValue, properties_of

SHOWN_PROPERTIES = (
    "version",
    "stage",
    "rows",
    "passed",
    "accuracy",
    "roc_auc",
    "decision",
    "approver",
    "reason",
    "decided_at",
    "kind",
    "strategy",
    "traffic_percent",
    "dataset_version",
    "code_commit",
    "pipeline_run_id",
    "evaluation_report_uri",
)


@dataclass
class TraceNode:
    """An artefact or execution in a trace, with what it came from."""

    kind: str
    type_name: str
    id: int
    uri: str = ""
    state: str = ""
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    parents: list[TraceNode] = field(default_factory=list)
    repeated: bool = False

    def find(self, type_name: str) -> list[TraceNode]:
        """Every node of a type in this subtree (including repeats)."""
        found = [self] if self.type_name == type_name else []
        for parent in self.parents:
            found += parent.find(type_name)
        return found


class Tracer:
    """Walks events upstream from an artefact."""

    def __init__(self, store: LineageStore) -> None:
        self.store = store
        self.mlmd = store.store
        self._type_names: dict[int, str] = {}
        self._seen: set[tuple[str, int]] = set()

    def _type_name(self, node: Any, kind: str) -> str:
        if node.type_id not in self._type_names:
            getter = (
                self.mlmd.get_artifact_types_by_id
                if kind == "artifact"
                else self.mlmd.get_execution_types_by_id
            )
            [found] = getter([node.type_id])
            self._type_names[node.type_id] = found.name
        return self._type_names[node.type_id]

    def artifact(self, artifact_id: int) -> TraceNode:
        """The trace of one artefact, upstream to the data it came from."""
        [artifact] = self.mlmd.get_artifacts_by_id([artifact_id])
        node = TraceNode(
            "artifact",
            self._type_name(artifact, "artifact"),
            artifact.id,
            uri=artifact.uri,
            properties=properties_of(artifact),
        )
        if ("artifact", artifact_id) in self._seen:
            node.repeated = True
            return node
        self._seen.add(("artifact", artifact_id))
        node.parents = [
            self.execution(execution.id, execution) for execution in self.producers(artifact_id)
        ]
        return node

    def producers(self, artifact_id: int) -> list[Any]:
        """The executions that wrote an artefact. Only those (one indexed query): an artefact
        every run reads, such as the gate policy or the use case, has an INPUT event per run."""
        return list(queries.producers_of(self.store, artifact_id))

    def execution(self, execution_id: int, execution: Any = None) -> TraceNode:
        """The trace of one execution (read by id unless given) and its inputs."""
        if execution is None:
            [execution] = self.mlmd.get_executions_by_id([execution_id])
        node = TraceNode(
            "execution",
            self._type_name(execution, "execution"),
            execution.id,
            state=mlmd_pb.Execution.State.Name(execution.last_known_state),
            properties=properties_of(execution),
        )
        if ("execution", execution_id) in self._seen:
            node.repeated = True
            return node
        self._seen.add(("execution", execution_id))
        events = self.mlmd.get_events_by_execution_ids([execution_id])
        inputs = [e.artifact_id for e in events if e.type == mlmd_pb.Event.INPUT]
        node.parents = [self.artifact(artifact_id) for artifact_id in inputs]
        return node


def trace_artifact(store: LineageStore, artifact_id: int) -> TraceNode:
    """Trace one artefact upstream."""
    return Tracer(store).artifact(artifact_id)


def latest_deployment(store: LineageStore, run_id: str = "") -> mlmd_pb.Artifact:
    """The most recently recorded deployment (of `run_id`, when given): one indexed query
    (newest by id, limit 1), whatever the number of deployments in the store."""
    extra = [queries.in_run(run_id)] if run_id else []
    found = queries.newest_artifact(store, lineage.DEPLOYMENT, extra=extra)
    if found is None:
        where = f"run {run_id}" if run_id else "this metadata store"
        raise lineage.LineageError(f"no deployment recorded in {where}")
    return found


def render(node: TraceNode, indent: str = "") -> list[str]:
    """Indented text lines of a trace."""
    shown = {k: v for k, v in node.properties.items() if k in SHOWN_PROPERTIES and v != ""}
    details = " ".join(f"{k}={v}" for k, v in shown.items())
    if node.kind == "artifact":
        line = f"{indent}{node.type_name} #{node.id} {details}".rstrip()
    else:
        outcome = node.properties.get("outcome", "")
        state = node.state
        if state == "COMPLETE" and outcome not in ("", "completed"):
            state = f"COMPLETE in the store, but recorded outcome {outcome}: ALTERED"
        line = f"{indent}<- {node.type_name} [{state}] run={node.properties.get('run_id', '')}"
    if node.repeated:
        return [f"{line} (shown above)"]
    lines = [line]
    for parent in node.parents:
        lines += render(parent, indent + "   ")
    return lines


def run_header(store: LineageStore, artifact_id: int) -> list[str]:
    """The pipeline run(s) an artefact belongs to, with code commit and spec hash."""
    lines = []
    for context in store.store.get_contexts_by_artifact(artifact_id):
        props = properties_of(context)
        lines.append(
            f"pipeline run {context.name}: code_commit={props.get('code_commit', '') or '-'} "
            f"spec_sha256={props.get('pipeline_spec_sha256', '') or '-'} "
            f"environment={props.get('environment', '') or '-'}"
        )
    return lines
