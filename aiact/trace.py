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
    """Walks events upstream from an artefact.

    `artifact()` first reads the whole upstream lineage into caches (`prefetch`), and the walk
    then reads from them. The traced artefact's producers come from one indexed query; their
    pipeline run (its executions and their events: two queries) then answers which execution of
    that run wrote each artefact the run produced. What the run read but did not produce (the
    raw data, the policy, a reference model of an earlier run) is asked for next, one indexed
    query per artefact, and so on upstream of that, one level at a time. So an artefact the run
    produced is traced through that run's execution; another run that produced the same content
    (a rerun, the run a resumed run reused) is not walked from this trace."""

    def __init__(self, store: LineageStore) -> None:
        self.store = store
        self.mlmd = store.store
        self._type_names: dict[str, dict[int, str]] = {}
        self._seen: set[tuple[str, int]] = set()
        self._artifacts: dict[int, Any] = {}
        self._producers: dict[int, list[Any]] = {}
        self._events: dict[int, list[Any]] = {}
        self._executions: dict[int, Any] = {}

    def _load(self, executions: list[Any]) -> None:
        """Cache executions and (one query) the events of those not cached yet."""
        new = [e for e in executions if e.id not in self._events]
        for execution in executions:
            self._executions[execution.id] = execution
        for execution in new:
            self._events[execution.id] = []
        if new:
            for event in self.mlmd.get_events_by_execution_ids([e.id for e in new]):
                self._events[event.execution_id].append(event)

    def _outputs(self, executions: list[Any], wanted: Any) -> dict[int, list[Any]]:
        """Which of (cached) `executions` wrote each artefact for which `wanted(id)` holds,
        oldest first."""
        found: dict[int, dict[int, Any]] = {}
        for execution in executions:
            for event in self._events[execution.id]:
                if event.type == mlmd_pb.Event.OUTPUT and wanted(event.artifact_id):
                    found.setdefault(event.artifact_id, {})[execution.id] = execution
        return {key: [by_id[i] for i in sorted(by_id)] for key, by_id in found.items()}

    def _resolve(self, artifact_ids: list[int]) -> list[Any]:
        """The producers of artefacts not resolved yet, into the cache; returns them."""
        writers = list(queries.producers_of_many(self.store, artifact_ids))
        self._load(writers)
        found = self._outputs(writers, set(artifact_ids).__contains__)
        for key in artifact_ids:
            self._producers[key] = found.get(key, [])
        return writers

    def _home_run(self, writers: list[Any]) -> None:
        """The run(s) of the traced artefact's producers: which of their executions wrote each
        artefact they produced, then the producers of what they read from outside."""
        home: list[Any] = []
        for run_id in sorted({str(properties_of(e).get("run_id", "")) for e in writers} - {""}):
            home += queries.executions_of_run(self.store, run_id)
        self._load(home)
        for key, executions in self._outputs(home, lambda i: i not in self._producers).items():
            self._producers[key] = executions
        named = {event.artifact_id for e in home for event in self._events[e.id]}
        for artifact in self.mlmd.get_artifacts_by_id(sorted(named - set(self._artifacts))):
            self._artifacts[artifact.id] = artifact
        outside = sorted(named - set(self._producers))
        if outside:
            self._resolve(outside)

    def prefetch(self, artifact_id: int) -> None:
        """Read everything upstream of an artefact into the caches."""
        frontier = {artifact_id} - set(self._artifacts)
        visited = set(frontier)
        first = True
        while frontier:
            missing = sorted(frontier - set(self._artifacts))
            for artifact in self.mlmd.get_artifacts_by_id(missing) if missing else []:
                self._artifacts[artifact.id] = artifact
            unknown = sorted(frontier - set(self._producers))
            writers = self._resolve(unknown) if unknown else []
            if first:
                self._home_run(writers)
            upstream: set[int] = set()
            for key in frontier:
                for execution in self._producers.get(key, []):
                    for event in self._events[execution.id]:
                        if event.type == mlmd_pb.Event.INPUT:
                            upstream.add(event.artifact_id)
            frontier = upstream - visited
            visited |= frontier
            first = False

    def _type_name(self, node: Any, kind: str) -> str:
        """The name of a node's type. The types of every node read so far are asked for in one
        query per kind (by id), not one query per type met."""
        names = self._type_names.setdefault(kind, {})
        if node.type_id not in names:
            nodes = self._artifacts.values() if kind == "artifact" else self._executions.values()
            wanted = sorted({n.type_id for n in nodes} - set(names) | {node.type_id})
            getter = (
                self.mlmd.get_artifact_types_by_id
                if kind == "artifact"
                else self.mlmd.get_execution_types_by_id
            )
            names.update((t.id, t.name) for t in getter(wanted))
        return names[node.type_id]

    def artifact(self, artifact_id: int) -> TraceNode:
        """The trace of one artefact, upstream to the data it came from."""
        if not self._seen:
            self.prefetch(artifact_id)
        artifact = self._artifacts.get(artifact_id)
        if artifact is None:
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
        if artifact_id in self._producers:
            return self._producers[artifact_id]
        return list(queries.producers_of(self.store, artifact_id))

    def execution(self, execution_id: int, execution: Any = None) -> TraceNode:
        """The trace of one execution (read by id unless given) and its inputs."""
        if execution is None:
            execution = self._executions.get(execution_id)
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
        events = self._events.get(execution_id)
        if events is None:
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
    """The pipeline run(s) an artefact belongs to, with code commit and spec hash.

    An artefact that names its run (`pipeline_run_id`, as a deployment does) and is attributed
    to that run: that run, read by name (two indexed queries: the context, its artefacts).
    Otherwise every context the artefact is attributed to (MLMD keeps no index on an
    attribution's artefact, so that lookup scans every attribution: 6 ms at 10,000 runs on
    SQLite)."""
    [artifact] = store.store.get_artifacts_by_id([artifact_id])
    named = properties_of(artifact).get("pipeline_run_id")
    contexts: list[Any] = []
    if isinstance(named, str) and named:
        context = store.store.get_context_by_type_and_name(lineage.RUN_CONTEXT_TYPE, named)
        if context is not None and any(
            a.id == artifact_id for a in store.store.get_artifacts_by_context(context.id)
        ):
            contexts = [context]
    if not contexts:
        contexts = list(store.store.get_contexts_by_artifact(artifact_id))
    lines = []
    for context in contexts:
        props = properties_of(context)
        lines.append(
            f"pipeline run {context.name}: code_commit={props.get('code_commit', '') or '-'} "
            f"spec_sha256={props.get('pipeline_spec_sha256', '') or '-'} "
            f"environment={props.get('environment', '') or '-'}"
        )
    return lines
