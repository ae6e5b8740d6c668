"""Approval rules: stable request names, how many approvers, demo decisions never for
production, and the stage settling by N-of-M on the local backend."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from aiact.approval import (
    APPROVED,
    PENDING,
    REJECTED,
    ApprovalError,
    Decision,
    Tally,
    backend_from_uri,
)
from aiact.lineage import LineageStore, RunInfo
from aiact.platform import NAMESPACE_ENV, PLATFORM_CONFIG_ENV, PlatformError
from components.approval.core import (
    ApprovalExpired,
    ApprovalRejected,
    approval_name,
    demo_decision,
    required_approvals,
    settle,
    summary,
    utc_now,
)
from components.approval.executor import run_approval
from tests.chain import approval_stage_pending, record_chain

# A platform configuration (aiact.platform) whose namespace is production, as a cluster admin
# would set it: the stage takes its environment from the platform, not from the run.
PRODUCTION_PLATFORM = """\
defaults:
  environment: production
  required_approvals: 2
  approver_group: approvers
  ledger_uri: s3://aiact-ledger/deployments
  approval_backend: kubernetes://
  max_approval_timeout_s: 604800
"""


TWO_APPROVER_PLATFORM = PRODUCTION_PLATFORM.replace(
    "environment: production", "environment: development"
).replace("approval_backend: kubernetes://", "approval_backend: ''")


@pytest.fixture
def two_approver_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A development namespace whose platform configuration requires two approvers (the local
    backend exists only in development)."""
    path = tmp_path / "platform.yaml"
    path.write_text(TWO_APPROVER_PLATFORM)
    monkeypatch.setenv(PLATFORM_CONFIG_ENV, str(path))


@pytest.fixture
def production_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this process's platform configuration a production namespace."""
    path = tmp_path / "platform.yaml"
    path.write_text(PRODUCTION_PLATFORM)
    monkeypatch.setenv(PLATFORM_CONFIG_ENV, str(path))
    monkeypatch.setenv(NAMESPACE_ENV, "team-credit-prod")


def test_request_name_is_stable_and_dns_safe() -> None:
    name = approval_name("Credit Scoring_v2", "a" * 64, "run-1")
    assert name == approval_name("Credit Scoring_v2", "a" * 64, "run-1")
    assert name != approval_name("Credit Scoring_v2", "a" * 64, "run-2")
    assert name.startswith("credit-scoring-v2-aaaaaaaaaaaa-")
    assert len(name) <= 63 and name.replace("-", "").isalnum() and name.islower()


def test_demo_decision_is_marked_and_refused_for_production() -> None:
    decision = demo_decision("dana", "development")
    assert (decision.kind, decision.approver, decision.decision) == (
        "demo",
        "demo:dana",
        "approved",
    )
    with pytest.raises(ApprovalError, match="refused for the production environment"):
        demo_decision("dana", "production")


def test_required_approvals_never_below_the_production_minimum() -> None:
    assert required_approvals("development") == 1
    assert required_approvals("staging", 3) == 3
    assert required_approvals("production") == 2
    assert required_approvals("production", 1) == 2
    assert required_approvals("production", 4) == 4
    with pytest.raises(ApprovalError, match=r"must be 1\.\.10"):
        required_approvals("development", 11)


def test_settle() -> None:
    settle("x", Tally(APPROVED, ("alice", "bob")), 2, 5)
    with pytest.raises(ApprovalRejected, match="rejected by bob: bias in age band"):
        settle("x", Tally(REJECTED, ("alice",), "bob", "bias in age band"), 2, 5)
    with pytest.raises(ApprovalExpired, match="no decision within 5 s"):
        settle("x", Tally(PENDING), 2, 5)
    with pytest.raises(ApprovalExpired, match=r"1 of 2 required approvals \(alice\) within 5 s"):
        settle("x", Tally(PENDING, ("alice",)), 2, 5)


def test_summary_names_every_counted_approver() -> None:
    alice = Decision(APPROVED, "alice", "evaluation ok", "2026-01-01T10:00:00+00:00")
    bob = Decision(APPROVED, "bob", "tests ok", "2026-01-01T11:00:00+00:00", kind="demo")
    approved = summary(
        Tally(APPROVED, ("alice", "bob"), "", "evaluation ok; tests ok"), [alice, bob]
    )
    assert approved == Decision(
        APPROVED, "alice, bob", "evaluation ok; tests ok", "2026-01-01T11:00:00+00:00", "demo"
    )
    no = Decision(REJECTED, "carol", "bias", "2026-01-01T12:00:00+00:00")
    assert summary(Tally(REJECTED, ("alice",), "carol", "bias"), [alice, no]) is no
    assert summary(Tally(PENDING, ("alice",)), [alice]) is None


def _record_upstream(tmp_path: Path, metadata_uri: str, run: RunInfo) -> dict[str, Any]:
    """Approval stage arguments, with its inputs recorded as outputs of completed stages."""
    paths = record_chain(metadata_uri, run, tmp_path / "upstream")
    model, evaluation = paths["model"], paths["evaluation_report"]
    integration = paths["integration_report"]
    return {
        "metadata_uri": metadata_uri,
        "backend_uri": f"local:{tmp_path / 'approvals'}",
        "model_name": "credit-scoring",
        "model_dir": model,
        "model_uri": str(model),
        "evaluation_report_path": evaluation,
        "evaluation_report_uri": str(evaluation),
        "integration_report_path": integration,
        "integration_report_uri": str(integration),
        "requested_by": "ci",
        "approver_group": "",  # the platform's
        "demo_approver": "dana",
        "timeout_s": 5.0,
        "approval_path": tmp_path / "approval.json",
        "approval_uri": str(tmp_path / "approval.json"),
        "integration_verdict_path": paths["integration_testing_verdict"],
        "integration_verdict_uri": str(paths["integration_testing_verdict"]),
    }


@pytest.mark.parametrize("environment", ["development", "production"])
def test_demo_approval_is_refused_when_the_run_targets_production(
    tmp_path: Path, sqlite_uri: str, environment: str, request: pytest.FixtureRequest
) -> None:
    """The environment comes from the run context the first stage recorded, not from the
    approval stage's own arguments, so a later stage cannot relabel the run."""
    if environment == "production":
        request.getfixturevalue("production_platform")
    run = RunInfo(run_id="run-env", environment=environment)
    arguments = _record_upstream(tmp_path, sqlite_uri, run)
    store = LineageStore.connect(sqlite_uri)
    if environment == "production":
        # A local backend (where a demo decision could be recorded) does not exist there.
        with pytest.raises(
            PlatformError, match="local approval backend exists only in development"
        ):
            run_approval(run=RunInfo(run_id="run-env"), **arguments)
        [execution] = [e for e in store.executions_of_run("run-env") if e.stage == "approval"]
        assert execution.state == "FAILED"
    else:
        properties = run_approval(run=RunInfo(run_id="run-env"), **arguments)
        assert (properties["kind"], properties["approver"]) == ("demo", "demo:dana")


def test_stage_waits_for_two_distinct_approvers(
    tmp_path: Path, sqlite_uri: str, two_approver_platform: None
) -> None:
    """On the local backend: a request that needs two approvers (platform setting); the same
    approver twice is refused, a second distinct approver lets the stage continue."""
    run = RunInfo(run_id="run-prod", environment="development")
    arguments = {**_record_upstream(tmp_path, sqlite_uri, run), "demo_approver": ""}
    arguments["timeout_s"] = 20.0
    backend = backend_from_uri(arguments["backend_uri"])
    with approval_stage_pending(backend, "run-prod", arguments, join_s=20) as (
        stage,
        outcome,
        request,
    ):
        assert request.required_approvals == 2
        backend.decide(request.name, Decision(APPROVED, "alice", "evaluation ok", utc_now()))
        with pytest.raises(ApprovalError, match="alice has already decided"):
            backend.decide(request.name, Decision(APPROVED, "alice", "sure", utc_now()))
        stage.join(0.5)
        assert stage.is_alive(), "one approver settled a request that needs two"
        backend.decide(request.name, Decision(APPROVED, "bob", "tests ok", utc_now()))
    assert (outcome["approver"], outcome["approvals"], outcome["kind"]) == (
        "alice, bob",
        2,
        "human",
    )
    document = json.loads(arguments["approval_path"].read_text())
    assert [d["approver"] for d in document["decisions"]] == ["alice", "bob"]
    assert document["decision"]["decision"] == APPROVED


def test_stage_expires_with_one_approver(
    tmp_path: Path, sqlite_uri: str, two_approver_platform: None
) -> None:
    """On the local backend: one approval of the two the platform requires, then the
    expiry: the stage fails, saying how many approvals it got."""
    run = RunInfo(run_id="run-prod-1", environment="development")
    arguments = {**_record_upstream(tmp_path, sqlite_uri, run), "demo_approver": ""}
    arguments["timeout_s"] = 1.5
    backend = backend_from_uri(arguments["backend_uri"])

    def approve_once() -> None:
        while not backend.pending():
            threading.Event().wait(0.05)
        (request,) = backend.pending()
        backend.decide(request.name, Decision(APPROVED, "alice", "evaluation ok", utc_now()))

    approver = threading.Thread(target=approve_once, daemon=True)
    approver.start()
    with pytest.raises(ApprovalExpired, match=r"1 of 2 required approvals \(alice\)"):
        run_approval(run=RunInfo(run_id="run-prod-1"), **arguments)
    approver.join(5)
    document = json.loads(arguments["approval_path"].read_text())
    assert document["decision"] is None and document["outcome"]["status"] == PENDING
