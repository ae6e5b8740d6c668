"""Benchmark: build time of the governance dashboard (`aiact dashboard`) from SQLite MLMD stores
of 100, 1,000 and 10,000 realistic runs. Prints figures; not part of the test suite.

Each store is seeded in bulk (put_artifacts / put_executions / put_events / put_contexts /
put_attributions_and_associations, a few hundred runs per call) with what real runs record:
every stage's execution with the stage runtime's properties (timing, outcome, policy and
platform hashes, statistics digests), its artefacts and INPUT/OUTPUT events, the shared gate
policy, use case and data card, and the run context. The mix over half a year: older runs in the
older gate representation (a breached gate FAILED with outcome GateFailed), newer ones in the
current one (the gate COMPLETE with verdict=breached, then its FAILED verdict task); runs halted
at data validation and at the evaluation gate (mostly fairness), at integration testing, failed
by an error, pending, expired and rejected approvals, the rest deployed after 1-72 h of approval
wait; three use cases with their model names.

    .venv/bin/python bench/dashboard_bench.py [--runs 100 1000 10000] [--workdir DIR]

Figures: seeding time, the in-process build split into reading the store (`load_runs`),
computing the figures and writing the pages, and the whole `aiact dashboard` command in a
subprocess (interpreter start and imports included), then the ratio of each at the largest size
to the smallest.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import dashboard, lineage, runsummary
from aiact.lineage import LineageStore, PropertyValue

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
SPAN_DAYS = 182
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
USE_CASES = (("credit", "credit-scoring"), ("income", "income-band"), ("fraud", "fraud-alert"))
COLUMNS = [f"feature_{i}" for i in range(18)]
STATISTICS = json.dumps(
    {
        "rows": 5000,
        "columns": COLUMNS,
        "means": {c: 0.123456 for c in COLUMNS},
        "stds": {c: 1.234567 for c in COLUMNS},
        "missing": {},
        "value_counts_sha256": {c: "ab" * 32 for c in COLUMNS[:6]},
    },
    sort_keys=True,
)


def _value(target: Any, value: PropertyValue) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    else:
        target.string_value = str(value)


class Seeder:
    """Writes runs into one store in bulk."""

    def __init__(self, store: LineageStore, summaries: bool = True) -> None:
        self.mlmd = store.store
        self.summaries = summaries
        self.types: dict[str, int] = {}
        self.shared: dict[str, int] = {}
        self.counter = 0
        self.rng = random.Random(20260101)
        policy = self._artifact(
            lineage.GATE_POLICY,
            "policy",
            {"policy_json": json.dumps({"version": 3, "limits": COLUMNS}), "policy_version": 3},
        )
        card = self._artifact(lineage.DATA_CARD, "card", {"name": "credit applications"})
        artifacts = [policy, card]
        for name, _ in USE_CASES:
            artifacts.append(self._artifact(lineage.USE_CASE, f"usecase-{name}", {"name": name}))
        ids = self.mlmd.put_artifacts(artifacts)
        self.shared = {
            "policy": ids[0],
            "card": ids[1],
            **{name: i for (name, _), i in zip(USE_CASES, ids[2:], strict=True)},
        }
        self.policy_sha = artifacts[0].name

    def _type(self, kind: str, name: str) -> int:
        if name not in self.types:
            if kind == "artifact":
                self.types[name] = self.mlmd.put_artifact_type(mlmd_pb.ArtifactType(name=name))
            elif kind == "execution":
                self.types[name] = self.mlmd.put_execution_type(mlmd_pb.ExecutionType(name=name))
            else:
                self.types[name] = self.mlmd.put_context_type(mlmd_pb.ContextType(name=name))
        return self.types[name]

    def _artifact(
        self, type_name: str, seed: str, props: dict[str, PropertyValue] | None = None
    ) -> mlmd_pb.Artifact:
        import hashlib

        digest = hashlib.sha256(seed.encode()).hexdigest()
        artifact = mlmd_pb.Artifact(
            type_id=self._type("artifact", type_name),
            name=digest,
            uri=f"/pipeline_root/{seed}",
            state=mlmd_pb.Artifact.LIVE,
        )
        for key, value in {
            "content_sha256": digest,
            "version": digest[:16],
            **(props or {}),
        }.items():
            _value(artifact.custom_properties[key], value)
        return artifact

    def scenario(self) -> str:
        """What happens to the next run: its stopping point, drawn with fixed odds."""
        draw = self.rng.random()
        for name, odds in (
            ("data_breach", 0.08),
            ("fairness_breach", 0.07),
            ("performance_breach", 0.03),
            ("integration_breach", 0.02),
            ("training_error", 0.01),
            ("pending", 0.04),
            ("expired", 0.02),
            ("rejected", 0.02),
        ):
            if draw < odds:
                return name
            draw -= odds
        return "deployed"

    def seed(self, runs: int, batch: int = 250) -> None:
        """Record `runs` runs, `batch` per bulk write."""
        for start in range(0, runs, batch):
            self._batch(range(start, min(start + batch, runs)), runs)

    def _batch(self, indices: range, runs: int) -> None:
        batch = Batch(self)
        for index in indices:
            batch.add_run(index, runs)
        batch.write()


class Batch:
    """The nodes of a few hundred runs, written with one call per node kind."""

    def __init__(self, seeder: Seeder) -> None:
        self.seeder = seeder
        self.artifacts: list[mlmd_pb.Artifact] = []
        self.executions: list[mlmd_pb.Execution] = []
        # (execution index, artefact index or -1 - shared artefact id, event type, role)
        self.events: list[tuple[int, int, int, str]] = []
        self.owner: list[int] = []  # run position of each execution
        self.stages: list[str] = []  # stage of each execution
        self.models: dict[int, int] = {}  # run position -> its model's artefact index
        # keep each run's summary on its context, as aiact.stage does
        self.summaries = seeder.summaries
        self.contexts: list[mlmd_pb.Context] = []
        self.shared_of_run: list[list[int]] = []
        # the run being added
        self.run_id = ""
        self.use_case = ""
        self.legacy = False
        self.clock = 0
        self.previous: dict[str, int] = {}

    def artifact(self, type_name: str, role: str, props: dict[str, PropertyValue]) -> int:
        """A new artefact of the current run; returns its index in the batch."""
        self.seeder.counter += 1
        seed = f"{self.run_id}/{role}/{self.seeder.counter}"
        self.artifacts.append(self.seeder._artifact(type_name, seed, props))
        self.previous[role] = len(self.artifacts) - 1
        return len(self.artifacts) - 1

    def execution(
        self,
        stage: str,
        duration_s: float,
        *,
        inputs: tuple[str, ...] = (),
        shared: tuple[str, ...] = (),
        outputs: tuple[tuple[str, str, dict[str, PropertyValue]], ...] = (),
        failed: str = "",
        breaches: str = "",
        verdict: str = "",
        extra: dict[str, PropertyValue] | None = None,
    ) -> None:
        """One execution of the current run with the stage runtime's properties."""
        node = mlmd_pb.Execution(
            type_id=self.seeder._type("execution", f"aiact.{stage}"),
            last_known_state=mlmd_pb.Execution.FAILED if failed else mlmd_pb.Execution.COMPLETE,
        )
        props: dict[str, PropertyValue] = {
            "stage": stage,
            "run_id": self.run_id,
            "platform_sha256": "9" * 64,
            "platform_source": "configmap aiact-system/aiact-platform",
            "custody_through": "training",
            "custody_sha256": "7" * 64,
            "started_at_ms": self.clock,
            "duration_s": duration_s,
            "outcome": failed or "completed",
            **(extra or {}),
        }
        if failed:
            props["error"] = f"{failed}: {breaches or 'stage failed'}"
        if breaches or verdict:
            props["gate_breaches"] = breaches
        if verdict:
            props["verdict"] = verdict
            props["gate"] = stage.removesuffix("_verdict")
        for key, value in props.items():
            _value(node.custom_properties[key], value)
        self.executions.append(node)
        self.owner.append(len(self.contexts) - 1)
        self.stages.append(stage)
        where = len(self.executions) - 1
        for role in inputs:
            self.events.append((where, self.previous[role], mlmd_pb.Event.INPUT, role))
        for role in shared:
            self.events.append((where, -1 - self.seeder.shared[role], mlmd_pb.Event.INPUT, role))
        for type_name, role, out_props in outputs:
            made = self.artifact(type_name, role, out_props)
            self.events.append((where, made, mlmd_pb.Event.OUTPUT, role))
            if role == "model":
                self.models[len(self.contexts) - 1] = made
        self.clock += int(duration_s * 1000) + 2000

    def gate(
        self,
        stage: str,
        report: tuple[str, str],
        duration_s: float,
        breach: str,
        inputs: tuple[str, ...],
        outputs: tuple[tuple[str, str, dict[str, PropertyValue]], ...] = (),
        extra: dict[str, PropertyValue] | None = None,
    ) -> bool:
        """A gate in the run's representation; False when it halted the run."""
        passed: dict[str, PropertyValue] = {"passed": not breach}
        report_out = (report[0], report[1], passed)
        shared = ("policy", self.use_case)
        if self.legacy:
            self.execution(
                stage,
                duration_s,
                inputs=inputs,
                shared=shared,
                outputs=(report_out,) if breach else (report_out, *outputs),
                failed="GateFailed" if breach else "",
                breaches=breach,
                extra=extra,
            )
            return not breach
        verdict = "breached" if breach else "passed"
        self.execution(
            stage,
            duration_s,
            inputs=inputs,
            shared=shared,
            outputs=(report_out, *outputs),
            breaches=breach,
            verdict=verdict,
            extra=extra,
        )
        self.execution(
            f"{stage}_verdict",
            0.02,
            inputs=(report[1],),
            outputs=((lineage.GATE_VERDICT, f"{stage}_verdict", {"verdict": verdict}),),
            failed="GateFailed" if breach else "",
            breaches=breach,
            verdict=verdict,
        )
        return not breach

    def add_run(self, index: int, runs: int) -> None:
        """Run `index` of `runs`: every stage it reaches under its drawn fate."""
        seeder = self.seeder
        self.run_id = f"bench-run-{index:05d}"
        self.use_case, model_name = USE_CASES[index % len(USE_CASES)]
        self.legacy = index < runs // 2
        self.previous = {}
        context = mlmd_pb.Context(
            type_id=seeder._type("context", lineage.RUN_CONTEXT_TYPE), name=self.run_id
        )
        for key, value in {
            "run_id": self.run_id,
            "pipeline_name": "aiact-compliance-pipeline",
            "code_commit": f"{index % 7:x}" * 40,
            "pipeline_spec_sha256": "5" * 64,
            "environment": "production",
        }.items():
            _value(context.custom_properties[key], value)
        self.contexts.append(context)
        self.shared_of_run.append(
            [seeder.shared["policy"], seeder.shared["card"], seeder.shared[self.use_case]]
        )
        self.clock = START_MS + int(index * SPAN_DAYS * DAY_MS / max(runs, 1))
        fate = seeder.scenario()
        self.artifact(lineage.RAW_DATASET, "source", {})
        stats: dict[str, PropertyValue] = {
            "statistics_before": STATISTICS,
            "statistics_before_sha256": "1" * 64,
        }
        if not self.gate(
            "data_preparation",
            (lineage.DATA_VALIDATION_REPORT, "validation_report"),
            8.2,
            "missing_values[income]; class_balance" if fate == "data_breach" else "",
            ("source",),
            ((lineage.DATASET, "dataset", {"rows": 5000, "use_case": self.use_case}),),
            {"use_case": self.use_case, **stats, "policy_sha256": seeder.policy_sha},
        ):
            return
        self.gate(
            "feature_engineering",
            (lineage.DATA_VALIDATION_REPORT, "feature_report"),
            0.2,
            "",
            ("dataset",),
            (
                (lineage.FEATURE_SET, "feature_set", {"use_case": self.use_case}),
                (lineage.FEATURE_TRANSFORM, "transform", {}),
            ),
            {"use_case": self.use_case, **stats},
        )
        if fate == "training_error":
            self.execution(
                "training", 3.0, inputs=("feature_set", "transform"), failed="RuntimeError"
            )
            return
        self.execution(
            "training",
            45.0,
            inputs=("feature_set", "transform"),
            shared=(self.use_case,),
            outputs=(
                (
                    lineage.MODEL,
                    "model",
                    {"model_name": model_name, "stage": "experimental", "seed": 0},
                ),
                (lineage.TRAINING_REPORT, "training_report", {}),
            ),
            extra={"device": "cuda", "training_duration_s": 44.1},
        )
        breach = {
            "fairness_breach": "demographic_parity_difference[sex]; "
            "equalized_odds_difference[age_band]",
            "performance_breach": "roc_auc; roc_auc_gap_to_baseline",
        }.get(fate, "")
        if not self.gate(
            "evaluation",
            (lineage.EVALUATION_REPORT, "evaluation_report"),
            4.0,
            breach,
            ("model", "feature_set"),
            extra={"use_case": self.use_case},
        ):
            return
        self.execution(
            "registration",
            0.1,
            inputs=("model", "evaluation_report", "dataset"),
            outputs=((lineage.MODEL_REGISTRATION, "registration", {}),),
        )
        if not self.gate(
            "integration_testing",
            (lineage.INTEGRATION_TEST_REPORT, "integration_report"),
            6.0,
            "served_scores_equal" if fate == "integration_breach" else "",
            ("model", "registration"),
        ):
            return
        if fate == "pending":
            return  # the approval stage is still waiting: nothing recorded yet
        wait_h = 1 + seeder.rng.random() * 71
        outcome = {"expired": "ApprovalExpired", "rejected": "ApprovalRejected"}.get(fate, "")
        status = {"": "approved", "ApprovalExpired": "pending"}.get(outcome, "rejected")
        self.execution(
            "approval",
            wait_h * 3600,
            inputs=("model", "evaluation_report", "integration_report"),
            outputs=((lineage.APPROVAL, "approval", {"outcome": status}),),
            failed=outcome,
            extra={"approval_backend": "kubernetes://aiact", "required_approvals": 2},
        )
        if outcome:
            return
        self.execution(
            "deployment",
            3.0,
            inputs=("model", "approval"),
            outputs=(
                (
                    lineage.DEPLOYMENT,
                    "deployment",
                    {"strategy": "canary", "traffic_percent": 10, "pipeline_run_id": self.run_id},
                ),
            ),
            extra={"ledger_sequence": index, "deployment_key": "d" * 64},
        )

    def write(self) -> None:
        """Write the batch: artefacts, executions, events, contexts, attributions."""
        mlmd = self.seeder.mlmd
        artifact_ids = mlmd.put_artifacts(self.artifacts)
        execution_ids = mlmd.put_executions(self.executions)
        mlmd.put_events(
            [
                mlmd_pb.Event(
                    execution_id=execution_ids[e],
                    artifact_id=-1 - a if a < 0 else artifact_ids[a],
                    type=kind,
                    path=mlmd_pb.Event.Path(steps=[mlmd_pb.Event.Path.Step(key=role)]),
                )
                for e, a, kind, role in self.events
            ]
        )
        if self.summaries:
            self._summarise(execution_ids, artifact_ids)
        context_ids = mlmd.put_contexts(self.contexts)
        attributions = [
            mlmd_pb.Attribution(artifact_id=artifact_id, context_id=context_ids[position])
            for position, shared in enumerate(self.shared_of_run)
            for artifact_id in shared
        ]
        attributed: set[int] = set()
        for e, a, _, _ in self.events:
            if a >= 0 and a not in attributed:
                attributed.add(a)
                attributions.append(
                    mlmd_pb.Attribution(
                        artifact_id=artifact_ids[a], context_id=context_ids[self.owner[e]]
                    )
                )
        associations = [
            mlmd_pb.Association(execution_id=execution_id, context_id=context_ids[self.owner[i]])
            for i, execution_id in enumerate(execution_ids)
        ]
        mlmd.put_attributions_and_associations(attributions, associations)

    def _summarise(self, execution_ids: list[int], artifact_ids: list[int]) -> None:
        """Each run's summary on its context, built with the same code the stage runtime uses
        (aiact.runsummary) from its executions as the store holds them (read back in one call
        per batch: a double comes back as the backend stored it)."""
        raws: dict[int, list[runsummary.RawExecution]] = {}
        stored = {e.id: e for e in self.seeder.mlmd.get_executions_by_id(execution_ids)}
        for index in range(len(self.executions)):
            node = stored[execution_ids[index]]
            stage = self.stages[index]
            if runsummary.wanted(stage, node.last_known_state):
                raws.setdefault(self.owner[index], []).append(runsummary.read(node, stage))
        for position, context in enumerate(self.contexts):
            models = {}
            if position in self.models:
                artifact = self.artifacts[self.models[position]]
                models[artifact_ids[self.models[position]]] = artifact
            summary = runsummary.summarize(raws.get(position, []), models)
            context.custom_properties[runsummary.SUMMARY_PROPERTY].string_value = summary.to_json()


def aiact_command() -> list[str]:
    """The `aiact` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("aiact")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from aiact.cli import main; sys.exit(main())"]


def _legacy_load(store: LineageStore) -> list[dashboard.RunRecord]:
    """`load_runs` as before run summaries: every run read from the executions by type (the
    batch queries the dashboard still uses for runs recorded without a summary)."""
    read_summary, fallback = runsummary.read_summary, dashboard.PER_RUN_FALLBACK
    runsummary.read_summary = lambda context: None
    dashboard.PER_RUN_FALLBACK = 0
    try:
        return dashboard.load_runs(store)
    finally:
        runsummary.read_summary = read_summary
        dashboard.PER_RUN_FALLBACK = fallback


def _timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def measure(runs: int, workdir: Path, reuse: bool, reps: int) -> dict[str, float]:
    """Seed a store of `runs` runs (or reuse the one seeded before) and time the dashboard
    built from it: the in-process read from the run summaries and, side by side (interleaved
    repetitions), the read from the executions as before summaries; then the figures, the
    pages and the whole `aiact dashboard` command. Medians of `reps`."""
    path = workdir / f"mlmd-{runs}.sqlite"
    uri = f"sqlite://{path}"
    seeded = float("nan")
    if not (reuse and path.exists()):
        path.unlink(missing_ok=True)
        began = time.perf_counter()
        Seeder(LineageStore.connect(uri)).seed(runs)
        seeded = time.perf_counter() - began

    store = LineageStore.connect(uri)
    records = dashboard.load_runs(store)
    legacy = _legacy_load(store)
    if records != legacy:
        raise SystemExit(f"{runs} runs: the summaries and the executions give different runs")
    if len(records) != runs:
        raise SystemExit(f"seeded {runs} runs but the dashboard counted {len(records)}")
    summary_s, legacy_s, compute_s, write_s, command_s = [], [], [], [], []
    out = workdir / f"dashboard-{runs}"
    for _ in range(reps):
        summary_s.append(_timed(lambda: dashboard.load_runs(store)))
        legacy_s.append(_timed(lambda: _legacy_load(store)))
        began = time.perf_counter()
        figures = dashboard.compute(records, uri)
        compute_s.append(time.perf_counter() - began)
        write_s.append(_timed(partial(dashboard.write, figures, workdir / f"inprocess-{runs}")))
        command = [*aiact_command(), "dashboard", "--out", str(out), "--metadata-uri", uri]
        command_s.append(_timed(partial(subprocess.run, command, check=True, capture_output=True)))
    query, compute, write = median(summary_s), median(compute_s), median(write_s)
    return {
        "seed_s": seeded,
        "query_s": query,
        "legacy_query_s": median(legacy_s),
        "compute_s": compute,
        "write_s": write,
        "build_s": query + compute + write,
        "command_s": median(command_s),
        "executions": float(sum(len(r.stages) for r in records)),
    }


def main() -> None:
    """Seed stores of each size and print the dashboard's build time as a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--reps", type=int, default=5, help="repetitions per figure (median)")
    parser.add_argument("--workdir", type=Path, help="keep the stores and pages here")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse stores a previous run left in --workdir"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"medians of {args.reps} interleaved repetitions; SQLite store")
        print(
            f"{'runs':>7} {'executions':>11} {'seed s':>8} {'read s':>8} {'read s before':>14} "
            f"{'speed-up':>9} {'compute s':>10} {'write s':>8} {'build s':>8} "
            f"{'aiact dashboard s':>18}"
        )
        results = {}
        for runs in sorted(args.runs):
            result = measure(runs, workdir, args.reuse, args.reps)
            results[runs] = result
            seed = "reused" if result["seed_s"] != result["seed_s"] else f"{result['seed_s']:.1f}"
            print(
                f"{runs:>7} {result['executions']:>11.0f} {seed:>8} "
                f"{result['query_s']:>8.3f} {result['legacy_query_s']:>14.3f} "
                f"{result['legacy_query_s'] / result['query_s']:>8.1f}x "
                f"{result['compute_s']:>10.3f} {result['write_s']:>8.3f} "
                f"{result['build_s']:>8.3f} {result['command_s']:>18.3f}",
                flush=True,
            )
        small, large = min(results), max(results)
        if large != small:
            ratio = {
                key: results[large][key] / results[small][key]
                for key in ("query_s", "build_s", "command_s")
            }
            print(
                f"ratio {large}/{small} runs: read x{ratio['query_s']:.1f}, in-process build "
                f"x{ratio['build_s']:.1f}, aiact dashboard x{ratio['command_s']:.1f} "
                f"(runs x{large / small:.0f})"
            )


if __name__ == "__main__":
    main()
