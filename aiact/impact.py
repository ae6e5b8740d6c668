"""Reverse lineage (`aiact impact`): which runs, models and deployments used a dataset, a gate
policy or a code commit.

The query names one of:

- an artefact: its content sha256 (optionally `sha256:`-prefixed; a prefix of at least 7 hex
  digits, e.g. its 16-digit version, also matches), its MLMD id, or its URI
  (`aiact-policy:sha256:<digest>` for a policy);
- a code commit: the commit (or a prefix of at least 7 hex digits) recorded on the run context.

The runs that used an artefact are those whose executions read or wrote it, except as a drift
baseline or a production reference (`REFERENCE_ROLES`): such runs are listed apart, as having
compared against it. The models are those the runs' training executions wrote, the deployments
those their deployment executions wrote. Everything is read with filter queries and batch
calls (events by artefact ids, executions by run id, events by execution ids, artefacts by id),
never by walking every artefact of the store."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml_metadata import ListOptions
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import dashboard, lineage
from aiact.lineage import LineageError, LineageStore, properties_of

# Input roles under which a run only compared against an artefact (drift baseline, current
# production model and its feature set), without building on it.
REFERENCE_ROLES = frozenset({"baseline", "production_model", "production_reference"})
HEX = re.compile(r"[0-9a-f]{7,64}")
IN_CHUNK = 100


@dataclass
class Impact:
    """What a query matched and everything downstream that used it."""

    query: str
    kind: str  # "artifact" or "commit"
    matched: list[dict[str, Any]]
    runs: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    referenced_by: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (`aiact impact --json`)."""
        return {
            "query": self.query,
            "kind": self.kind,
            "matched": self.matched,
            "runs": self.runs,
            "models": self.models,
            "deployments": self.deployments,
            "referenced_by": self.referenced_by,
        }

    def lines(self) -> list[str]:
        """The text form (`aiact impact`)."""
        out = []
        for item in self.matched:
            if self.kind == "commit":
                out.append(f"code commit {item['code_commit']} (run {item['run_id']})")
            else:
                out.append(
                    f"{item['type']} #{item['id']} sha256:{item['sha256']} uri={item['uri']}"
                )
        out.append(f"runs ({len(self.runs)}):")
        for run in self.runs:
            roles = f" as {', '.join(run['roles'])}" if run.get("roles") else ""
            out.append(
                f"  {run['run_id']}  status={run['status']}  commit={run['code_commit'] or '-'}"
                f"  environment={run['environment'] or '-'}{roles}"
            )
        out.append(f"models ({len(self.models)}):")
        for model in self.models:
            out.append(
                f"  {model['name'] or '-'}  version={model['version']}  sha256={model['sha256']}"
                f"  stage={model['stage'] or '-'}  runs={', '.join(model['runs'])}"
            )
        out.append(f"deployments ({len(self.deployments)}):")
        for item in self.deployments:
            out.append(
                f"  deployment #{item['id']}  run={item['run_id']}  model={item['model_name']}"
                f"@{item['model_version']}  environment={item['environment'] or '-'}"
                f"  strategy={item['strategy'] or '-'}  traffic={item['traffic_percent']}%"
                f"  ledger_sequence={item['ledger_sequence']}"
            )
        if self.referenced_by:
            out.append(f"compared against it, without using it ({len(self.referenced_by)}):")
            for run in self.referenced_by:
                out.append(f"  {run['run_id']}  as {', '.join(run['roles'])}")
        return out


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _chunks(items: Sequence[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _filtered(getter: Any, query: str) -> list[Any]:
    return list(getter(list_options=ListOptions(filter_query=query)))


def resolve(store: LineageStore, query: str) -> tuple[str, list[Any]]:
    """The artefacts (kind "artifact") or run contexts (kind "commit") a query names.

    Raises:
        LineageError: when it names nothing in the store, or both an artefact and a commit.
    """
    mlmd = store.store
    text = query.strip()
    if not text:
        raise LineageError(
            "impact needs a dataset or policy sha256, an artefact id or URI, or a commit"
        )
    value = text.removeprefix("sha256:").lower()
    if text.isdigit():
        found = list(mlmd.get_artifacts_by_id([int(text)]))
        if found:
            return "artifact", found
    if HEX.fullmatch(value):
        name = f"name = {_quote(value)}" if len(value) == 64 else f"name LIKE {_quote(value + '%')}"
        artifacts = _filtered(mlmd.get_artifacts, name)
        runs = _filtered(
            mlmd.get_contexts,
            f"type = {_quote(lineage.RUN_CONTEXT_TYPE)} AND "
            f"custom_properties.code_commit.string_value LIKE {_quote(value + '%')}",
        )
        if artifacts and runs:
            raise LineageError(
                f"{text!r} is ambiguous: it matches {len(artifacts)} artefact(s) and the code "
                f"commit of {len(runs)} run(s); give more digits"
            )
        if artifacts:
            return "artifact", artifacts
        if runs:
            return "commit", runs
    else:
        artifacts = list(mlmd.get_artifacts_by_uri(text))
        if artifacts:
            return "artifact", artifacts
    raise LineageError(
        f"{text!r} names no dataset, policy or other artefact (sha256, id or URI) and no code "
        "commit in the metadata store"
    )


def _type_names(mlmd: Any) -> dict[int, str]:
    return {t.id: t.name for t in mlmd.get_artifact_types()}


def _artifact_entry(artifact: Any, types: dict[int, str]) -> dict[str, Any]:
    props = properties_of(artifact)
    return {
        "type": types.get(artifact.type_id, str(artifact.type_id)),
        "id": artifact.id,
        "sha256": artifact.name,
        "version": str(props.get("version", lineage.version_of(artifact.name))),
        "uri": artifact.uri,
    }


def _runs_using(
    mlmd: Any, artifact_ids: list[int]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Run id -> roles under which its executions read or wrote the artefacts, split into uses
    and references (REFERENCE_ROLES)."""
    events = [
        e for ids in _chunks(artifact_ids, 2000) for e in mlmd.get_events_by_artifact_ids(ids)
    ]
    roles: dict[int, set[str]] = defaultdict(set)
    for event in events:
        roles[event.execution_id].update(step.key for step in event.path.steps if step.key)
    used: dict[str, set[str]] = defaultdict(set)
    referenced: dict[str, set[str]] = defaultdict(set)
    for ids in _chunks(sorted(roles), 2000):
        for execution in mlmd.get_executions_by_id(ids):
            run_id = str(properties_of(execution).get("run_id", ""))
            if not run_id:
                continue
            own = roles[execution.id]
            if own and own <= REFERENCE_ROLES:
                referenced[run_id] |= own
            else:
                used[run_id] |= own - REFERENCE_ROLES
    for run_id in used:
        referenced.pop(run_id, None)
    return used, referenced


def impact(store: LineageStore, query: str) -> Impact:
    """The reverse lineage of a dataset, policy, other artefact or code commit."""
    mlmd = store.store
    kind, found = resolve(store, query)
    types = _type_names(mlmd)
    referenced: dict[str, set[str]] = {}
    if kind == "commit":
        matched = [
            {"run_id": c.name, "code_commit": str(properties_of(c).get("code_commit", ""))}
            for c in found
        ]
        used: dict[str, set[str]] = {c.name: set() for c in found}
    else:
        matched = [_artifact_entry(a, types) for a in found]
        used, referenced = _runs_using(mlmd, [a.id for a in found])
    result = Impact(query=query, kind=kind, matched=matched)
    run_ids = sorted(used)
    executions = [
        e
        for chunk in _chunks(run_ids, IN_CHUNK)
        for e in _filtered(
            mlmd.get_executions,
            "custom_properties.run_id.string_value IN ("
            + ", ".join(_quote(r) for r in chunk)
            + ")",
        )
    ]
    contexts = {
        c.name: properties_of(c)
        for chunk in _chunks(run_ids, IN_CHUNK)
        for c in _filtered(
            mlmd.get_contexts,
            f"type = {_quote(lineage.RUN_CONTEXT_TYPE)} AND name IN ("
            + ", ".join(_quote(r) for r in chunk)
            + ")",
        )
    }
    by_run: dict[str, list[Any]] = defaultdict(list)
    for execution in executions:
        by_run[str(properties_of(execution).get("run_id", ""))].append(execution)
    for run_id in run_ids:
        record = dashboard.RunRecord(run_id=run_id, started_ms=0)
        record.stages = sorted(
            (dashboard.stage_record(e, e.type.removeprefix("aiact.")) for e in by_run[run_id]),
            key=lambda r: r.execution_id,
        )
        dashboard.classify(record)
        status = record.status + (f" ({record.stopped_at})" if record.stopped_at else "")
        props = contexts.get(run_id, {})
        result.runs.append(
            {
                "run_id": run_id,
                "status": status,
                "code_commit": str(props.get("code_commit", "")),
                "environment": str(props.get("environment", "")),
                "roles": sorted(used[run_id]),
            }
        )
    result.referenced_by = [
        {"run_id": run_id, "roles": sorted(roles)} for run_id, roles in sorted(referenced.items())
    ]
    _models_and_deployments(mlmd, executions, types, result)
    return result


def _models_and_deployments(
    mlmd: Any, executions: Sequence[Any], types: dict[int, str], result: Impact
) -> None:
    """The models the runs' training executions wrote and the deployments their deployment
    executions wrote."""
    wanted = {"aiact.training": "model", "aiact.deployment": "deployment"}
    writers = {e.id: e for e in executions if e.type in wanted}
    outputs: dict[int, set[str]] = defaultdict(set)
    for ids in _chunks(sorted(writers), 2000):
        for event in mlmd.get_events_by_execution_ids(ids):
            role = wanted[writers[event.execution_id].type]
            if event.type == mlmd_pb.Event.OUTPUT and any(s.key == role for s in event.path.steps):
                run_id = str(properties_of(writers[event.execution_id]).get("run_id", ""))
                outputs[event.artifact_id].add(run_id)
    artifacts = [a for ids in _chunks(sorted(outputs), 2000) for a in mlmd.get_artifacts_by_id(ids)]
    models = {}
    for artifact in artifacts:
        if types.get(artifact.type_id) == lineage.MODEL:
            props = properties_of(artifact)
            models[artifact.name] = {
                "name": str(props.get("model_name", "")),
                "version": str(props.get("version", lineage.version_of(artifact.name))),
                "sha256": artifact.name,
                "stage": str(props.get("stage", "")),
                "id": artifact.id,
                "runs": sorted(outputs[artifact.id]),
            }
    result.models = sorted(models.values(), key=lambda m: (m["name"], m["id"]))
    for artifact in sorted(artifacts, key=lambda a: a.id):
        if types.get(artifact.type_id) != lineage.DEPLOYMENT:
            continue
        props = properties_of(artifact)
        model_sha = str(props.get("model_sha256", ""))
        model = models.get(model_sha, {})
        result.deployments.append(
            {
                "id": artifact.id,
                "run_id": str(props.get("pipeline_run_id", ""))
                or ", ".join(sorted(outputs[artifact.id])),
                "model_name": model.get("name", ""),
                "model_version": lineage.version_of(model_sha),
                "model_sha256": model_sha,
                "environment": str(props.get("environment", "")),
                "strategy": str(props.get("strategy", "")),
                "traffic_percent": props.get("traffic_percent", ""),
                "ledger_sequence": props.get("ledger_sequence", ""),
                "uri": artifact.uri,
            }
        )
