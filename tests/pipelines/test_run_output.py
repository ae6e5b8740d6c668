"""What `aiact run-local` shows a person: one line per stage as it finishes, the executors' logs
in a per-run file (or streamed with --verbose), and the final summary."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aiact.custody import CHAIN
from aiact.lineage import ArtifactRecord, ExecutionRecord, LineageStore, RunInfo
from pipelines.run_output import StageMonitor, captured_output, stage_line

STAGE_LINE = re.compile(r"^\[(\d)/8\] (\w+)\s+(COMPLETE|FAILED|BREACHED)\s")
SUMMARY = "== aiact run-local =="


def _execution(stage: str, state: str, **properties: str | float) -> ExecutionRecord:
    return ExecutionRecord(
        id=1, stage=stage, state=state, properties={"stage": stage, **properties}
    )


def test_stage_line_shows_verdict_duration_and_key_figures() -> None:
    line = stage_line(
        _execution("evaluation", "COMPLETE", duration_s=0.8),
        {"aiact.EvaluationReport": {"accuracy": 0.794667, "roc_auc": 0.83632, "passed": True}},
    )
    assert line.startswith("[4/8] evaluation ") and "COMPLETE" in line
    assert "0.8s" in line and "accuracy 0.795" in line and "ROC AUC 0.836" in line
    assert "\n" not in line


def test_a_halting_gate_names_its_breaches_and_gives_its_error() -> None:
    error = "gate 'evaluation' failed: f1=0.65 (limit >= 0.75) BREACH; dp[sex]=0.23 BREACH"
    line = stage_line(
        _execution(
            "evaluation", "FAILED", duration_s=1.3, error=error, gate_breaches="f1; dp[sex]"
        ),
        {"aiact.EvaluationReport": {"accuracy": 0.7, "roc_auc": 0.767}},
    )
    first, detail = line.split("\n")
    assert "FAILED" in first and "breaches: f1, dp[sex]" in first
    assert detail.strip() == error


def test_a_failure_without_a_gate_shows_its_error() -> None:
    line = stage_line(_execution("training", "FAILED", error="CUDA\n  out of memory"), {})
    assert line.endswith("error: CUDA out of memory")


def test_monitor_prints_each_recorded_stage_once_in_order(tmp_path: Path) -> None:
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    store = LineageStore.connect(uri)
    run = RunInfo(run_id="r1", submission_id="sub-1")
    other = RunInfo(run_id="r2", submission_id="sub-2")
    out = io.StringIO()
    monitor = StageMonitor(uri, "sub-1", out, interactive=False)
    assert monitor.poll() == []
    for stage, rows in (("data_preparation", 5000), ("feature_engineering", 0)):
        dataset = ArtifactRecord(
            "aiact.Dataset", f"/d/{stage}", f"{rows:064d}", "dataset", {"rows": rows}
        )
        for info in (run, other):
            store.record_execution(
                run=info,
                stage=stage,
                inputs=[],
                outputs=[dataset],
                succeeded=True,
                properties={"duration_s": 2.5},
            )
        monitor.poll()
    monitor.poll()
    lines = out.getvalue().splitlines()
    assert [STAGE_LINE.match(line).group(2) for line in lines if STAGE_LINE.match(line)] == [
        "data_preparation",
        "feature_engineering",
    ]
    assert len(lines) == 2 and "rows 5000" in lines[0] and "2.5s" in lines[0]
    assert monitor.run_id == "r1"


def test_monitor_keeps_a_live_line_for_the_running_stage_on_a_terminal(tmp_path: Path) -> None:
    out = io.StringIO()
    monitor = StageMonitor(f"sqlite://{tmp_path / 'm.sqlite'}", "none", out, interactive=True)
    monitor._show_progress()
    assert (
        out.getvalue().startswith("\r\x1b[K[1/8] data_preparation") and "running" in out.getvalue()
    )
    monitor.stop("Inner task failed: 'data-preparation'")
    text = out.getvalue()
    assert text.endswith("\n") and "FAILED" in text.splitlines()[-1]


def test_captured_output_sends_subprocess_output_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    with captured_output(log):
        subprocess.run(
            [
                sys.executable,
                "-c",
                "print('from a task'); import sys; print('on stderr', file=sys.stderr)",
            ],
            check=True,
        )
        os.write(1, b"from this process\n")  # pytest swaps sys.stdout, not descriptor 1
    assert log.read_text().split("\n")[:3] == ["from a task", "on stderr", "from this process"]


# -- the command, end to end -------------------------------------------------------------------


def _start(workdir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "aiact"),
            "run-local",
            "--workdir",
            str(workdir),
            "--demo-approver",
            "dana",
            "--rows",
            "3000",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str, Path]]:
    """Three `aiact run-local` processes at once: clean, halted at evaluation, and a verbose
    one halted at the data gate (the quickest way to see streamed logs)."""
    started = {}
    for name, extra in (
        ("clean", ()),
        ("biased", ("--label-bias", "0.7")),
        ("verbose", ("--corruption", "0.2", "--verbose")),
    ):
        workdir = tmp_path_factory.mktemp(name)
        started[name] = (_start(workdir, *extra), workdir)
    done = {}
    for name, (process, workdir) in started.items():
        stdout, stderr = process.communicate(timeout=600)
        done[name] = (process.returncode, stdout, stderr, workdir)
    return done


def _stage_lines(stdout: str) -> list[tuple[str, str, str]]:
    """(stage, verdict, line) of every stage line printed before the summary."""
    before = stdout.split(SUMMARY)[0]
    found = [(STAGE_LINE.match(line), line) for line in before.splitlines()]
    return [(match.group(2), match.group(3), line) for match, line in found if match]


def _log_path(stdout: str) -> Path:
    match = re.search(r"^executor logs:\s+(\S+)$", stdout, re.MULTILINE)
    assert match, stdout
    return Path(match.group(1))


@pytest.mark.slow
def test_a_clean_run_prints_one_line_per_stage_and_keeps_the_logs_in_a_file(
    runs: dict[str, tuple[int, str, str, Path]],
) -> None:
    code, stdout, stderr, workdir = runs["clean"]
    assert code == 0, stdout + stderr
    lines = _stage_lines(stdout)
    assert [(stage, verdict) for stage, verdict, _ in lines] == [(s, "COMPLETE") for s in CHAIN]
    figures = {stage: line for stage, _, line in lines}
    assert "rows 3000" in figures["data_preparation"]
    assert "accuracy 0." in figures["evaluation"] and "ROC AUC 0." in figures["evaluation"]
    assert "approved by demo:dana" in figures["approval"]
    assert "ledger sequence 1" in figures["deployment"]
    # Before the summary: the log's path, one line per stage and, without a terminal, a
    # heartbeat every 30 s of a long stage; the summary ends with the custody verdict.
    progress = stdout.split(SUMMARY)[0].strip().splitlines()
    assert progress[0].startswith("logs: ")
    others = [line for line in progress[1:] if not STAGE_LINE.match(line)]
    assert all(re.match(r"^\[\d/8\] \w+ +running for \d+s$", line) for line in others), others
    assert len(stdout.splitlines()) < 40, stdout
    for kept in ("run id:", "outcome:           SUCCEEDED", "MLMD store:", "evidence bundle:"):
        assert kept in stdout
    assert "chain of custody:  VERIFIED through deployment" in stdout
    assert "aiact trace --run" in stdout and "lineage of the deployed model" not in stdout
    assert "Executing task" not in stdout + stderr

    log = _log_path(stdout)
    assert log.parent == workdir.resolve() / "logs" and log.is_file()
    text = log.read_text()
    for task in ("data-preparation", "training", "evaluation", "approval", "deployment"):
        assert f"Executing task \x1b[96m'{task}'" in text or f"Executing task '{task}'" in text
    assert "finished with status" in text


@pytest.mark.slow
def test_a_halted_run_prints_the_breach_in_its_stage_line(
    runs: dict[str, tuple[int, str, str, Path]],
) -> None:
    code, stdout, stderr, workdir = runs["biased"]
    assert code == 1, stdout + stderr
    lines = _stage_lines(stdout)
    *passed, (stage, verdict, line) = lines
    assert [s for s, _, _ in lines] == list(CHAIN[: len(lines)])
    # The gate's task completed with the breach as its verdict; its verdict task halted the run.
    assert all(v == "COMPLETE" for _, v, _ in passed) and verdict == "BREACHED"
    # The gate that halts a biased run (the evaluation's fairness checks, or the data gate's
    # favourable-rate checks where the policy has them): its line names every recorded breach.
    run_id = re.search(r"^run id:\s+(\S+)$", stdout, re.MULTILINE)
    assert run_id, stdout
    store = LineageStore.connect(f"sqlite://{workdir.resolve() / 'mlmd.sqlite'}")
    executions = store.executions_of_run(run_id.group(1))
    [halted] = [e for e in executions if e.state == "FAILED"]
    assert halted.stage == f"{stage}_verdict"
    [failed] = [e for e in executions if e.stage == stage]
    assert failed.properties["verdict"] == "breached"
    breaches = [b.strip() for b in str(failed.properties["gate_breaches"]).split(";")]
    assert breaches and all(b in line for b in breaches), (breaches, line)
    if stage == "evaluation":
        assert "equalized_odds_difference[sex]" in line
    assert "halted by the gate's verdict task: gate" in stdout.split(SUMMARY)[0]
    assert "outcome:           HALTED" in stdout and _log_path(stdout).is_file()


@pytest.mark.slow
def test_verbose_streams_the_executor_logs(runs: dict[str, tuple[int, str, str, Path]]) -> None:
    code, stdout, stderr, workdir = runs["verbose"]
    assert code == 1, stdout + stderr
    assert "Executing task" in stdout and "finished with status" in stdout
    # Streamed logs may end a line without a newline just before a stage line is printed.
    assert re.search(r"\[1/8\] data_preparation +BREACHED .*breaches: ", stdout), stdout
    assert "executor logs:" not in stdout and not (workdir / "logs").exists()
