"""Approval rules: stable request names, demo decisions never for production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aiact import lineage
from aiact.approval import ApprovalError, Decision
from aiact.hashing import sha256_path
from aiact.lineage import ArtifactRecord, LineageStore, RunInfo
from components.approval.core import (
    ApprovalExpired,
    ApprovalRejected,
    approval_name,
    demo_decision,
    settle,
)
from components.approval.executor import run_approval


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


def test_settle() -> None:
    approved = Decision("approved", "alice", "ok", "t")
    assert settle("x", approved, 5) is approved
    with pytest.raises(ApprovalRejected, match="rejected by bob: bias in age band"):
        settle("x", Decision("rejected", "bob", "bias in age band", "t"), 5)
    with pytest.raises(ApprovalExpired, match="no decision within 5 s"):
        settle("x", None, 5)


def _record_upstream(tmp_path: Path, metadata_uri: str, run: RunInfo) -> dict[str, Any]:
    """Approval stage arguments, with its inputs recorded as outputs of completed stages."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.pt").write_bytes(b"weights")
    evaluation, integration = tmp_path / "evaluation.json", tmp_path / "integration.json"
    evaluation.write_text("{}")
    integration.write_text("{}")
    store = LineageStore.connect(metadata_uri)
    for type_name, path in (
        (lineage.MODEL, model),
        (lineage.EVALUATION_REPORT, evaluation),
        (lineage.INTEGRATION_TEST_REPORT, integration),
    ):
        store.record_execution(
            run=run,
            stage="upstream",
            inputs=[],
            outputs=[ArtifactRecord(type_name, str(path), sha256_path(path), path.name)],
            succeeded=True,
            properties={},
        )
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
        "approver_group": "approvers",
        "demo_approver": "dana",
        "timeout_s": 5.0,
        "approval_path": tmp_path / "approval.json",
        "approval_uri": str(tmp_path / "approval.json"),
    }


@pytest.mark.parametrize("environment", ["development", "production"])
def test_demo_approval_is_refused_when_the_run_targets_production(
    tmp_path: Path, sqlite_uri: str, environment: str
) -> None:
    """The environment comes from the run context the first stage recorded, not from the
    approval stage's own arguments, so a later stage cannot relabel the run."""
    run = RunInfo(run_id="run-env", environment=environment)
    arguments = _record_upstream(tmp_path, sqlite_uri, run)
    store = LineageStore.connect(sqlite_uri)
    if environment == "production":
        with pytest.raises(ApprovalError, match="refused for the production environment"):
            run_approval(run=RunInfo(run_id="run-env"), **arguments)
        [execution] = [e for e in store.executions_of_run("run-env") if e.stage == "approval"]
        assert execution.state == "FAILED"
    else:
        properties = run_approval(run=RunInfo(run_id="run-env"), **arguments)
        assert (properties["kind"], properties["approver"]) == ("demo", "demo:dana")
