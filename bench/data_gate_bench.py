"""Benchmark: the data quality gate on a CSV of 1M rows x 20 columns, beside TFDV's own
`generate_statistics_from_csv` on the same file. Each side runs in a fresh process; the figures
are its wall time after imports (importing TFDV costs each side ~5 s) and its peak resident
memory (whole process, imports included). The two sides alternate, `--repeat` times each (at
least 5), and the medians are compared, so a machine shared with other work slows both alike.

TFDV baseline: `tfdv.generate_statistics_from_csv(path)` with its defaults: StatsOptions()
(exact top-k/uniques on Beam), Beam's DirectRunner with its default options (in-process, one
worker), the CSV decoder inferring types (no schema). The gate: the stage's in-memory path
(`core.gate_file`: multi-threaded Arrow reader with the schema's types, TFDV's in-memory
statistics with sketch-based top-k/uniques, anomalies, every check, the bias examination).

    python bench/data_gate_bench.py [--rows 1000000] [--repeat 5] [--workdir /tmp/aiact-bench]

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

COLUMNS = 20
# "< 1.5 GB" read as 1.5e9 bytes (1430.5 MiB), the stricter of its two readings (1.5 GiB = 1536).
PEAK_GOAL_MIB = 1.5e9 / 2**20


def make_inputs(rows: int, workdir: Path) -> tuple[Path, Path]:
    """The reference data (18 columns) plus two numeric columns, and a schema declaring all 20."""
    from aiact.refdata import CATEGORIES, generate_credit_data
    from aiact.specs import load_feature_spec
    from components.data_preparation.schema import draft_schema

    data, schema = workdir / f"credit_{rows}.csv", workdir / f"schema_{rows}.pbtxt"
    if data.exists() and schema.exists():
        return data, schema
    frame = generate_credit_data(rows, seed=0)
    rng = np.random.default_rng(0)
    frame["utilisation"] = rng.uniform(0, 1, rows).round(4)
    frame["inquiries_12m"] = rng.poisson(1.5, rows)
    assert len(frame.columns) == COLUMNS
    frame.to_csv(data, index=False)
    spec = load_feature_spec("credit")
    schema.write_text(str(draft_schema(frame.head(50_000), spec, CATEGORIES)))
    return data, schema


def run_gate(data: Path, schema: Path) -> dict[str, object]:
    """The gate as the stage runs it: read the table, TFDV statistics and anomalies, checks.
    TFDV is imported before the clock starts, as on the other side."""
    from dataclasses import replace

    import tensorflow_data_validation  # noqa: F401

    from aiact.policy import load_policy
    from aiact.usecase import BUNDLED_USE_CASE, load_use_case
    from components.data_preparation import core

    # The bundled declaration plus the two extra columns, so all 20 columns are gated.
    credit = core.declared_of(load_use_case("", BUNDLED_USE_CASE))
    extra = ("utilisation", "inquiries_12m")
    declared = replace(credit, gated=(*credit.gated, *extra), kept=(*credit.kept, *extra))
    started = time.perf_counter()
    run = core.gate_file(data, schema, load_policy()["data_quality"], declared=declared)
    outcome = run.outcome
    assert run.path == "in-memory"
    return {
        "seconds": time.perf_counter() - started,
        "passed": outcome.gate.passed,
        "breaches": [c.name for c in outcome.gate.breaches],
    }


def run_tfdv(data: Path) -> dict[str, object]:
    """TFDV's own CSV statistics (Apache Beam, DirectRunner)."""
    import tensorflow_data_validation as tfdv

    started = time.perf_counter()
    statistics = tfdv.generate_statistics_from_csv(str(data))
    rows = statistics.datasets[0].num_examples
    return {"seconds": time.perf_counter() - started, "rows_seen": rows}


def measure(kind: str, data: Path, schema: Path) -> dict[str, object]:
    """Run one side in a child process; add its peak RSS."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--worker", kind, str(data), str(schema)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise RuntimeError(f"{kind} worker failed with status {status}")
    result: dict[str, object] = json.loads(output.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/aiact-bench"))
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "DATA", "SCHEMA"))
    parser.add_argument("--json", type=Path, help="also write the medians here (bench/goals.py)")
    args = parser.parse_args()
    if args.worker:
        kind, data, schema = args.worker
        result = run_gate(Path(data), Path(schema)) if kind == "gate" else run_tfdv(Path(data))
        print(json.dumps(result))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    data, schema = make_inputs(args.rows, args.workdir)
    size_mb = data.stat().st_size / 2**20
    print(f"input: {args.rows:,} rows x {COLUMNS} columns, {size_mb:.0f} MiB CSV ({data})")
    runs: dict[str, list[dict[str, object]]] = {"gate": [], "tfdv": []}
    for _ in range(args.repeat):
        for kind in runs:  # interleaved: both sides see the same machine load
            runs[kind].append(measure(kind, data, schema))
    labels = {
        "gate": "aiact data gate (read+TFDV+checks)",
        "tfdv": "tfdv.generate_statistics_from_csv",
    }
    print(f"{'':34}{'median s':>10}{'min s':>8}{'max s':>8}{'rows/s':>12}{'peak MiB':>10}")
    medians = {}
    for kind, results in runs.items():
        seconds = [float(str(r["seconds"])) for r in results]
        peak = max(float(str(r["peak_rss_mb"])) for r in results)
        medians[kind] = statistics.median(seconds)
        print(
            f"{labels[kind]:34}{medians[kind]:10.2f}{min(seconds):8.2f}{max(seconds):8.2f}"
            f"{args.rows / medians[kind]:12,.0f}{peak:10.0f}"
        )
    ratio = medians["tfdv"] / medians["gate"]
    verdicts: set[tuple[object, ...]] = {
        (r["passed"], *list(r["breaches"]))  # type: ignore[call-overload]
        for r in runs["gate"]
    }
    gate_peak = max(float(str(r["peak_rss_mb"])) for r in runs["gate"])
    print(
        f"gate throughput = {ratio:.2f}x TFDV's (goal >= 10x; medians of {args.repeat}); "
        f"gate peak {gate_peak:.0f} MiB, the highest of {args.repeat} "
        f"(goal < 1.5 GB = {PEAK_GOAL_MIB:.0f} MiB); verdicts {sorted(verdicts)}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "gate_s": medians["gate"],
                    "tfdv_s": medians["tfdv"],
                    "ratio": ratio,
                    "gate_peak_mib": gate_peak,
                    "peak_goal_mib": PEAK_GOAL_MIB,
                    "repeat": args.repeat,
                    "rows": args.rows,
                }
            )
        )


if __name__ == "__main__":
    main()
