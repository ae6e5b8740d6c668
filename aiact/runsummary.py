"""A compact summary of each pipeline run, kept on its run context, so that the governance
dashboard reads one context per run instead of every execution of every run.

At 10,000 runs the dashboard otherwise reads ~70,000 executions, each with a dozen or more
properties (statistics digests, platform and custody hashes), and ML Metadata decodes every
property it returns (~18 us each): ~30 s. The summary holds only what the dashboard classifies a
run by: per execution of the chain (and per FAILED verdict task) its id, type, state, creation
time and six properties (outcome, verdict, started_at_ms, duration_s, gate_breaches, the first
300 characters of error), the run's use case and the model its training wrote.

The stage runtime (`aiact.stage.stage_execution`) calls `update_run_summary` after it recorded
each execution. The summary is rebuilt from the run's own executions every time (one context's
executions, a few milliseconds), never patched, so it is complete even when a run recorded
before summaries existed continues, a task is retried or two stages of a run finish together;
it is written with a field mask, touching no other property of the context. A run whose context
has no summary (recorded by an older release, or whose last write failed) is read from its
executions by the dashboard (`aiact.dashboard.load_runs`), with the same code.

The summary is a reading aid, not evidence: the dashboard shows governance figures, while the
chain-of-custody verifier (`aiact.custody`) and the audit commands read the executions
themselves. An execution edited in the store after its run's last stage is not reflected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage
from aiact.custody import ORDER, VERDICT_SUFFIX
from aiact.lineage import LineageStore, PropertyValue

SUMMARY_PROPERTY = "aiact_run_summary"
SUMMARY_VERSION = 1
# The execution properties the dashboard classifies a stage by (`aiact.dashboard.stage_record`).
RAW_KEYS = ("outcome", "verdict", "started_at_ms", "duration_s", "gate_breaches", "error")
ERROR_CHARS = 300
# The chain's stages and the gates' verdict tasks, in chain order.
STAGES = ORDER


@dataclass(frozen=True)
class RawExecution:
    """What the dashboard needs of one execution."""

    stage: str
    execution_id: int
    state: int  # mlmd_pb.Execution.State
    create_time_ms: int
    properties: Mapping[str, PropertyValue]
    # Only used to find the run's use case (kept once per run in the summary).
    use_case: str = field(default="", compare=False)


@dataclass(frozen=True)
class RunSummary:
    """A run's executions (those the dashboard reads), its use case and its model."""

    executions: tuple[RawExecution, ...]
    use_case: str = ""
    model_sha256: str = ""
    model_name: str = ""

    def to_json(self) -> str:
        """The compact JSON kept on the run context."""
        return json.dumps(
            {
                "v": SUMMARY_VERSION,
                "x": [
                    [
                        e.stage,
                        e.execution_id,
                        e.state,
                        e.create_time_ms,
                        [e.properties.get(key) for key in RAW_KEYS],
                    ]
                    for e in self.executions
                ],
                "u": self.use_case,
                "m": [self.model_sha256, self.model_name],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> RunSummary | None:
        """The summary, or None when it is not one this release writes."""
        try:
            data = json.loads(text)
            if data.get("v") != SUMMARY_VERSION:
                return None
            executions = tuple(
                RawExecution(
                    stage=str(stage),
                    execution_id=int(execution_id),
                    state=int(state),
                    create_time_ms=int(created),
                    properties={
                        key: value
                        for key, value in zip(RAW_KEYS, values, strict=True)
                        if value is not None
                    },
                )
                for stage, execution_id, state, created, values in data["x"]
            )
            model_sha256, model_name = data["m"]
            return cls(executions, str(data["u"]), str(model_sha256), str(model_name))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def read(execution: Any, stage: str) -> RawExecution:
    """The raw record of one MLMD execution (reading only the keys needed: executions carry
    large properties, such as statistics digests)."""
    values: dict[str, PropertyValue] = {}
    for key in RAW_KEYS:
        value = execution.custom_properties.get(key)
        if value is not None:
            values[key] = lineage.property_value(value)
    if "error" in values:
        values["error"] = str(values["error"])[:ERROR_CHARS]
    use_case = execution.custom_properties.get("use_case")
    return RawExecution(
        stage=stage,
        execution_id=execution.id,
        state=execution.last_known_state,
        create_time_ms=execution.create_time_since_epoch,
        properties=values,
        use_case=use_case.string_value if use_case is not None else "",
    )


def wanted(stage: str, state: int) -> bool:
    """Whether the dashboard reads this execution: every chain stage's, a verdict task's only
    when FAILED (a breach or an error; a passed verdict repeats its gate's)."""
    if stage not in STAGES:
        return False
    return not stage.endswith(VERDICT_SUFFIX) or state == mlmd_pb.Execution.FAILED


def use_case_of(executions: Iterable[RawExecution]) -> str:
    """The first use case recorded, in chain order."""
    ordered = sorted(executions, key=lambda e: (STAGES.index(e.stage), e.execution_id))
    return next((e.use_case for e in ordered if e.use_case), "")


def summarize(
    executions: Sequence[RawExecution], models: Mapping[int, mlmd_pb.Artifact]
) -> RunSummary:
    """A run's summary from its raw executions and the models its training executions wrote
    (by artefact id; the newest is the run's)."""
    model = models[max(models)] if models else None
    name = model.custom_properties.get("model_name") if model is not None else None
    return RunSummary(
        executions=tuple(sorted(executions, key=lambda e: e.execution_id)),
        use_case=use_case_of(executions),
        model_sha256=model.name if model is not None else "",
        model_name=name.string_value if name is not None else "",
    )


def trained_models(mlmd: Any, training_ids: Sequence[int]) -> dict[int, int]:
    """artefact id -> training execution id, for the models (OUTPUT `model`) they wrote."""
    produced: dict[int, int] = {}
    if not training_ids:
        return produced
    for event in mlmd.get_events_by_execution_ids(list(training_ids)):
        if event.type == mlmd_pb.Event.OUTPUT and any(
            step.key == "model" for step in event.path.steps
        ):
            produced[event.artifact_id] = event.execution_id
    return produced


def summary_of_run(mlmd: Any, context: Any, type_names: Mapping[int, str]) -> RunSummary:
    """Build a run's summary from its context's executions (a few queries, one run)."""
    raw = []
    training = []
    for execution in mlmd.get_executions_by_context(context.id):
        stage = type_names.get(execution.type_id, "").removeprefix("aiact.")
        if stage == "training":
            training.append(execution.id)
        if wanted(stage, execution.last_known_state):
            raw.append(read(execution, stage))
    produced = trained_models(mlmd, training)
    models = {a.id: a for a in mlmd.get_artifacts_by_id(sorted(produced))} if produced else {}
    return summarize(raw, models)


def read_summary(context: Any) -> RunSummary | None:
    """The summary kept on a run context, if any."""
    value = context.custom_properties.get(SUMMARY_PROPERTY)
    if value is None or not value.string_value:
        return None
    return RunSummary.from_json(value.string_value)


def update_run_summary(store: LineageStore, run_id: str) -> bool:
    """Rebuild the summary of run `run_id` from its executions and keep it on its context
    (field-masked: no other property of the context is written). Never raises: a failure is
    logged, and the dashboard then reads that run's executions. Returns whether it was kept."""
    from aiact.observability import log_event

    try:
        mlmd = store.store
        context = mlmd.get_context_by_type_and_name(lineage.RUN_CONTEXT_TYPE, run_id)
        if context is None:
            return False
        types = {t.id: t.name for t in mlmd.get_execution_types()}
        summary = summary_of_run(mlmd, context, types)
        update = mlmd_pb.Context(id=context.id, type_id=context.type_id, name=context.name)
        update.custom_properties[SUMMARY_PROPERTY].string_value = summary.to_json()
        mlmd.put_contexts([update], field_mask_paths=[f"custom_properties.{SUMMARY_PROPERTY}"])
        return True
    except Exception as exc:  # a summary is a reading aid: it never fails a stage
        log_event("run_summary", "not_updated", run_id=run_id, error=str(exc)[:300])
        return False
