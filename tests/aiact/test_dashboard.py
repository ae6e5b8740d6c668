"""The governance dashboard against a history fixed in advance (recorded with the same
`LineageStore.record_execution` the stage runtime uses, in both gate representations), and
against the records of real stage executors (tests/chain.py)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from aiact import dashboard, lineage, runsummary
from aiact.cli import main
from aiact.custody import verdict_stage
from aiact.hashing import sha256_path
from aiact.lineage import ArtifactRecord, LineageStore, PropertyValue, RunInfo
from aiact.policy import BREACHED, PASSED, GateFailed
from components.evaluation.fairness_statistics import METRICS
from tests.browser import visible_text
from tests.chain import Chain

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Monday 2026-01-05 09:00 UTC: ISO week 2026-W02.
T0_MS = int(datetime(2026, 1, 5, 9, 0, tzinfo=UTC).timestamp() * 1000)
FAIRNESS_BREACH = ("demographic_parity_difference[sex]", "equalized_odds_difference[age_band]")
PERFORMANCE_BREACH = ("roc_auc", "roc_auc_gap_to_baseline")
DATA_BREACH = ("missing_rate[income]", "min_label_share")
MODELS = {"credit": "credit-scoring", "income": "income-band"}
REPORT_TYPES = {
    "data_preparation": lineage.DATA_VALIDATION_REPORT,
    "feature_engineering": lineage.DATA_VALIDATION_REPORT,
    "evaluation": lineage.EVALUATION_REPORT,
    "integration_testing": lineage.INTEGRATION_TEST_REPORT,
}


@dataclass(frozen=True)
class Planned:
    """One run of the fixed history: when, which use case, how it ends."""

    run_id: str
    day: int  # days after T0
    use_case: str
    fate: str  # data | fairness | performance | pending | rejected | expired | deployed
    legacy: bool = False  # the older gate representation (FAILED + GateFailed)
    hours_to_production: float = 0.0


# 20 runs over weeks W02, W03, W04 and W07 of 2026 (W05 and W06 empty): 3 halted at data
# validation, 4 at the fairness gate, 1 at the evaluation gate for performance only, 1 pending,
# 1 rejected and 1 expired approval, 9 deployed 1..9 hours after training started.
HISTORY = (
    # W02: validation 3/5, fairness 0/3, deployed 3 (1, 2, 3 h), blocked 0
    Planned("run-01", 0, "credit", "data"),
    Planned("run-02", 0, "credit", "data", legacy=True),
    Planned("run-03", 1, "credit", "deployed", hours_to_production=1),
    Planned("run-04", 2, "credit", "deployed", legacy=True, hours_to_production=2),
    Planned("run-05", 3, "credit", "deployed", hours_to_production=3),
    # W03: validation 5/5, fairness 2/5, deployed 2 (4, 5 h), blocked 1 (pending)
    Planned("run-06", 7, "credit", "fairness"),
    Planned("run-07", 8, "credit", "fairness", legacy=True),
    Planned("run-08", 9, "credit", "deployed", hours_to_production=4),
    Planned("run-09", 10, "credit", "deployed", hours_to_production=5),
    Planned("run-10", 11, "credit", "pending"),
    # W04: validation 4/5, fairness 2/4, deployed 0, blocked 1 (rejected)
    Planned("run-11", 14, "income", "data"),
    Planned("run-12", 15, "income", "fairness"),
    Planned("run-13", 15, "income", "fairness"),
    Planned("run-14", 16, "income", "performance", legacy=True),
    Planned("run-15", 17, "income", "rejected"),
    # W07: validation 5/5, fairness 0/5, deployed 4 (6, 7, 8, 9 h), blocked 1 (expired)
    Planned("run-16", 35, "income", "expired"),
    Planned("run-17", 35, "income", "deployed", hours_to_production=6),
    Planned("run-18", 36, "income", "deployed", hours_to_production=7),
    Planned("run-19", 37, "income", "deployed", legacy=True, hours_to_production=8),
    Planned("run-20", 38, "income", "deployed", hours_to_production=9),
)


class Recorder:
    """Records one planned run stage by stage with `record_execution`, setting the properties
    the stage runtime (aiact.stage) sets: started_at_ms, duration_s, outcome, error, and for a
    gate verdict / gate_breaches (current representation, followed by its verdict task) or
    FAILED with outcome GateFailed (older representation)."""

    def __init__(self, store: LineageStore, plan: Planned) -> None:
        self.store = store
        self.plan = plan
        self.run = RunInfo(
            run_id=plan.run_id,
            pipeline_name="test",
            code_commit="c0ffee" * 6 + "abcd",
            environment="development",
        )
        self.clock = T0_MS + plan.day * DAY_MS
        self.records: dict[str, ArtifactRecord] = {}

    def artifact(
        self, type_name: str, role: str, props: dict[str, PropertyValue] | None = None
    ) -> ArtifactRecord:
        digest = hashlib.sha256(f"{self.plan.run_id}/{role}".encode()).hexdigest()
        record = ArtifactRecord(
            type_name, f"/runs/{self.plan.run_id}/{role}", digest, role, props or {}
        )
        self.records[role] = record
        return record

    def execute(
        self,
        stage: str,
        duration_s: float,
        inputs: list[str],
        outputs: list[ArtifactRecord],
        *,
        failed: str = "",
        breaches: tuple[str, ...] = (),
        verdict: str = "",
    ) -> None:
        props: dict[str, PropertyValue] = {
            "started_at_ms": self.clock,
            "duration_s": duration_s,
            "outcome": failed or "completed",
            "use_case": self.plan.use_case,
        }
        if failed:
            props["error"] = f"{failed}: {'; '.join(breaches) or 'refused'}"
        if failed == "GateFailed" or verdict:
            props["gate_breaches"] = "; ".join(breaches)
        if verdict:
            props["verdict"] = verdict
        self.store.record_execution(
            run=self.run,
            stage=stage,
            inputs=[self.records[role] for role in inputs],
            outputs=outputs,
            succeeded=not failed,
            properties=props,
        )
        self.clock += round(duration_s * 1000)

    def gate(
        self,
        stage: str,
        report_role: str,
        inputs: list[str],
        outputs: list[ArtifactRecord],
        breaches: tuple[str, ...] = (),
    ) -> bool:
        report = self.artifact(REPORT_TYPES[stage], report_role, {"passed": not breaches})
        if self.plan.legacy:
            self.execute(
                stage,
                30,
                inputs,
                [report] if breaches else [report, *outputs],
                failed="GateFailed" if breaches else "",
                breaches=breaches,
            )
            return not breaches
        verdict = BREACHED if breaches else PASSED
        self.execute(stage, 30, inputs, [report, *outputs], breaches=breaches, verdict=verdict)
        role = verdict_stage(stage)
        self.execute(
            role,
            0.5,
            [report_role],
            [self.artifact(lineage.GATE_VERDICT, role, {"verdict": verdict})],
            failed="GateFailed" if breaches else "",
            breaches=breaches,
            verdict=verdict,
        )
        return not breaches

    def record(self) -> None:
        plan = self.plan
        self.artifact(lineage.RAW_DATASET, "source")
        self.artifact(lineage.GATE_POLICY, "gate_policy")
        dataset = self.artifact(lineage.DATASET, "dataset", {"use_case": plan.use_case})
        breach = DATA_BREACH if plan.fate == "data" else ()
        if not self.gate(
            "data_preparation",
            "validation_report",
            ["source", "gate_policy"],
            [dataset],
            breach,
        ):
            return
        features = self.artifact(lineage.FEATURE_SET, "feature_set")
        self.gate("feature_engineering", "feature_report", ["dataset"], [features])
        training_start = self.clock
        model = self.artifact(
            lineage.MODEL, "model", {"model_name": MODELS[plan.use_case], "stage": "experimental"}
        )
        self.execute("training", 600, ["feature_set"], [model])
        breach = {"fairness": FAIRNESS_BREACH, "performance": PERFORMANCE_BREACH}.get(plan.fate, ())
        if not self.gate("evaluation", "evaluation_report", ["model", "feature_set"], [], breach):
            return
        registration = self.artifact(lineage.MODEL_REGISTRATION, "registration")
        self.execute("registration", 5, ["model", "evaluation_report"], [registration])
        self.gate("integration_testing", "integration_report", ["model", "registration"], [])
        if plan.fate == "pending":
            return
        deployment_s = 20.0
        if plan.fate == "deployed":
            wait_s = (training_start + plan.hours_to_production * HOUR_MS - self.clock) / 1000
            wait_s -= deployment_s
        else:
            wait_s = 7200.0
        failed = {"rejected": "ApprovalRejected", "expired": "ApprovalExpired"}.get(plan.fate, "")
        approval = self.artifact(lineage.APPROVAL, "approval", {"outcome": plan.fate})
        self.execute("approval", wait_s, ["model", "integration_report"], [approval], failed=failed)
        if failed:
            return
        deployment = self.artifact(lineage.DEPLOYMENT, "deployment", {"strategy": "canary"})
        self.execute("deployment", deployment_s, ["model", "approval"], [deployment])


def seed_history(uri: str, summaries: bool) -> LineageStore:
    """Record HISTORY into the store at `uri`, with each run's summary on its context (as the
    stage runtime keeps it) or without (as an older release recorded runs)."""
    store = LineageStore.connect(uri)
    for plan in HISTORY:
        Recorder(store, plan).record()
        if summaries:
            assert runsummary.update_run_summary(store, plan.run_id)
    return store


@pytest.fixture(scope="module", params=["summaries", "executions", "batch"])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A SQLite store holding exactly HISTORY, read by the dashboard from the run summaries,
    from each run's executions, or from the batch queries per execution type."""
    uri = f"sqlite://{tmp_path_factory.mktemp('dashboard') / 'mlmd.sqlite'}"
    seed_history(uri, summaries=request.param == "summaries")
    original = dashboard.PER_RUN_FALLBACK
    if request.param == "batch":
        dashboard.PER_RUN_FALLBACK = 0
    try:
        yield uri
    finally:
        dashboard.PER_RUN_FALLBACK = original


EXPECTED_BUCKETS = {
    # bucket: (runs, validation passed/verdicts, fairness failed/verdicts, deployed, mean h,
    #          pending/expired/rejected)
    "2026-W02": (5, (3, 5), (0, 3), 3, 2.0, (0, 0, 0)),
    "2026-W03": (5, (5, 5), (2, 5), 2, 4.5, (1, 0, 0)),
    "2026-W04": (5, (4, 5), (2, 4), 0, None, (0, 0, 1)),
    "2026-W05": (0, (0, 0), (0, 0), 0, None, (0, 0, 0)),
    "2026-W06": (0, (0, 0), (0, 0), 0, None, (0, 0, 0)),
    "2026-W07": (5, (5, 5), (0, 5), 4, 7.5, (0, 1, 0)),
}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def test_computed_figures_are_the_fixed_history(seeded: str) -> None:
    board = dashboard.build(LineageStore.connect(seeded), seeded)
    overall = board.overall
    assert overall.runs == 20
    assert (overall.validation_passed, overall.validation_verdicts) == (17, 20)
    assert overall.validation_success_rate == pytest.approx(0.85)
    assert (overall.fairness_failed, overall.evaluation_verdicts) == (4, 17)
    assert overall.fairness_failure_rate == pytest.approx(4 / 17)
    assert overall.deployed == 9
    assert overall.mean_train_to_production_h == pytest.approx(5.0)
    assert sorted(overall.train_to_production_h) == pytest.approx([1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert (overall.pending, overall.expired, overall.rejected) == (1, 1, 1)
    assert (overall.blocked_at_approval, overall.reached_approval) == (3, 12)
    assert board.unit == "week"
    got = {
        b.label: (
            b.metrics.runs,
            (b.metrics.validation_passed, b.metrics.validation_verdicts),
            (b.metrics.fairness_failed, b.metrics.evaluation_verdicts),
            b.metrics.deployed,
            _rounded(b.metrics.mean_train_to_production_h),
            (b.metrics.pending, b.metrics.expired, b.metrics.rejected),
        )
        for b in board.over_time
    }
    assert got == EXPECTED_BUCKETS
    credit, income = board.by_use_case["credit"], board.by_use_case["income"]
    assert (credit.runs, credit.validation_passed, credit.fairness_failed) == (10, 8, 2)
    assert credit.mean_train_to_production_h == pytest.approx(3.0)
    assert (income.runs, income.validation_passed, income.evaluation_verdicts) == (10, 9, 9)
    assert income.blocked_at_approval == 2
    assert income.mean_train_to_production_h == pytest.approx(7.5)
    # Runs halted before training have no model name; the others carry their model's.
    assert board.by_model[dashboard.NO_MODEL].runs == 3
    assert board.by_model["credit-scoring"].runs == 8
    assert board.by_model["income-band"].runs == 9
    assert board.by_status == {"blocked at approval": 3, "deployed": 9, "halted": 8}


def test_each_run_classified_in_either_gate_representation(seeded: str) -> None:
    runs = {r.run_id: r for r in dashboard.build(LineageStore.connect(seeded), seeded).runs}
    expected = {
        "data": ("halted", "data_preparation", DATA_BREACH),
        "fairness": ("halted", "evaluation", FAIRNESS_BREACH),
        "performance": ("halted", "evaluation", PERFORMANCE_BREACH),
        "pending": ("blocked at approval", "approval", ()),
        "rejected": ("blocked at approval", "approval", ()),
        "expired": ("blocked at approval", "approval", ()),
        "deployed": ("deployed", "deployment", ()),
    }
    for plan in HISTORY:
        run = runs[plan.run_id]
        assert (run.status, run.stopped_at, run.breaches) == expected[plan.fate], plan
        assert run.fairness_failed == (plan.fate == "fairness")
        if plan.fate in ("pending", "rejected", "expired"):
            assert run.approval == plan.fate
        if plan.fate != "data":
            model = hashlib.sha256(f"{plan.run_id}/model".encode()).hexdigest()
            assert (run.model_name, run.model_sha256) == (MODELS[plan.use_case], model)
    # Both representations are present: a legacy halted run has a FAILED gate execution, a
    # current one a COMPLETE gate execution whose verdict is breached.
    states = {
        (r.run_id, s.stage): s.state
        for r in runs.values()
        for s in r.stages
        if s.verdict == BREACHED
    }
    assert states[("run-02", "data_preparation")] == "FAILED"
    assert states[("run-01", "data_preparation")] == "COMPLETE"


def test_fairness_check_names_match_the_evaluation_gate() -> None:
    assert set(METRICS) <= set(dashboard.FAIRNESS_CHECKS)
    assert dashboard.is_fairness_check("equalized_odds_difference[age_band]")
    assert not dashboard.is_fairness_check("roc_auc")


def test_page_shows_the_fixed_figures_in_a_browser(seeded: str, tmp_path: Path) -> None:
    out = tmp_path / "board"
    assert main(["dashboard", "--out", str(out), "--metadata-uri", seeded]) == 0
    page = (out / "index.html").read_text()
    external = re.compile(r"<script|<link|@import|(?:src|href)=[\"']?(?:https?:)?//")
    assert not external.search(page), "the page must be self-contained"
    text = visible_text(out / "index.html")
    assert "Validation-gate success rate 85.0% 17 of 20 validation verdicts passed" in text
    assert (
        "Fairness-gate failure frequency 4 runs (23.5%) 4 of 17 evaluation verdicts breached "
        "a fairness check" in text
    )
    assert "Mean time from training to production 5.00 h over 9 deployed runs" in text
    assert (
        "Runs blocked at approval 3 runs (25.0%) 1 pending, 1 expired, 1 rejected, of 12 runs "
        "that reached approval" in text
    )
    for row in (
        "2026-W02 5 3/5 60.0% 0/3 0.0% 3 2.00 h 0 0/0/0",
        "2026-W03 5 5/5 100.0% 2/5 40.0% 2 4.50 h 1 1/0/0",
        "2026-W04 5 4/5 80.0% 2/4 50.0% 0 — 1 0/0/1",
        "2026-W05 0 0/0 — 0/0 — 0 — 0 0/0/0",
        "2026-W07 5 5/5 100.0% 0/5 0.0% 4 7.50 h 1 0/1/0",
        "credit 10 8/10 80.0% 2/8 25.0% 5 3.00 h 1 1/0/0",
        "income 10 9/10 90.0% 2/9 22.2% 4 7.50 h 2 0/1/1",
    ):
        assert row in text, row
    # Every metric is defined on the page, and the figures are drawn (inline SVG).
    for name, _ in dashboard.DEFINITIONS:
        assert name in text
    assert page.count("<svg") >= 4
    # Drill-down: the week's page lists its runs with stages, verdicts, breaches and model.
    run_page = out / "runs" / "2026-W03.html"
    assert 'href="runs/2026-W03.html"' in page
    assert 'href="runs/2026-W03.html#run-run-10"' in page  # the blocked run, listed on the index
    assert 'id="run-run-07"' in run_page.read_text()
    week = visible_text(run_page)
    model = hashlib.sha256(b"run-07/model").hexdigest()
    assert "Run run-07: halted" in week
    assert f"model credit-scoring sha256 {model}" in week
    assert "evaluation gate breached: " + "; ".join(FAIRNESS_BREACH) in week
    assert re.search(
        r"evaluation \d+ FAILED breached " + re.escape("; ".join(FAIRNESS_BREACH)), week
    )
    assert "Run run-10: blocked at approval" in week
    assert json.loads((out / "dashboard.json").read_text())["overall"]["deployed"] == 9


def test_since_keeps_the_runs_started_from_that_day(seeded: str, tmp_path: Path) -> None:
    board = dashboard.build(LineageStore.connect(seeded), seeded, date(2026, 1, 19))
    assert sorted(r.run_id for r in board.runs) == [p.run_id for p in HISTORY[10:]]
    assert (board.overall.validation_passed, board.overall.validation_verdicts) == (9, 10)
    assert board.overall.mean_train_to_production_h == pytest.approx(7.5)


def test_bad_since_is_one_line(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dashboard", "--out", str(tmp_path), "--metadata-uri", seeded, "--since", "May"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--since 'May' is not an ISO date" in err


def test_real_chain_records(tmp_path: Path) -> None:
    """The real executors' records: one run deployed, one halted by the data gate."""
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    deployed = Chain(tmp_path, uri, "real-deployed").through_integration()
    deployed.approve()
    deployed.deploy()
    halted = Chain(tmp_path, uri, "real-halted", label_bias=0.7)
    with pytest.raises(GateFailed):
        halted.prepare()
    out = tmp_path / "board"
    assert main(["dashboard", "--out", str(out), "--metadata-uri", uri]) == 0
    board = dashboard.build(LineageStore.connect(uri), uri)
    runs = {r.run_id: r for r in board.runs}
    store = LineageStore.connect(uri)
    executions = {e.stage: e for e in store.executions_of_run("real-deployed")}
    started = int(executions["training"].properties["started_at_ms"])
    ended = int(executions["deployment"].properties["started_at_ms"]) + round(
        float(executions["deployment"].properties["duration_s"]) * 1000
    )
    assert runs["real-deployed"].status == "deployed"
    assert runs["real-deployed"].model_sha256 == sha256_path(deployed.paths["model"])
    assert runs["real-deployed"].train_to_production_s == pytest.approx((ended - started) / 1000)
    report = json.loads(halted.out("validation_report.json").read_text())
    breached = tuple(c["name"] for c in report["gate"]["checks"] if not c["passed"])
    assert breached
    assert (runs["real-halted"].status, runs["real-halted"].stopped_at) == (
        "halted",
        "data_preparation",
    )
    assert runs["real-halted"].breaches == breached
    overall = board.overall
    assert (overall.validation_passed, overall.validation_verdicts, overall.deployed) == (1, 2, 1)
    text = visible_text(out / "index.html")
    assert "Validation-gate success rate 50.0% 1 of 2 validation verdicts passed" in text
    hours = (ended - started) / HOUR_MS
    assert f"Mean time from training to production {hours:.2f} h over 1 deployed runs" in text
    # The stage runtime kept each run's summary, and it is what the executions say.
    for run_id in ("real-deployed", "real-halted"):
        context = store.run_context(run_id)
        types = {t.id: t.name for t in store.store.get_execution_types()}
        assert runsummary.read_summary(context) == runsummary.summary_of_run(
            store.store, context, types
        )
    [run_page] = (out / "runs").glob("*.html")
    week = visible_text(run_page)
    assert f"model credit-scoring sha256 {runs['real-deployed'].model_sha256}" in week
    assert "data preparation gate breached: " + "; ".join(breached) in week


class Recording:
    """An MLMD store that records the name of every call made to it."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self._store, name)


def _runs(uri: str, since: date | None = None) -> list[dashboard.RunRecord]:
    return dashboard.load_runs(LineageStore.connect(uri), since)


@pytest.mark.parametrize("since", [None, date(2026, 1, 19)])
def test_summaries_give_the_runs_the_executions_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, since: date | None
) -> None:
    """Every run record (stages, verdicts, times, model, use case, status) is the same read
    from the summaries, from each run's executions, from the batch queries, or from a store
    where only some runs have a summary."""
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    store = seed_history(uri, summaries=False)
    per_run = _runs(uri, since)
    monkeypatch.setattr(dashboard, "PER_RUN_FALLBACK", 0)
    batch = _runs(uri, since)
    monkeypatch.setattr(dashboard, "PER_RUN_FALLBACK", 200)
    for plan in HISTORY[::2]:
        assert runsummary.update_run_summary(store, plan.run_id)
    mixed = _runs(uri, since)
    for plan in HISTORY[1::2]:
        assert runsummary.update_run_summary(store, plan.run_id)
    summarised = _runs(uri, since)
    assert len(per_run) == (20 if since is None else 10)
    assert batch == per_run
    assert mixed == per_run
    assert summarised == per_run
    assert {r.status for r in summarised} == {"deployed", "halted", "blocked at approval"}


def test_with_summaries_no_execution_is_read(tmp_path: Path) -> None:
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    seed_history(uri, summaries=True)
    store = LineageStore.connect(uri)
    recording = Recording(store.store)
    store.store = recording
    board = dashboard.build(store, uri)
    assert board.overall.runs == 20 and board.overall.deployed == 9
    assert recording.calls == ["get_contexts_by_type"]


def test_summary_is_written_alone_and_rebuilt_from_the_executions(tmp_path: Path) -> None:
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    store = seed_history(uri, summaries=False)
    before = store.run_context("run-05")
    assert runsummary.read_summary(before) is None
    assert runsummary.update_run_summary(store, "run-05")
    after = store.run_context("run-05")
    kept = dict(after.custom_properties)
    assert set(kept) == set(before.custom_properties) | {runsummary.SUMMARY_PROPERTY}
    assert all(kept[key] == value for key, value in before.custom_properties.items())
    summary = runsummary.read_summary(after)
    assert summary is not None
    # Deployed run in the current representation: 8 stages + 4 gates' verdict tasks, of which
    # the summary keeps the stages (passed verdicts repeat their gates').
    assert [e.stage for e in summary.executions] == [
        "data_preparation",
        "feature_engineering",
        "training",
        "evaluation",
        "registration",
        "integration_testing",
        "approval",
        "deployment",
    ]
    assert summary.model_name == "credit-scoring"
    assert summary.model_sha256 == hashlib.sha256(b"run-05/model").hexdigest()
    assert summary.use_case == "credit"
    assert runsummary.RunSummary.from_json(summary.to_json()) == summary
    # Rebuilt whole on each update: a later execution (here a failed retry) is included.
    Recorder(store, HISTORY[4]).execute("deployment", 1.0, [], [], failed="RuntimeError")
    assert runsummary.update_run_summary(store, "run-05")
    rebuilt = runsummary.read_summary(store.run_context("run-05"))
    assert rebuilt is not None and rebuilt.executions[-1].properties["outcome"] == "RuntimeError"
    assert next(r for r in _runs(uri) if r.run_id == "run-05").status == "failed"


def test_a_summary_that_cannot_be_written_or_read_falls_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    store = seed_history(uri, summaries=False)
    expected = _runs(uri)
    broken = LineageStore.connect(uri)
    broken.store = None  # every call fails
    assert runsummary.update_run_summary(broken, "run-05") is False
    assert '"event": "not_updated"' in capsys.readouterr().err
    assert runsummary.update_run_summary(store, "no-such-run") is False
    store.update_run("run-06", {runsummary.SUMMARY_PROPERTY: '{"v": 999}'})  # not ours
    assert runsummary.read_summary(store.run_context("run-06")) is None
    assert _runs(uri) == expected
