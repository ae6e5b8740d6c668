"""The five performance goals of the suite, measured in ONE run and printed as ratios to their
goals (issue 13). Each row is its own benchmark, run here one after the other as a subprocess
(so that one's memory does not weigh on the next), with medians of `--reps` (default 5):

- data gate >= 10x TFDV (bench/data_gate_bench.py): TFDV time / gate time, goal >= 10;
- trace query p95 < 20 ms at 10,000 runs (bench/audit_bench.py, SQLite): p95 / 20 ms, goal
  < 1; beside it p95(10,000) / p95(100) and the whole `aiact trace` process;
- local run <= 1.3x one process (bench/local_overhead_bench.py): run-local / one process;
- approval resume < 1 s (bench/approval_latency.py): median / 1 s, goal < 1;
- compile + drift check < 3 s (`aiact compile --check`, whole process): median / 3 s.

    .venv/bin/python bench/goals.py [--reps 5] [--only data_gate trace local approval compile]

The TFDV baseline is `tfdv.generate_statistics_from_csv` with `StatsOptions()` defaults (types
inferred, in-process DirectRunner). A whole run takes about 25 minutes on the 2-core machine
kind (TFDV's side of the data gate and the local runs dominate). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
ROWS = ("data_gate", "trace", "local", "approval", "compile")


def _run(arguments: list[str], out: Path) -> dict[str, Any]:
    """One benchmark as a subprocess writing its figures to `out`; its report is printed."""
    done = subprocess.run([sys.executable, *arguments, "--json", str(out)], cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{arguments[0]} failed ({done.returncode})")
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def data_gate(reps: int, scratch: Path) -> tuple[str, float, bool]:
    result = _run([str(BENCH / "data_gate_bench.py"), "--repeat", str(reps)], scratch / "dg.json")
    ratio = float(result["ratio"])
    text = (
        f"{ratio:.1f}x TFDV (gate {result['gate_s']:.1f} s, TFDV {result['tfdv_s']:.1f} s, "
        f"gate peak {result['gate_peak_mib']:.0f} MiB of < {result['peak_goal_mib']:.0f})"
    )
    peak, limit = float(result["gate_peak_mib"]), float(result["peak_goal_mib"])
    return text, ratio, ratio >= 10 and peak < limit


def trace(reps: int, scratch: Path) -> tuple[str, float, bool]:
    arguments = [str(BENCH / "audit_bench.py"), "--backends", "sqlite", "--runs", "100", "10000"]
    arguments += ["--process-reps", str(reps), "--workdir", str(scratch / "audit")]
    result = _run(arguments, scratch / "audit.json")["sqlite"]
    small, large = result["100"], result["10000"]
    ratio = float(large["trace_p95_ms"]) / 20
    text = (
        f"p95 {large['trace_p95_ms']:.1f} ms at 10,000 runs = {ratio:.2f} of 20 ms; "
        f"x{large['trace_p95_ms'] / small['trace_p95_ms']:.2f} from 100 runs; whole "
        f"`aiact trace` {small['trace_process_s']:.2f} s / {large['trace_process_s']:.2f} s"
    )
    return text, ratio, ratio < 1


def local(reps: int, scratch: Path) -> tuple[str, float, bool]:
    arguments = [str(BENCH / "local_overhead_bench.py"), "--reps", str(reps)]
    result = _run([*arguments, "--workdir", str(scratch / "local")], scratch / "local.json")
    ratio = float(result["ratio"])
    paired = sorted(float(r) for r in result.get("paired_ratios", []))
    spread = f"; per repetition {paired[0]:.2f}x-{paired[-1]:.2f}x" if paired else ""
    text = (
        f"{ratio:.2f}x (run-local {result['local_s']:.1f} s, one process "
        f"{result['one_process_s']:.1f} s, {result['tasks']} tasks{spread})"
    )
    return text, ratio, ratio <= 1.3


def approval(reps: int, scratch: Path) -> tuple[str, float, bool]:
    arguments = ["-m", "bench.approval_latency", "--runs", str(max(reps, 10))]
    result = _run(arguments, scratch / "approval.json")
    ratio = float(result["median_ms"]) / 1000
    text = f"median {result['median_ms']:.1f} ms, max {result['max_ms']:.1f} ms"
    return text, ratio, float(result["max_ms"]) < 1000


def compile_check(reps: int, scratch: Path) -> tuple[str, float, bool]:
    aiact = str(Path(sys.executable).with_name("aiact"))
    seconds = []
    for _ in range(reps):
        began = time.perf_counter()
        done = subprocess.run([aiact, "compile", "--check"], cwd=ROOT, capture_output=True)
        seconds.append(time.perf_counter() - began)
        if done.returncode != 0:
            raise SystemExit(f"aiact compile --check failed: {done.stderr.decode()}")
    median = statistics.median(seconds)
    return f"median {median:.2f} s (whole process)", median / 3, median < 3


MEASURES: dict[str, tuple[str, Callable[[int, Path], tuple[str, float, bool]]]] = {
    "data_gate": ("data gate >= 10x TFDV generate_statistics_from_csv, < 1.5 GB", data_gate),
    "trace": ("aiact trace query p95 < 20 ms at 10,000 runs (SQLite)", trace),
    "local": ("local run <= 1.3x the same executors in one process", local),
    "approval": ("approval resume < 1 s", approval),
    "compile": ("compile + drift check < 3 s", compile_check),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=ROWS, default=list(ROWS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for key in args.only:
            goal, measure = MEASURES[key]
            print(f"\n=== {goal} ===", flush=True)
            rows.append((goal, *measure(args.reps, Path(scratch))))
    print(f"\n== the goals, measured in this run (medians of {args.reps}) ==")
    for goal, text, ratio, met in rows:
        print(f"{'met   ' if met else 'MISSED'} {goal}: {text} (ratio {ratio:.2f})")


if __name__ == "__main__":
    main()
