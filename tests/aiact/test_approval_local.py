"""Local approval backend: idempotent requests, final decisions, waiting and expiry."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from aiact.approval import (
    APPROVED,
    REJECTED,
    ApprovalError,
    ApprovalRequest,
    Decision,
    backend_from_uri,
)


def _request(name: str = "credit-scoring-abc") -> ApprovalRequest:
    return ApprovalRequest(
        name=name,
        model_name="credit-scoring",
        model_sha256="a" * 64,
        evaluation_report_uri="/r/eval",
        evaluation_report_sha256="b" * 64,
        integration_report_uri="/r/int",
        integration_report_sha256="c" * 64,
        pipeline_run_id="run-1",
        requested_by="ci",
        approver_group="approvers",
        environment="development",
        expires_at="2030-01-01T00:00:00+00:00",
    )


def _decision(verdict: str = APPROVED, reason: str = "reviewed report") -> Decision:
    return Decision(verdict, "alice", reason, "2026-01-01T00:00:00+00:00")


def test_request_is_idempotent(tmp_path: Path) -> None:
    backend = backend_from_uri(f"local:{tmp_path}")
    first = backend.ensure_request(_request())
    again = backend.ensure_request(_request())
    assert first == again
    assert [r.name for r in backend.pending()] == ["credit-scoring-abc"]


def test_decision_is_final(tmp_path: Path) -> None:
    backend = backend_from_uri(f"local:{tmp_path}")
    backend.ensure_request(_request())
    backend.decide("credit-scoring-abc", _decision())
    with pytest.raises(ApprovalError, match="already approved by alice"):
        backend.decide("credit-scoring-abc", _decision(REJECTED, "changed my mind"))
    assert backend.decision("credit-scoring-abc") == _decision()
    assert backend.pending() == []


def test_rejection_requires_reason() -> None:
    with pytest.raises(ApprovalError, match="rejection must give a reason"):
        _decision(REJECTED, "  ")
    with pytest.raises(ApprovalError, match="must be 'approved' or 'rejected'"):
        Decision("maybe", "alice", "", "now")


def test_wait_returns_when_decided_from_another_thread(tmp_path: Path) -> None:
    backend = backend_from_uri(f"local:{tmp_path}")
    backend.ensure_request(_request())
    timer = threading.Timer(0.3, backend.decide, ("credit-scoring-abc", _decision()))
    timer.start()
    started = time.monotonic()
    decision = backend.wait("credit-scoring-abc", timeout_s=10)
    assert decision is not None and decision.approver == "alice"
    assert time.monotonic() - started < 5


def test_wait_times_out(tmp_path: Path) -> None:
    backend = backend_from_uri(f"local:{tmp_path}")
    backend.ensure_request(_request())
    assert backend.wait("credit-scoring-abc", timeout_s=0.3) is None


def test_unknown_request_and_backend(tmp_path: Path) -> None:
    with pytest.raises(ApprovalError, match="no approval request named 'nope'"):
        backend_from_uri(f"local:{tmp_path}").decide("nope", _decision())
    with pytest.raises(ApprovalError, match="not available"):
        backend_from_uri("kubernetes")
