"""Approval rules: stable request names, demo decisions never for production."""

from __future__ import annotations

import pytest

from aiact.approval import ApprovalError, Decision
from components.approval.core import (
    ApprovalExpired,
    ApprovalRejected,
    approval_name,
    demo_decision,
    settle,
)


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
