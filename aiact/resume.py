"""Resuming a failed or killed run: which stage it stopped at, what it was submitted with, and
marking it abandoned.

`aiact run-local` records every submission's pipeline arguments in an `aiact.Submission`
context of the metadata store, named by the submission id that the run's context carries (the
run context itself cannot exist before KFP names the run). `aiact resume RUN` reads them back,
refuses a run that is still running, complete or already abandoned, marks the run's context
abandoned (`abandoned`, `abandoned_at`, `abandoned_reason`; `aiact runs` shows them), withdraws
its pending local approval request, and submits a NEW run with the same arguments (code commit
and spec hash taken afresh): its stages before the first incomplete one reuse the old run's
executions (`aiact.reuse`), and the rest are computed. The old run's records stay as they are.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiact.custody import ORDER
from aiact.lineage import LineageError, LineageStore, properties_of

ARGUMENTS = "arguments_json"
ABANDONED = "abandoned"
RESUMED_BY = "resumed_by_run"
RESUMES = "resumes_run"


class ResumeError(LineageError):
    """A run cannot be resumed as asked."""


def process_start(pid: int) -> str:
    """The start time of a process (clock ticks since boot, from /proc), '' when unknown:
    with the pid it identifies the process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def submitter() -> dict[str, str | int]:
    """What identifies the submitting process (recorded on its submission)."""
    pid = os.getpid()
    return {"pid": pid, "pid_started": process_start(pid), "host": socket.gethostname()}


def still_running(submission: dict[str, Any]) -> bool:
    """Whether the process that submitted a run on this machine is still alive."""
    pid = int(submission.get("pid", 0) or 0)
    if not pid or submission.get("host") != socket.gethostname():
        return False
    started = process_start(pid)
    return bool(started) and started == str(submission.get("pid_started", ""))


def first_incomplete(stages: dict[str, list[tuple[str, str]]]) -> str:
    """The first link of the chain (stages and verdict tasks, in order) without a completed
    execution; '' when every one completed. `stages`: stage -> [(state, outcome)]."""
    for stage in ORDER:
        if ("COMPLETE", "completed") not in stages.get(stage, []):
            return stage
    return ""


@dataclass(frozen=True)
class ResumePlan:
    """What resuming a run means: its arguments and where it stopped."""

    run_id: str
    submission_id: str
    arguments: dict[str, Any]
    first_incomplete: str
    completed: tuple[str, ...]
    state: str  # "failed" (an execution failed) or "killed" (it just stopped)


def plan(lineage: LineageStore, run_id: str) -> ResumePlan:
    """Check that `run_id` can be resumed and rebuild its submission's arguments."""
    context = lineage.run_context(run_id)
    props = properties_of(context)
    if props.get(ABANDONED):
        later = props.get(RESUMED_BY, "")
        raise ResumeError(
            f"run {run_id} was already abandoned"
            + (f" and resumed as run {later}: resume that run instead" if later else "")
        )
    executions = lineage.executions_of_run(run_id)
    stages: dict[str, list[tuple[str, str]]] = {}
    for execution in executions:
        outcome = str(execution.properties.get("outcome", ""))
        stages.setdefault(execution.stage, []).append((execution.state, outcome))
    stopped = first_incomplete(stages)
    if not stopped:
        raise ResumeError(f"run {run_id} completed every stage: nothing to resume")
    submission_id = str(props.get("submission_id", ""))
    submission = lineage.submission(submission_id) if submission_id else None
    recorded = properties_of(submission) if submission is not None else {}
    if not recorded.get(ARGUMENTS):
        raise ResumeError(
            f"run {run_id} has no recorded submission arguments (it was not started by "
            "aiact run-local, or before resume existed): submit it again instead"
        )
    if still_running(recorded):
        raise ResumeError(
            f"run {run_id} is still running (aiact run-local, pid {recorded.get('pid')}): "
            "stop it before resuming"
        )
    failed = any(e.state == "FAILED" for e in executions)
    completed = tuple(stage for stage in ORDER if stage in stages and stage != stopped)
    return ResumePlan(
        run_id=run_id,
        submission_id=submission_id,
        arguments=json.loads(str(recorded[ARGUMENTS])),
        first_incomplete=stopped,
        completed=tuple(s for s in completed if ORDER.index(s) < ORDER.index(stopped)),
        state="failed" if failed else "killed",
    )


def abandon(lineage: LineageStore, resume: ResumePlan) -> list[str]:
    """Mark the run abandoned and withdraw its pending approval requests in its local approval
    backend; returns the names of the withdrawn requests."""
    reason = f"{resume.state} at {resume.first_incomplete}; resumed by aiact resume"
    lineage.update_run(
        resume.run_id,
        {
            ABANDONED: True,
            "abandoned_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "abandoned_reason": reason,
        },
    )
    withdrawn: list[str] = []
    backend_uri = str(resume.arguments.get("approval_backend", ""))
    if backend_uri.startswith("local:"):
        from aiact.approval.local import LocalApprovalBackend

        backend = LocalApprovalBackend(Path(backend_uri.removeprefix("local:")))
        for request in backend.pending():
            if request.pipeline_run_id == resume.run_id:
                backend.withdraw(request.name, f"run {resume.run_id} was abandoned ({reason})")
                withdrawn.append(request.name)
    return withdrawn
