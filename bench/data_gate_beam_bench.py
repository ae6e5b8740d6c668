"""Benchmark: the data gate's Beam path (out of core) on a CSV larger than the memory the whole
process tree ever holds. The file is the data gate bench's 1M-row x 20-column CSV written
`--copies` times (each copy's income lowered by a cent more, so no copy duplicates another
and every value stays inside the schema's income domain [0, 500000]);
the gate runs in a child process on Beam's DirectRunner (in-process, or `--workers N`
processes with --direct_running_mode=multi_processing); the resident memory of the child and
all its descendants (Beam workers included) is sampled from /proc every 0.2 s and its peak
reported beside the file's size. The CPU seconds of the worker tree are reported beside the wall
time (rows per CPU second do not depend on how busy a shared machine is); the 30-copy file
(3.2 GiB, 30M rows) is written once, streaming, and kept under --workdir for later runs.

    python bench/data_gate_beam_bench.py [--copies 30] [--workers 0] [--sample-rows 200000]
        [--chunk-mb 16] [--workdir /tmp/aiact-bench]

(sample_rows and chunk size are the policy's data_quality.engine settings for this run.)

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAGE = os.sysconf("SC_PAGE_SIZE")


def make_big(copies: int, workdir: Path) -> tuple[Path, Path]:
    """The 1M-row bench CSV written `copies` times, income - k cents in copy k (the income
    domain's maximum, 500000, occurs in the data: a copy shifted up breaches the schema)."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    from data_gate_bench import make_inputs

    small, schema = make_inputs(1_000_000, workdir)
    big = workdir / f"credit_{copies}x1M.csv"
    if big.exists():
        return big, schema
    table = pacsv.read_csv(small)
    partial = big.with_suffix(".partial")
    with partial.open("wb") as out:
        for k in range(copies):
            shifted = table.set_column(
                table.schema.get_field_index("income"),
                "income",
                pc.subtract(table["income"], k * 0.01),
            )
            options = pacsv.WriteOptions(include_header=k == 0)
            pacsv.write_csv(shifted, out, write_options=options)
    partial.rename(big)
    return big, schema


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants."""
    tree, total, todo = _children(), 0, [root]
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE
        except OSError:
            continue
    return total


def run_gate(
    data: Path, schema: Path, workers: int, sample_rows: int, chunk_mb: int
) -> dict[str, object]:
    """The gate on Beam (the child process's work)."""
    from dataclasses import replace

    import tensorflow_data_validation  # noqa: F401

    from aiact.policy import load_policy
    from aiact.usecase import BUNDLED_USE_CASE, load_use_case
    from components.data_preparation import core

    credit = core.declared_of(load_use_case("", BUNDLED_USE_CASE))
    extra = ("utilisation", "inquiries_12m")
    declared = replace(credit, gated=(*credit.gated, *extra), kept=(*credit.kept, *extra))
    options = (
        [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
        if workers
        else []
    )
    engine = core.Engine(
        beam=True,
        beam_options=tuple(options),
        sample_rows=sample_rows,
        chunk_bytes=chunk_mb * 2**20,
    )
    started = time.perf_counter()
    run = core.gate_file(
        data, schema, load_policy()["data_quality"], declared=declared, engine=engine
    )
    outcome = run.outcome
    return {
        "seconds": time.perf_counter() - started,
        "path": run.path,
        "rows": outcome.evidence["rows"],
        "passed": outcome.gate.passed,
        "breaches": [c.name for c in outcome.gate.breaches],
        "label_leakage": outcome.evidence["engine"]["label_leakage"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/aiact-bench"))
    parser.add_argument("--sample-rows", type=int, default=200_000)
    parser.add_argument("--chunk-mb", type=int, default=16)
    parser.add_argument("--worker", nargs=5, metavar=("DATA", "SCHEMA", "WORKERS", "K", "MB"))
    args = parser.parse_args()
    if args.worker:
        data, schema, workers, k, mb = args.worker
        print(json.dumps(run_gate(Path(data), Path(schema), int(workers), int(k), int(mb))))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    data, schema = make_big(args.copies, args.workdir)
    size = data.stat().st_size
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--worker",
            str(data),
            str(schema),
            str(args.workers),
            str(args.sample_rows),
            str(args.chunk_mb),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
    )
    peak, started = 0, time.perf_counter()
    while child.poll() is None:
        peak = max(peak, tree_rss(child.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the worker and its reaped children
    cpu = usage.ru_utime + usage.ru_stime
    assert child.stdout is not None
    output = child.stdout.read().decode().strip().splitlines()
    if child.returncode != 0 or not output:
        raise SystemExit(f"gate worker failed with status {child.returncode}")
    result = json.loads(output[-1])
    rows = int(result["rows"])
    print(f"input: {rows:,} rows x 20 columns, {size / 2**30:.2f} GiB CSV ({size:,} bytes, {data})")
    print(
        f"Beam path ({'in-process' if not args.workers else f'{args.workers} worker processes'}): "
        f"gate {result['seconds']:.0f} s, {rows / result['seconds']:,.0f} rows/s; whole worker "
        f"process {wall:.0f} s wall, {cpu:.0f} CPU s ({rows / cpu:,.0f} rows per CPU second; "
        f"imports included; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"peak RSS of the process tree {peak / 2**30:.2f} GiB ({peak / 2**20:,.0f} MiB); "
        f"file / peak = {size / peak:.2f} (goal >= 2: {'met' if size >= 2 * peak else 'missed'})"
    )
    print(f"verdict passed={result['passed']} breaches={result['breaches']}")
    print(f"label leakage: {result['label_leakage']}")


if __name__ == "__main__":
    main()
