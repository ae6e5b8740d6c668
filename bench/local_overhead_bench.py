"""Benchmark: the overhead of `aiact run-local` (every task in its own process under kfp.local)
over the same stage executors called one after the other in ONE process. Prints figures; not
part of the test suite.

    .venv/bin/python bench/local_overhead_bench.py [--reps 3] [--workdir DIR]

Each repetition runs, interleaved (so a busy shared machine affects them alike):

1. `aiact run-local --demo-approver ... --use-case COPY` in a fresh work directory: the whole
   command, as a user runs it (compile, reference data, twelve task processes, evidence bundle),
   on a private copy of the bundled credit use case (the working tree may change meanwhile);
2. the same with `AIACT_NO_FAST_EXIT=1`: every task process pays the interpreter's teardown
   (`aiact.fastexit` switched off), i.e. the local run as it was before the fast exit;
3. one process (`--in-process`) that generates the same reference data, then calls the same
   component functions through KFP's own `Executor`, in the same order, with the very executor
   inputs run 1 gave its tasks (read from its log; every path moved to a fresh work directory and
   a fresh MLMD store, so nothing is reused), and writes the same evidence bundle.

The package's modules are compiled to bytecode first, as hack/setup.sh does (where
PYTHONDONTWRITEBYTECODE is set, Python would otherwise compile them again in every process).
The wall time of each whole process is measured; the ratio local / one process is the overhead
(goal: <= 1.3x). A whole local run takes tens of seconds, so the default is 3 repetitions
(medians of 3), not 5.
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APPROVER = "Bench Auditor"
MARKER = "Got executor_input:"
LOADING = 'Loading KFP component "'


def captured_tasks(log: Path) -> list[tuple[str, str]]:
    """(component function, executor input JSON) of every task of a run-local log, in order."""
    lines = log.read_text().splitlines()
    tasks: list[tuple[str, str]] = []
    name = ""
    decoder = json.JSONDecoder()
    for index, line in enumerate(lines):
        if LOADING in line:
            name = line.split(LOADING, 1)[1].split('"', 1)[0]
        elif line.rstrip().endswith(MARKER):
            indent = len(line) - len(line.lstrip())
            text = "\n".join(item[indent:] for item in lines[index + 1 :])
            spec, _ = decoder.raw_decode(text)
            tasks.append((name, json.dumps(spec)))
    return tasks


def run_in_process(log: Path, source_dir: Path, workdir: Path) -> None:
    """The captured tasks' executors in this process, every path moved to `workdir`."""
    from kfp.dsl.executor import Executor

    from aiact.bundle import write_bundle
    from aiact.lineage import LineageStore
    from pipelines.local_run import LocalRunConfig, _source

    tasks = captured_tasks(log)
    old, new = str(source_dir.resolve()), str(workdir.resolve())
    _source(LocalRunConfig(workdir=workdir), workdir.resolve())  # the same reference data
    run_id = ""
    for name, spec_text in tasks:
        spec: dict[str, Any] = json.loads(spec_text.replace(old, new))
        run_id = spec["inputs"]["parameterValues"].get("run_id", run_id)
        component = importlib.import_module(f"components.{name}.component")
        Executor(executor_input=spec, function_to_execute=getattr(component, name)).execute()
    store = LineageStore.connect(f"sqlite://{workdir.resolve() / 'mlmd.sqlite'}")
    write_bundle(store, run_id, workdir / "evidence" / run_id)


def _aiact() -> str:
    return str(Path(sys.executable).with_name("aiact"))


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one whole process; fails loudly if it fails."""
    began = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def snapshot_use_case(root: Path) -> Path:
    """A private copy of the bundled credit use case, so that an edit of the working tree
    during the benchmark does not break the runs' chains of custody."""
    copy = root / "usecase-credit"
    if not copy.exists():
        shutil.copytree(ROOT / "aiact" / "usecases" / "credit", copy)
    return copy


def local_run(workdir: Path, use_case: Path, fast_exit: bool) -> tuple[float, Path]:
    """`aiact run-local` in `workdir`; returns its wall time and its executor log."""
    env = {} if fast_exit else {"AIACT_NO_FAST_EXIT": "1"}
    command = [_aiact(), "run-local", "--demo-approver", APPROVER, "--workdir", str(workdir)]
    command += ["--use-case", str(use_case)]
    elapsed = timed(command, env)
    [log] = (workdir / "logs").glob("*.log")
    return elapsed, log


def main() -> None:
    """Interleaved repetitions of the three variants; medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="keep the runs here")
    parser.add_argument("--in-process", nargs=3, type=Path, metavar=("LOG", "FROM", "TO"))
    parser.add_argument("--json", type=Path, help="also write the medians here (bench/goals.py)")
    args = parser.parse_args()
    if args.in_process:
        run_in_process(*args.in_process)
        return
    for package in ("aiact", "components", "pipelines"):  # as hack/setup.sh does
        compileall.compile_dir(ROOT / package, quiet=1)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir or Path(scratch)
        times: dict[str, list[float]] = {"local": [], "no_fast_exit": [], "one_process": []}
        tasks = 0
        use_case = snapshot_use_case(root)
        for rep in range(args.reps):
            local_dir = root / f"local-{rep}"
            elapsed, log = local_run(local_dir, use_case, fast_exit=True)
            times["local"].append(elapsed)
            tasks = len(captured_tasks(log))
            slow = local_run(root / f"slow-{rep}", use_case, fast_exit=False)[0]
            times["no_fast_exit"].append(slow)
            command = [sys.executable, __file__, "--in-process", str(log), str(local_dir)]
            times["one_process"].append(timed([*command, str(root / f"inprocess-{rep}")]))
            print(
                f"rep {rep + 1}: run-local {times['local'][-1]:.1f} s, without fast exit "
                f"{times['no_fast_exit'][-1]:.1f} s, one process {times['one_process'][-1]:.1f} s",
                flush=True,
            )
        local, slow, one = (median(times[k]) for k in ("local", "no_fast_exit", "one_process"))
        print(
            f"medians of {args.reps} interleaved repetitions, {tasks} tasks per run: "
            f"aiact run-local {local:.1f} s, without the fast exit {slow:.1f} s, "
            f"the same executors in one process {one:.1f} s"
        )
        paired = [a / b for a, b in zip(times["local"], times["one_process"], strict=True)]
        print(
            f"overhead: run-local / one process = {local / one:.2f}x (goal <= 1.3x); "
            f"before the fast exit {slow / one:.2f}x; the fast exit saves {slow - local:.1f} s"
        )
        print(
            f"per repetition (run-local / one process of the same repetition): "
            f"{', '.join(f'{r:.2f}x' for r in paired)}; median {median(paired):.2f}x"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "local_s": local,
                        "no_fast_exit_s": slow,
                        "one_process_s": one,
                        "ratio": local / one,
                        "paired_ratios": paired,
                        "reps": args.reps,
                        "tasks": tasks,
                    }
                )
            )


if __name__ == "__main__":
    main()
