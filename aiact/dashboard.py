"""The governance dashboard (`aiact dashboard`): four seed metrics of the pipeline's gates, over
time, per model name and per use case, with drill-down to every run, as static self-contained
HTML written from ML Metadata alone.

The metrics (also stated at the top of the page, `DEFINITIONS`):

- validation-gate success rate: of the runs whose data-preparation gate reached a verdict,
  the share whose verdict was `passed`;
- fairness-gate failure frequency: of the runs whose evaluation gate reached a verdict, the
  number (and share) whose breaches include a fairness check (`FAIRNESS_CHECKS`);
- mean time from training to production: over the deployed runs, the mean time from the start
  of the training execution to the end of the completed deployment execution of its model;
- runs blocked at approval: runs whose approval is pending (integration testing passed, no
  approval recorded yet: the approval stage records its execution when the request settles),
  expired or rejected.

Every run belongs to the time bucket of its start (its data-preparation execution's start);
buckets are days, ISO weeks or months, chosen by the span of the runs shown.

Both gate representations are read: the current one (the gate's evidence execution COMPLETE
with properties `verdict` = passed|breached and `gate_breaches`, followed by a verdict execution
`aiact.<gate>_verdict` that fails on a breach) and the older one (the gate's execution FAILED
with outcome `GateFailed` and `gate_breaches`).

The store is read with one query whatever its size: the run contexts, each carrying the
compact summary the stage runtime keeps on it (`aiact.runsummary`: per execution only the six
properties classified here, the use case and the model), so 10,000 runs cost 10,000 contexts
rather than ~70,000 executions with all their properties. Runs recorded without a summary are
read from their executions, run by run when few, else with a fixed number of batch queries:
executions by type (a gate's verdict tasks only when FAILED, by a filter query; under `--since`
a filter query on the creation time, which is indexed) and the events and artefacts of the
training executions by id (`load_runs`)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ml_metadata import ListOptions
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage, runsummary
from aiact.custody import CHAIN, GATE_REPORTS, VERDICT_SUFFIX
from aiact.lineage import LineageError, LineageStore, PropertyValue
from aiact.runsummary import RawExecution, RunSummary

# Check names of the evaluation gate that are fairness checks (components/evaluation/core.py:
# `<name>[<protected attribute>]`).
FAIRNESS_CHECKS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "fairness_declared",
    "insufficient_data",
)
VALIDATION_GATE = "data_preparation"
FAIRNESS_GATE = "evaluation"

# Verdicts of one stage of a run.
PASSED = "passed"
BREACHED = "breached"
COMPLETED = "completed"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
PENDING = "pending"
ERROR = "error"
RUNNING = "running"
# Status of a run: how far it got and why it stopped.
DEPLOYED = "deployed"
HALTED = "halted"  # a gate breached
BLOCKED = "blocked at approval"  # pending, expired or rejected
FAILED = "failed"  # a stage failed without a verdict (an error)
IN_PROGRESS = "in progress"

DEFINITIONS: tuple[tuple[str, str], ...] = (
    (
        "Validation-gate success rate",
        "Of the runs whose data-preparation (validation) gate reached a verdict, the share "
        "whose verdict was passed: passed / (passed + breached). A data-preparation execution "
        "that failed before reaching a verdict (an error) counts in neither; errors are shown "
        "apart.",
    ),
    (
        "Fairness-gate failure frequency",
        "Of the runs whose evaluation gate reached a verdict, the number whose breached checks "
        "include a fairness check (" + ", ".join(FAIRNESS_CHECKS) + ", per protected "
        "attribute), and that number's share of the evaluation verdicts. An evaluation that "
        "breached only performance, robustness, calibration or drift checks is not a fairness "
        "failure.",
    ),
    (
        "Mean time from training to production",
        "Over the deployed runs (a completed deployment execution), the mean of: end of the "
        "deployment execution minus start of the training execution that produced the "
        "deployed model, in hours. It includes evaluation, testing and the wait for approval.",
    ),
    (
        "Runs blocked at approval",
        "Runs whose integration testing passed and whose approval is pending (no approval "
        "execution recorded yet: the approval stage records its execution only when the "
        "request settles or expires), expired (recorded outcome ApprovalExpired) or rejected "
        "(ApprovalRejected). The rate is over the runs that reached approval.",
    ),
    (
        "Time buckets",
        "Each run counts in the bucket (day, ISO week or month, chosen by the span shown) of "
        "its start: the start of its data-preparation execution. Times are UTC.",
    ),
)


@dataclass(frozen=True)
class StageRecord:
    """One recorded execution of a run (a stage, or a gate's verdict task)."""

    stage: str
    execution_id: int
    state: str
    verdict: str
    breaches: tuple[str, ...]
    outcome: str
    started_ms: int
    finished_ms: int
    error: str = ""


@dataclass
class RunRecord:
    """A pipeline run as the dashboard sees it: its stages and where it stopped."""

    run_id: str
    started_ms: int
    stages: list[StageRecord] = field(default_factory=list)
    use_case: str = ""
    model_name: str = ""
    model_sha256: str = ""
    code_commit: str = ""
    environment: str = ""
    status: str = IN_PROGRESS
    stopped_at: str = ""
    detail: str = ""
    verdicts: dict[str, str] = field(default_factory=dict)
    breaches: tuple[str, ...] = ()
    train_to_production_s: float | None = None
    bucket: str = ""

    @property
    def fairness_failed(self) -> bool:
        """Whether the evaluation gate breached at least one fairness check."""
        return self.verdicts.get(FAIRNESS_GATE) == BREACHED and any(
            is_fairness_check(name) for name in self.evaluation_breaches
        )

    @property
    def evaluation_breaches(self) -> tuple[str, ...]:
        """The breached checks of the evaluation gate."""
        return tuple(
            name
            for record in self.stages
            if record.stage == FAIRNESS_GATE
            for name in record.breaches
        )

    @property
    def approval(self) -> str:
        """pending, expired, rejected, approved, error or '' (never reached approval)."""
        return self.verdicts.get("approval", "")

    @property
    def anchor(self) -> str:
        """The HTML id of this run's section on its bucket page."""
        return "run-" + re.sub(r"[^A-Za-z0-9_.-]", "_", self.run_id)

    @property
    def started(self) -> str:
        """Start time, UTC, to the minute."""
        return _utc(self.started_ms).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Metrics:
    """The four seed metrics over a set of runs (None: nothing to measure)."""

    runs: int
    validation_passed: int
    validation_verdicts: int
    validation_errors: int
    fairness_failed: int
    evaluation_verdicts: int
    deployed: int
    train_to_production_h: tuple[float, ...]
    reached_approval: int
    pending: int
    expired: int
    rejected: int

    @property
    def validation_success_rate(self) -> float | None:
        """passed / verdicts of the validation gate."""
        return _ratio(self.validation_passed, self.validation_verdicts)

    @property
    def fairness_failure_rate(self) -> float | None:
        """Fairness failures / verdicts of the evaluation gate."""
        return _ratio(self.fairness_failed, self.evaluation_verdicts)

    @property
    def mean_train_to_production_h(self) -> float | None:
        """Mean hours from training start to production, over the deployed runs."""
        times = self.train_to_production_h
        return sum(times) / len(times) if times else None

    @property
    def blocked_at_approval(self) -> int:
        """Pending + expired + rejected."""
        return self.pending + self.expired + self.rejected

    @property
    def blocked_rate(self) -> float | None:
        """Blocked / runs that reached approval."""
        return _ratio(self.blocked_at_approval, self.reached_approval)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "runs": self.runs,
            "validation_passed": self.validation_passed,
            "validation_verdicts": self.validation_verdicts,
            "validation_errors": self.validation_errors,
            "validation_success_rate": self.validation_success_rate,
            "fairness_failed": self.fairness_failed,
            "evaluation_verdicts": self.evaluation_verdicts,
            "fairness_failure_rate": self.fairness_failure_rate,
            "deployed": self.deployed,
            "mean_train_to_production_h": self.mean_train_to_production_h,
            "reached_approval": self.reached_approval,
            "blocked_at_approval": self.blocked_at_approval,
            "pending": self.pending,
            "expired": self.expired,
            "rejected": self.rejected,
        }


@dataclass(frozen=True)
class Bucket:
    """One time bucket: its label (2026-01-05, 2026-W02 or 2026-01) and first day."""

    label: str
    start: date
    metrics: Metrics


@dataclass
class Dashboard:
    """Everything the pages show, computed from the store."""

    source: str
    generated_at: str
    since: date | None
    unit: str
    runs: list[RunRecord]
    overall: Metrics
    over_time: list[Bucket]
    by_model: dict[str, Metrics]
    by_use_case: dict[str, Metrics]
    model_over_time: dict[str, list[Bucket]]
    use_case_over_time: dict[str, list[Bucket]]
    by_status: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the figures (runs summarised by status)."""

        def buckets(items: list[Bucket]) -> list[dict[str, Any]]:
            return [
                {"bucket": b.label, "start": b.start.isoformat(), **b.metrics.to_dict()}
                for b in items
            ]

        return {
            "source": self.source,
            "generated_at": self.generated_at,
            "since": self.since.isoformat() if self.since else None,
            "unit": self.unit,
            "overall": self.overall.to_dict(),
            "over_time": buckets(self.over_time),
            "by_model": {k: v.to_dict() for k, v in self.by_model.items()},
            "by_use_case": {k: v.to_dict() for k, v in self.by_use_case.items()},
            "by_status": dict(self.by_status),
        }


def is_fairness_check(name: str) -> bool:
    """Whether a check name (`metric[attribute]`) is one of the fairness checks."""
    return name.split("[", 1)[0].strip() in FAIRNESS_CHECKS


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def parse_since(text: str) -> date:
    """`--since`: an ISO date (2026-01-31) or date-time; one-line ValueError otherwise."""
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise ValueError(f"--since {text!r} is not an ISO date such as 2026-01-31") from None


# -- reading the store --------------------------------------------------------------------------


def _breaches(value: PropertyValue | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in str(value or "").split(";") if part.strip())


def stage_record(execution: Any, stage: str) -> StageRecord:
    """Classify one MLMD execution of `stage`: its verdict under either gate representation."""
    return stage_record_of(runsummary.read(execution, stage))


def stage_record_of(raw: RawExecution) -> StageRecord:
    """Classify one execution (read from the store or from a run summary): its verdict under
    either gate representation."""
    stage, props = raw.stage, raw.properties
    state = mlmd_pb.Execution.State.Name(raw.state)
    outcome = str(props.get("outcome", ""))
    recorded = str(props.get("verdict", ""))
    failed = raw.state == mlmd_pb.Execution.FAILED
    complete = raw.state == mlmd_pb.Execution.COMPLETE
    base = stage.removesuffix(VERDICT_SUFFIX)
    gate = base in GATE_REPORTS
    verdict: str
    if recorded == BREACHED or (failed and outcome == "GateFailed"):
        verdict = BREACHED
    elif failed and outcome == "ApprovalRejected":
        verdict = REJECTED
    elif failed and outcome == "ApprovalExpired":
        verdict = EXPIRED
    elif failed:
        verdict = ERROR
    elif complete and outcome not in ("", "completed"):
        verdict = ERROR  # a COMPLETE state contradicting its recorded failure: not a pass
    elif complete:
        verdict = PASSED if gate else (APPROVED if stage == "approval" else COMPLETED)
    else:
        verdict = RUNNING
    started = props.get("started_at_ms")
    duration = props.get("duration_s")
    if isinstance(started, int | float) and not isinstance(started, bool):
        started_ms = int(started)
        finished_ms = started_ms + round(float(duration or 0) * 1000)
    else:
        # Records without the stage runtime's timing: MLMD's own times (creation is at the end
        # of the stage, when stage_execution records it).
        finished_ms = raw.create_time_ms
        started_ms = finished_ms - round(float(duration or 0) * 1000)
    return StageRecord(
        stage=stage,
        execution_id=raw.execution_id,
        state=state,
        verdict=verdict,
        breaches=_breaches(props.get("gate_breaches")),
        outcome=outcome,
        started_ms=started_ms,
        finished_ms=finished_ms,
        error=str(props.get("error", ""))[:300],
    )


def stage_names() -> tuple[str, ...]:
    """Every execution type the dashboard reads: the chain's stages and the gates' verdicts."""
    return tuple(
        name
        for stage in CHAIN
        for name in ((stage, stage + VERDICT_SUFFIX) if stage in GATE_REPORTS else (stage,))
    )


def _executions(mlmd: Any, type_name: str, since_ms: int | None) -> list[Any]:
    """The executions of one type (started on or after `since_ms`). A verdict task's are read
    only when FAILED (a breach or an error): a passed verdict repeats its gate's."""
    conditions = [f"type = '{type_name}'"]
    if type_name.endswith(VERDICT_SUFFIX):
        conditions.append("last_known_state = FAILED")
    if since_ms is not None:
        # MLMD records an execution when its stage ends, so every execution of a run started
        # at or after `since` was created after it: an indexed prefilter (load_runs then keeps
        # the runs by their recorded start).
        conditions.append(f"create_time_since_epoch >= {since_ms}")
    if len(conditions) == 1:
        return list(mlmd.get_executions_by_type(type_name))  # one call, no result pages
    query = " AND ".join(conditions)
    return list(mlmd.get_executions(list_options=ListOptions(filter_query=query)))


def _chunks(ids: Sequence[int], size: int = 2000) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


# Runs without a summary (recorded before summaries existed, or whose last summary write
# failed) are read run by run up to this many; beyond, by the batch queries per execution type.
PER_RUN_FALLBACK = 200


def _since_ms(since: date | None) -> int | None:
    if since is None:
        return None
    return int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp() * 1000)


def load_runs(store: LineageStore, since: date | None = None) -> list[RunRecord]:
    """Every run with its classified stages, model and use case, oldest first.

    The runs are read from their contexts (one query), each carrying its summary
    (`aiact.runsummary`, kept by the stage runtime); a run without one is read from its
    executions (`_summaries_from_executions`). Under `since`, only runs whose data-preparation
    execution started on or after that day (UTC)."""
    mlmd = store.store
    since_ms = _since_ms(since)
    contexts = list(mlmd.get_contexts_by_type(lineage.RUN_CONTEXT_TYPE))
    summaries: dict[str, RunSummary] = {}
    missing = []
    for context in contexts:
        summary = runsummary.read_summary(context)
        if summary is None:
            missing.append(context)
        else:
            summaries[context.name] = summary
    if missing:
        summaries.update(_summaries_from_executions(mlmd, missing, since_ms))
    by_name = {context.name: context for context in contexts}
    runs = [
        run
        for run_id, summary in summaries.items()
        if (run := _run_record(run_id, summary, by_name.get(run_id), since_ms)) is not None
    ]
    runs.sort(key=lambda r: (r.started_ms, r.run_id))
    return runs


def _context_value(context: Any, key: str) -> str:
    value = None if context is None else context.custom_properties.get(key)
    return "" if value is None else str(lineage.property_value(value))


def _run_record(
    run_id: str, summary: RunSummary, context: Any, since_ms: int | None
) -> RunRecord | None:
    """A classified run, or None (nothing the dashboard reads, or started before `since`)."""
    records = sorted(
        (stage_record_of(raw) for raw in summary.executions), key=lambda r: r.execution_id
    )
    if not records:
        return None
    first = [r for r in records if r.stage == VALIDATION_GATE]
    started = min(r.started_ms for r in (first or records))
    if since_ms is not None and (not first or started < since_ms):
        return None  # the run started before `since`
    run = RunRecord(
        run_id=run_id,
        started_ms=started,
        stages=records,
        use_case=summary.use_case,
        model_name=summary.model_name,
        model_sha256=summary.model_sha256,
        code_commit=_context_value(context, "code_commit"),
        environment=_context_value(context, "environment"),
    )
    classify(run)
    return run


def _summaries_from_executions(
    mlmd: Any, contexts: Sequence[Any], since_ms: int | None
) -> dict[str, RunSummary]:
    """The summaries of runs whose contexts carry none, from their executions: run by run
    (their contexts' executions) when they are few, else in batch queries per execution type
    (a verdict task's only when FAILED; under `since` a filter on the indexed creation time)
    and the events and artefacts of the training executions by id."""
    types = {t.id: t.name for t in mlmd.get_execution_types()}
    if len(contexts) <= PER_RUN_FALLBACK:
        return {c.name: runsummary.summary_of_run(mlmd, c, types) for c in contexts}
    wanted = {context.name for context in contexts}
    known = set(types.values())
    by_run: dict[str, list[RawExecution]] = defaultdict(list)
    training: dict[int, str] = {}
    for stage in stage_names():
        type_name = f"aiact.{stage}"
        if type_name not in known:
            continue
        for execution in _executions(mlmd, type_name, since_ms):
            run_id = execution.custom_properties.get("run_id")
            if run_id is None or run_id.string_value not in wanted:
                continue
            by_run[run_id.string_value].append(runsummary.read(execution, stage))
            if stage == "training":
                training[execution.id] = run_id.string_value
    models: dict[str, dict[int, Any]] = defaultdict(dict)
    produced: dict[int, int] = {}
    for ids in _chunks(sorted(training)):
        produced.update(runsummary.trained_models(mlmd, ids))
    for ids in _chunks(sorted(produced)):
        for artifact in mlmd.get_artifacts_by_id(ids):
            models[training[produced[artifact.id]]][artifact.id] = artifact
    return {
        run_id: runsummary.summarize(executions, models.get(run_id, {}))
        for run_id, executions in by_run.items()
    }


def classify(run: RunRecord) -> None:
    """Where the run stopped: the first stage (in chain order) that did not pass."""
    # The latest execution of each stage (a retried task records again); records are by id.
    latest = {record.stage: record for record in run.stages}
    breaches: list[str] = []
    previous = ""
    for stage in CHAIN:
        record = latest.get(stage)
        verdict_record = latest.get(stage + VERDICT_SUFFIX)
        if record is None:
            if previous == "integration_testing" and stage == "approval":
                run.verdicts["approval"] = PENDING
                run.status, run.stopped_at = BLOCKED, "approval"
                run.detail = "pending: no approval recorded yet"
            elif previous:
                run.status, run.stopped_at = IN_PROGRESS, previous
                run.detail = f"nothing recorded after {previous.replace('_', ' ')}"
            else:
                run.status, run.stopped_at = IN_PROGRESS, stage
                run.detail = f"no {stage.replace('_', ' ')} recorded"
            break
        verdict = record.verdict
        breached = record.breaches or (verdict_record.breaches if verdict_record else ())
        if (
            verdict == PASSED
            and verdict_record is not None
            and verdict_record.verdict in (BREACHED, ERROR)
        ):
            verdict = verdict_record.verdict  # the verdict task halted the run
            record = verdict_record
        run.verdicts[stage] = verdict
        if verdict == BREACHED:
            breaches += breached
            run.status, run.stopped_at = HALTED, stage
            run.detail = f"{stage.replace('_', ' ')} gate breached: " + (
                "; ".join(breached) or "no breach named"
            )
            break
        if verdict in (REJECTED, EXPIRED):
            run.status, run.stopped_at = BLOCKED, stage
            run.detail = f"{verdict}: {record.error}" if record.error else verdict
            break
        if verdict in (ERROR, RUNNING):
            run.status = FAILED if verdict == ERROR else IN_PROGRESS
            run.stopped_at = record.stage
            run.detail = f"{record.outcome or record.state}: {record.error}".rstrip(": ")
            break
        previous = stage
    else:
        run.status, run.stopped_at, run.detail = DEPLOYED, "deployment", ""
        training = latest.get("training")
        deployment = latest.get("deployment")
        if training is not None and deployment is not None:
            run.train_to_production_s = (deployment.finished_ms - training.started_ms) / 1000
    run.breaches = tuple(breaches)


# -- figures -------------------------------------------------------------------------------------


def metrics_of(runs: Iterable[RunRecord]) -> Metrics:
    """The four metrics over `runs`."""
    counts: dict[str, int] = defaultdict(int)
    times: list[float] = []
    for run in runs:
        counts["runs"] += 1
        validation = run.verdicts.get(VALIDATION_GATE, "")
        counts["validation_passed"] += validation == PASSED
        counts["validation_verdicts"] += validation in (PASSED, BREACHED)
        counts["validation_errors"] += validation == ERROR
        counts["evaluation_verdicts"] += run.verdicts.get(FAIRNESS_GATE, "") in (PASSED, BREACHED)
        counts["fairness_failed"] += run.fairness_failed
        if run.status == DEPLOYED:
            counts["deployed"] += 1
            if run.train_to_production_s is not None:
                times.append(run.train_to_production_s / 3600)
        approval = run.approval
        counts["reached_approval"] += approval != ""
        counts[approval] += approval in (PENDING, EXPIRED, REJECTED)
    return Metrics(
        runs=counts["runs"],
        validation_passed=counts["validation_passed"],
        validation_verdicts=counts["validation_verdicts"],
        validation_errors=counts["validation_errors"],
        fairness_failed=counts["fairness_failed"],
        evaluation_verdicts=counts["evaluation_verdicts"],
        deployed=counts["deployed"],
        train_to_production_h=tuple(times),
        reached_approval=counts["reached_approval"],
        pending=counts[PENDING],
        expired=counts[EXPIRED],
        rejected=counts[REJECTED],
    )


def bucket_unit(first: date, last: date) -> str:
    """day for a span up to 31 days, week up to two years, else month."""
    span = (last - first).days
    return "day" if span <= 31 else "week" if span <= 731 else "month"


def bucket_of(day: date, unit: str) -> tuple[str, date]:
    """The label and first day of the bucket holding `day`."""
    if unit == "day":
        return day.isoformat(), day
    if unit == "week":
        year, week, weekday = day.isocalendar()
        return f"{year}-W{week:02d}", day - timedelta(days=weekday - 1)
    return f"{day.year}-{day.month:02d}", day.replace(day=1)


def _next_bucket(start: date, unit: str) -> date:
    if unit == "day":
        return start + timedelta(days=1)
    if unit == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def _over_time(runs: Sequence[RunRecord], unit: str, first: date, last: date) -> list[Bucket]:
    """Every bucket from the first run's to the last run's, empty ones included."""
    grouped: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        grouped[run.bucket].append(run)
    buckets: list[Bucket] = []
    label, start = bucket_of(first, unit)
    while start <= last:
        buckets.append(Bucket(label, start, metrics_of(grouped.get(label, ()))))
        start = _next_bucket(start, unit)
        label, start = bucket_of(start, unit)
    return buckets


def compute(runs: list[RunRecord], source: str, since: date | None = None) -> Dashboard:
    """The dashboard's figures from classified runs."""
    days = [_utc(run.started_ms).date() for run in runs]
    first = min(days) if days else (since or datetime.now(UTC).date())
    last = max(days) if days else first
    unit = bucket_unit(first, last)
    for run, day in zip(runs, days, strict=True):
        run.bucket = bucket_of(day, unit)[0]
    models: dict[str, list[RunRecord]] = defaultdict(list)
    use_cases: dict[str, list[RunRecord]] = defaultdict(list)
    statuses: dict[str, int] = defaultdict(int)
    for run in runs:
        models[run.model_name or NO_MODEL].append(run)
        use_cases[run.use_case or UNKNOWN].append(run)
        statuses[run.status] += 1
    return Dashboard(
        source=source,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        since=since,
        unit=unit,
        runs=runs,
        overall=metrics_of(runs),
        over_time=_over_time(runs, unit, first, last),
        by_model={k: metrics_of(v) for k, v in sorted(models.items())},
        by_use_case={k: metrics_of(v) for k, v in sorted(use_cases.items())},
        model_over_time={k: _over_time(v, unit, first, last) for k, v in sorted(models.items())},
        use_case_over_time={
            k: _over_time(v, unit, first, last) for k, v in sorted(use_cases.items())
        },
        by_status=dict(sorted(statuses.items())),
    )


NO_MODEL = "(no model: stopped before training)"
UNKNOWN = "(not recorded)"


def build(store: LineageStore, source: str, since: date | None = None) -> Dashboard:
    """Read the store and compute the dashboard."""
    return compute(load_runs(store, since), source, since)


# -- pages ---------------------------------------------------------------------------------------


def percent(value: float | None) -> str:
    """A rate as text: 85.0% (or an em dash when there is nothing to measure)."""
    return "—" if value is None else f"{value * 100:.1f}%"


def hours(value: float | None) -> str:
    """Hours as text: 5.25 h."""
    return "—" if value is None else f"{value:.2f} h"


def _figures(dashboard: Dashboard) -> list[str]:
    from aiact import pages, plots

    buckets = dashboard.over_time
    if not buckets:
        return []
    dates = [b.start for b in buckets]
    # One line per use case for the validation gate (runs it halts have no model yet), per
    # model name for the rest; only when there are a few.
    use_cases = dashboard.use_case_over_time
    models = {k: v for k, v in dashboard.model_over_time.items() if k != NO_MODEL}

    def series(metric: str) -> dict[str, list[float | None]]:
        lines: dict[str, list[float | None]] = {
            "all runs": [getattr(b.metrics, metric) for b in buckets]
        }
        named = use_cases if metric == "validation_success_rate" else models
        if 1 < len(named) <= 6:
            for name, items in named.items():
                lines[name] = [getattr(b.metrics, metric) for b in items]
        return lines

    per = f"per {dashboard.unit}"
    charts: list[tuple[str, dict[str, list[float | None]], str, str, tuple[float, float] | None]]
    charts = [
        (
            f"Validation-gate success rate {per}",
            series("validation_success_rate"),
            "passed / verdicts",
            ".1%",
            (0.0, 1.05),
        ),
        (
            f"Fairness-gate failure frequency {per}",
            series("fairness_failure_rate"),
            "fairness failures / evaluation verdicts",
            ".1%",
            (0.0, 1.05),
        ),
        (
            f"Mean time from training to production {per}",
            series("mean_train_to_production_h"),
            "hours",
            ".2f",
            None,
        ),
        (
            f"Runs blocked at approval {per}",
            {
                "pending": [float(b.metrics.pending) for b in buckets],
                "expired": [float(b.metrics.expired) for b in buckets],
                "rejected": [float(b.metrics.rejected) for b in buckets],
            },
            "runs",
            ".0f",
            None,
        ),
    ]
    figures: list[str] = []
    for title, lines, y_label, value_format, y_range in charts:
        if not any(v is not None for values in lines.values() for v in values):
            figures.append(pages.trusted(f"<p class='meta'>{title}: nothing to measure yet.</p>"))
            continue
        figures.append(
            pages.trusted(
                plots.line_over_time(
                    dates,
                    lines,
                    title,
                    y_label=y_label,
                    y_range=y_range,
                    value_format=value_format,
                )
            )
        )
    return figures


def write(dashboard: Dashboard, out: Path) -> Path:
    """Write index.html, one page per time bucket under runs/ and dashboard.json; returns the
    index page."""
    import json

    from aiact import pages

    out.mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    grouped: dict[str, list[RunRecord]] = defaultdict(list)
    for run in dashboard.runs:
        grouped[run.bucket].append(run)
    helpers = {"percent": percent, "hours": hours, "statuses": STATUS_ORDER}
    blocked = [run for run in dashboard.runs if run.status == BLOCKED]
    index = out / "index.html"
    index.write_text(
        pages.render(
            "dashboard.html.j2",
            title="Governance dashboard",
            dashboard=dashboard,
            definitions=DEFINITIONS,
            figures=_figures(dashboard),
            blocked=blocked,
            **helpers,
        ),
        encoding="utf-8",
    )
    for bucket in dashboard.over_time:
        runs = grouped.get(bucket.label, [])
        if not runs:
            continue
        (out / "runs" / f"{bucket.label}.html").write_text(
            pages.render(
                "dashboard_runs.html.j2",
                title=f"Runs of {bucket.label}",
                dashboard=dashboard,
                bucket=bucket,
                runs=runs,
                stage_time=_stage_time,
                **helpers,
            ),
            encoding="utf-8",
        )
    (out / "dashboard.json").write_text(
        json.dumps(dashboard.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    return index


STATUS_ORDER = (DEPLOYED, BLOCKED, HALTED, FAILED, IN_PROGRESS)


def _stage_time(record: StageRecord) -> str:
    return _utc(record.started_ms).strftime("%Y-%m-%d %H:%M:%S")


def run_dashboard(metadata_uri: str, out: Path, since: str = "") -> tuple[Path, Dashboard]:
    """`aiact dashboard`: build from the store named by `metadata_uri` and write the pages."""
    day = parse_since(since) if since else None
    if out.exists() and not out.is_dir():
        raise LineageError(f"--out {out} exists and is not a directory")
    dashboard = build(LineageStore.connect(metadata_uri), metadata_uri, day)
    return write(dashboard, out), dashboard
