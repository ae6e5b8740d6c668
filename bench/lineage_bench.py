"""Benchmark: cost of recording a full eight-stage run in MLMD, and of tracing a deployed model
back to its raw data, as the store grows. Prints figures; not part of the test suite.

    .venv/bin/python bench/lineage_bench.py [--runs 200 1000] [--store sqlite|memory]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from aiact import lineage
from aiact.lineage import ArtifactRecord, LineageStore, RunInfo
from aiact.trace import latest_deployment, trace_artifact

CHAIN = (
    ("data_preparation", lineage.RAW_DATASET, "source", lineage.DATASET, "dataset"),
    ("feature_engineering", lineage.DATASET, "dataset", lineage.FEATURE_SET, "feature_set"),
    ("training", lineage.FEATURE_SET, "feature_set", lineage.MODEL, "model"),
    ("evaluation", lineage.MODEL, "model", lineage.EVALUATION_REPORT, "evaluation_report"),
    (
        "registration",
        lineage.EVALUATION_REPORT,
        "evaluation_report",
        lineage.MODEL_REGISTRATION,
        "registration",
    ),
    (
        "integration_testing",
        lineage.MODEL_REGISTRATION,
        "registration",
        lineage.INTEGRATION_TEST_REPORT,
        "integration_report",
    ),
    (
        "approval",
        lineage.INTEGRATION_TEST_REPORT,
        "integration_report",
        lineage.APPROVAL,
        "approval",
    ),
    ("deployment", lineage.APPROVAL, "approval", lineage.DEPLOYMENT, "deployment"),
)


def record_run(store: LineageStore, index: int) -> None:
    """One pipeline run: eight chained executions, each consuming the previous output."""
    run = RunInfo(run_id=f"bench-{index}", code_commit="c" * 40, environment="development")
    previous = ArtifactRecord(lineage.RAW_DATASET, f"/raw/{index}", f"{index:064x}", "source")
    for step, (stage, _, _, out_type, out_role) in enumerate(CHAIN):
        digest = f"{index:032x}{step:032x}"
        output = ArtifactRecord(out_type, f"/{stage}/{index}", digest, out_role)
        store.record_execution(
            run=run,
            stage=stage,
            inputs=[previous],
            outputs=[output],
            succeeded=True,
            properties={"duration_s": 0.1},
        )
        previous = ArtifactRecord(out_type, output.uri, digest, out_role)


def main() -> None:
    """Grow the store in steps and print insert throughput and trace latency at each size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        uri = f"sqlite://{Path(scratch) / 'mlmd.sqlite'}" if args.store == "sqlite" else "memory:"
        store = LineageStore.connect(uri)
        recorded = 0
        print(f"store={args.store}")
        print(f"{'runs':>8} {'executions/s':>13} {'trace ms (p50 of 20)':>21} {'trace nodes':>12}")
        for target in sorted(args.runs):
            started = time.perf_counter()
            for index in range(recorded, target):
                record_run(store, index)
            elapsed = time.perf_counter() - started
            rate = (target - recorded) * len(CHAIN) / elapsed if target > recorded else 0.0
            recorded = target
            deployment = latest_deployment(store).id
            timings, nodes = [], 0
            for _ in range(20):
                begin = time.perf_counter()
                tree = trace_artifact(store, deployment)
                timings.append((time.perf_counter() - begin) * 1000)
                nodes = len(tree.find(lineage.RAW_DATASET))
            timings.sort()
            print(f"{target:>8} {rate:>13.0f} {timings[len(timings) // 2]:>21.2f} {nodes:>12}")


if __name__ == "__main__":
    main()
