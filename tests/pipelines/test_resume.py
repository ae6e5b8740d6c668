"""Kill a real `aiact run-local` inside each of the eight stages (SIGKILL of its whole process
group: the CLI and every kfp.local task process), then `aiact resume RUN`: the resumed run is a
new kfp.local run whose stages before the killed one reuse the killed run's executions, every
execution of it completes, the killed run is marked abandoned, no artefact is recorded twice,
nothing is left half-recorded, and the deployed model is the one an uninterrupted run with the
same seed deploys. Deleting the killed run's folder afterwards breaks none of the new run's
evidence.

The stage is known to be running from its own `started` log event in the run's log file (the
CLI sends every executor's log there); a test-only start-up hook (tests/pipelines/hold) holds
the stage's process right after that line, so the kill lands inside the stage however fast it
is, and the test checks that the stage indeed never completed in the killed run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiact import cli, lineage
from aiact.approval import ApprovalError, Decision, backend_from_uri
from aiact.approval.local import LocalApprovalBackend
from aiact.custody import CHAIN, ORDER, verify_model
from aiact.lineage import LineageStore, properties_of
from aiact.reuse import REUSABLE_STAGES
from pipelines.local_run import LocalRunConfig, run_local

pytestmark = pytest.mark.slow

FAST = {"max_epochs": 12, "hidden_units": [16]}
ROWS = 3000
AIACT = str(Path(sys.executable).parent / "aiact")
HOLD = Path(__file__).parent / "hold"
# Content every run of these arguments produces identically: recorded once, whatever happens.
DETERMINISTIC = (lineage.DATASET, lineage.FEATURE_SET, lineage.FEATURE_TRANSFORM, lineage.MODEL)


def _config(workdir: Path, approver: str = "dana") -> LocalRunConfig:
    return LocalRunConfig(
        workdir=workdir,
        demo_approver=approver,
        rows=ROWS,
        overrides={"hyperparameters": FAST},
        approval_timeout_s=600,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The model an uninterrupted run with the same arguments deploys (its own store)."""
    config = _config(tmp_path_factory.mktemp("uninterrupted"))
    result = run_local(config)
    assert result.succeeded, result.error
    return _deployed_model(config, result.run_id)


def _deployed_model(config: LocalRunConfig, run_id: str) -> str:
    store = LineageStore.connect(config.metadata_uri)
    [deployment] = store.artifacts_of_run(run_id, lineage.DEPLOYMENT)
    return str(properties_of(deployment)["model_sha256"])


def _started(log: Path, stage: str) -> bool:
    for raw in log.read_text(errors="replace").splitlines():
        line = raw.strip()  # kfp.local indents every line a task prints
        if line.startswith("{") and f'"stage": "{stage}"' in line:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "started" and record.get("stage") == stage:
                return True
    return False


def _kill_inside(workdir: Path, stage: str, approver: str) -> tuple[str, str]:
    """Start `aiact run-local` in its own process group, SIGKILL the group as soon as `stage`
    has started (for approval: once its request is pending); returns (submission, run id)."""
    command = [AIACT, "run-local", "--workdir", str(workdir), "--rows", str(ROWS)]
    command += ["--hyperparameters", json.dumps(FAST), "--approval-timeout", "600"]
    if approver:
        command += ["--demo-approver", approver]
    env = dict(os.environ)
    if stage != "approval":  # approval is killed once its request is pending, not on `started`
        # tests/pipelines/hold/sitecustomize.py holds the stage after its `started` log line, so
        # even a stage that finishes in milliseconds (deployment) is killed inside itself.
        env["AIACT_TEST_HOLD_STAGE"] = stage
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HOLD), env.get("PYTHONPATH", "")) if p)
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    deadline = time.monotonic() + 900
    try:
        while True:
            assert process.poll() is None, f"the run ended (rc {process.returncode}) before {stage}"
            assert time.monotonic() < deadline, f"{stage} never started"
            logs = sorted((workdir / "logs").glob("*.log"))
            if (
                logs
                and _started(logs[0], stage)
                and (
                    stage != "approval"
                    or backend_from_uri(_config(workdir).approvals_uri).pending()
                )
            ):
                break
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    _wait_group_gone(process.pid)
    submission = logs[0].stem
    store = LineageStore.connect(_config(workdir).metadata_uri)
    [run] = [c for c in store.runs() if properties_of(c).get("submission_id") == submission]
    return submission, run.name


def _wait_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"process group {pgid} still has processes after SIGKILL")


def _by_stage(store: LineageStore, run_id: str) -> dict[str, list[lineage.ExecutionRecord]]:
    found: dict[str, list[lineage.ExecutionRecord]] = {}
    for execution in store.executions_of_run(run_id):
        found.setdefault(execution.stage, []).append(execution)
    return found


def _code_changed(old: lineage.ExecutionRecord, new: lineage.ExecutionRecord) -> bool:
    """Whether the code itself changed between the killed run and the resume (a commit, or an
    edit of the working tree by someone else while the test ran): then no reuse is correct.
    Any other difference of the reuse keys fails the test."""
    if old.properties["reuse_key"] == new.properties["reuse_key"]:
        return False
    before = json.loads(str(old.properties["reuse_key_json"]))
    after = json.loads(str(new.properties["reuse_key_json"]))
    for document in (before, after):
        document.pop("code_commit")
        document["image"].pop("source_sha256")
    assert before == after, f"{old.stage}: reuse keys differ in more than the code"
    assert "reused_execution_id" not in new.properties
    warnings.warn(
        f"{old.stage} was recomputed: the code changed between the kill and the resume",
        stacklevel=2,
    )
    return True


def _approve_when_pending(config: LocalRunConfig, old_run: str, stop: threading.Event) -> None:
    """The human of the resumed run: approves its request (never the abandoned run's)."""
    backend = backend_from_uri(config.approvals_uri)
    while not stop.is_set():
        for request in backend.pending():
            if request.pipeline_run_id == old_run:  # until `aiact resume` withdraws it
                continue
            backend.decide(
                request.name,
                Decision(
                    decision="approved",
                    approver="alice",
                    reason="reviewed the resumed run",
                    decided_at=datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )
            return
        time.sleep(0.2)


@pytest.mark.parametrize("stage", CHAIN)
def test_a_run_killed_inside_a_stage_resumes_there(
    stage: str, tmp_path: Path, uninterrupted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    approver = "" if stage == "approval" else "dana"
    config = _config(tmp_path, approver)
    _, killed = _kill_inside(tmp_path, stage, approver)
    store = LineageStore.connect(config.metadata_uri)
    before = _by_stage(store, killed)
    # Killed inside `stage`: it never completed, everything before it did, nothing is partial.
    assert stage not in before, f"{stage} completed before the kill: {sorted(before)}"
    for link in ORDER[: ORDER.index(stage)]:
        assert [e.state for e in before[link]] == ["COMPLETE"], link
    pending_before = [
        r for r in backend_from_uri(config.approvals_uri).pending() if r.pipeline_run_id == killed
    ]
    assert len(pending_before) == (1 if stage == "approval" else 0)

    stop = threading.Event()
    human = threading.Thread(target=_approve_when_pending, args=(config, killed, stop))
    if stage == "approval":
        human.start()
    try:
        code = cli.main(["resume", killed, "--workdir", str(tmp_path)])
    finally:
        stop.set()
        if human.is_alive():
            human.join(timeout=30)
    out = capsys.readouterr().out
    assert code == 0, out
    resumed = properties_of(store.run_context(killed))
    assert resumed["abandoned"] is True and str(resumed["abandoned_reason"]).startswith(
        f"killed at {stage}"
    )
    new = str(resumed["resumed_by_run"])
    assert f"run id:            {new}" in out and "SUCCEEDED" in out
    assert properties_of(store.run_context(new))["resumes_run"] == killed

    # Every link of the new run completed once; no orphan records anywhere in the store.
    after = _by_stage(store, new)
    assert sorted(after) == sorted(ORDER)
    assert all([e.state for e in after[link]] == ["COMPLETE"] for link in ORDER)
    for execution in store.store.get_executions():
        assert store.store.get_contexts_by_execution(execution.id), execution.id
    events = store.store.get_events_by_artifact_ids([a.id for a in store.store.get_artifacts()])
    assert {a.id for a in store.store.get_artifacts()} == {e.artifact_id for e in events}

    # The stages before the killed one reuse the killed run's executions; the rest computed.
    for name in REUSABLE_STAGES:
        execution = after[name][0]
        if CHAIN.index(name) < CHAIN.index(stage):
            if _code_changed(before[name][0], execution):
                continue
            assert execution.properties["reused_execution_id"] == before[name][0].id, name
            assert execution.properties["reused_from_run"] == killed
            assert f"reused:          {name} = execution {before[name][0].id}" in out
        else:
            assert "reused_execution_id" not in execution.properties, name
    for link in ORDER:
        if link not in REUSABLE_STAGES:
            assert "reused_execution_id" not in after[link][0].properties, link

    # No duplicate artefacts: one per content digest and type, and one of each deterministic
    # output however often it was produced.
    artifacts = store.store.get_artifacts()
    keys = [(a.type_id, a.name) for a in artifacts]
    assert len(keys) == len(set(keys))
    for type_name in DETERMINISTIC:
        assert len(store.store.get_artifacts_by_type(type_name)) == 1, type_name

    # The same model as an uninterrupted run, and a chain that verifies in the new run.
    model = _deployed_model(config, new)
    assert model == uninterrupted
    assert verify_model(store, model, run_id=new, through="deployment").run_id == new

    # The abandoned run's approval request is no longer pending, and cannot be approved.
    backend = backend_from_uri(config.approvals_uri)
    assert not [r for r in backend.pending() if r.pipeline_run_id == killed]
    for request in pending_before:
        with pytest.raises(ApprovalError, match="withdrawn"):
            backend.decide(
                request.name,
                Decision("approved", "bob", "late", datetime.now(UTC).isoformat()),
            )
    runs = subprocess.run(
        [AIACT, "runs", "--metadata-uri", config.metadata_uri],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = {json.loads(line)["run_id"]: json.loads(line) for line in runs.splitlines()}
    assert listed[killed]["abandoned"] is True and "abandoned" not in listed[new]

    # Deleting the killed run's folder breaks none of the new run's evidence.
    root = tmp_path / "pipeline_root"
    mine = {  # the new run's own artefacts (those it shares name their objects instead)
        Path(a.uri).relative_to(root).parts[0]
        for a in store.artifacts_of_run(new)
        if a.uri.startswith(f"{root}/")
    }
    folders = {p.name for p in root.iterdir()} - mine
    assert len(mine) == 1 and len(folders) == 1, (mine, folders)
    shutil.rmtree(root / folders.pop())
    assert verify_model(store, model, run_id=new, through="deployment").run_id == new

    # The resumed run's evidence bundle shows which executions were reused and from where.
    from aiact.bundle import write_bundle

    manifest = write_bundle(store, new, tmp_path / "bundle")
    assert manifest["custody"]["verified"] is True
    index = (tmp_path / "bundle" / "index.html").read_text()
    for name in REUSABLE_STAGES:
        reused = after[name][0].properties.get("reused_execution_id")
        if reused:
            assert f"reused execution {reused} of run {killed}" in index, name


def test_resume_refuses_what_it_cannot_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown run and a run without recorded arguments: one line each, nothing marked."""
    config = _config(tmp_path)
    store = LineageStore.connect(config.metadata_uri)
    store.ensure_run(lineage.RunInfo(run_id="by-hand"))
    assert cli.main(["resume", "no-such-run", "--workdir", str(tmp_path)]) == 2
    assert "no pipeline run 'no-such-run'" in capsys.readouterr().err
    assert cli.main(["resume", "by-hand", "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no recorded submission arguments" in err and len(err.splitlines()) == 1
    assert "abandoned" not in properties_of(store.run_context("by-hand"))


# -- the local approval backend (no pipeline) ----------------------------------------------


def _request(name: str, expires: datetime, run_id: str = "r1") -> object:
    from aiact.approval import ApprovalRequest

    return ApprovalRequest(
        name=name,
        model_name="m",
        model_sha256="a" * 64,
        evaluation_report_uri="/e",
        evaluation_report_sha256="b" * 64,
        integration_report_uri="/i",
        integration_report_sha256="c" * 64,
        pipeline_run_id=run_id,
        requested_by="aiact-run-local",
        approver_group="aiact-approvers",
        environment="development",
        expires_at=expires.isoformat(),
    )


def test_a_withdrawn_or_expired_request_cannot_be_approved(tmp_path: Path) -> None:
    backend = LocalApprovalBackend(tmp_path)
    now = datetime.now(UTC)
    backend.ensure_request(_request("live", now + timedelta(hours=1)))  # type: ignore[arg-type]
    backend.ensure_request(_request("old", now - timedelta(seconds=1)))  # type: ignore[arg-type]
    assert [r.name for r in backend.pending()] == ["live"]
    approve = Decision("approved", "alice", "ok", now.isoformat())
    with pytest.raises(ApprovalError, match="expired"):
        backend.decide("old", approve)
    backend.withdraw("live", "run r1 was abandoned")
    assert backend.pending() == []
    with pytest.raises(ApprovalError, match=r"withdrawn \(run r1 was abandoned\)"):
        backend.decide("live", approve)
    assert backend.decisions("live") == [] and backend.decisions("old") == []
