"""Local approval backend and the shared N-of-M rules: idempotent requests, distinct approvers,
settled requests closed, no decision by the requester or after expiry, waiting and pending."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiact.approval import (
    APPROVED,
    PENDING,
    REJECTED,
    ApprovalBackend,
    ApprovalError,
    ApprovalRequest,
    Decision,
    Tally,
    backend_from_uri,
    tally,
)

NAME = "credit-scoring-abc"
EARLY = "2026-01-01T00:00:00+00:00"


def _request(
    name: str = NAME,
    required: int = 1,
    expires_at: str = "2099-01-01T00:00:00+00:00",
    group: str = "approvers",
) -> ApprovalRequest:
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
        approver_group=group,
        environment="development",
        expires_at=expires_at,
        required_approvals=required,
    )


def _decision(
    verdict: str = APPROVED, approver: str = "alice", reason: str = "reviewed report"
) -> Decision:
    return Decision(verdict, approver, reason, EARLY)


def _backend(tmp_path: Path, *requests: ApprovalRequest) -> ApprovalBackend:
    backend = backend_from_uri(f"local:{tmp_path}")
    for request in requests:
        backend.ensure_request(request)
    return backend


# ----------------------------------------------------------------------------- tally


def test_tally_counts_distinct_approvers() -> None:
    request = _request(required=2)
    alice, bob = _decision(approver="alice"), _decision(approver="bob", reason="tests ok")
    assert tally(request, []) == Tally(PENDING)
    assert tally(request, [alice]) == Tally(PENDING, ("alice",))
    assert tally(request, [alice, alice]) == Tally(PENDING, ("alice",)), "a duplicate counted"
    assert tally(request, [alice, alice, bob]) == Tally(
        APPROVED, ("alice", "bob"), "", "reviewed report; tests ok"
    )
    assert tally(_request(required=1), [alice]).status == APPROVED


def test_tally_any_rejection_settles_and_the_requester_never_counts() -> None:
    request = _request(required=2)
    no = _decision(REJECTED, "carol", "bias in age band")
    assert tally(request, [_decision(), no]) == Tally(
        REJECTED, ("alice",), "carol", "bias in age band"
    )
    assert tally(request, [_decision(), _decision(approver="bob"), no]).status == REJECTED
    assert tally(request, [_decision(approver="ci"), _decision()]) == Tally(PENDING, ("alice",))


def test_request_validation() -> None:
    with pytest.raises(ApprovalError, match=r"required_approvals must be 1\.\.10, got 0"):
        _request(required=0)
    with pytest.raises(ApprovalError, match="must be an integer"):
        _request(required=True)


@pytest.mark.parametrize(
    ("group", "message"),
    [("", "empty group admits anyone"), ("system:authenticated", "system group")],
)
def test_approver_group_must_name_real_approvers(tmp_path: Path, group: str, message: str) -> None:
    with pytest.raises(ApprovalError, match=message):
        _backend(tmp_path, _request(group=group))
    assert _backend(tmp_path).pending() == []


# ----------------------------------------------------------------------------- the backend


def test_request_is_idempotent(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    first = backend.ensure_request(_request(required=2))
    again = backend.ensure_request(_request(required=3))
    assert first == again and again.required_approvals == 2
    assert [r.name for r in backend.pending()] == [NAME]
    assert backend.request(NAME) == first


def test_n_of_m_settles_with_distinct_approvers(tmp_path: Path) -> None:
    backend = _backend(tmp_path, _request(required=2))
    backend.decide(NAME, _decision(approver="alice"))
    with pytest.raises(ApprovalError, match=f"alice has already decided approval '{NAME}'"):
        backend.decide(NAME, _decision(approver="alice"))
    with pytest.raises(ApprovalError, match="alice has already decided"):
        backend.decide(NAME, _decision(REJECTED, "alice", "changed my mind"))
    assert [r.name for r in backend.pending()] == [NAME], "one of two approvals settled it"
    backend.decide(NAME, _decision(approver="bob"))
    assert [d.approver for d in backend.decisions(NAME)] == ["alice", "bob"]
    assert backend.pending() == []
    with pytest.raises(ApprovalError, match="already approved by alice, bob: decisions are final"):
        backend.decide(NAME, _decision(REJECTED, "carol", "too late to object"))


def test_a_rejection_settles_and_closes_the_request(tmp_path: Path) -> None:
    backend = _backend(tmp_path, _request(required=3))
    backend.decide(NAME, _decision(approver="alice"))
    backend.decide(NAME, _decision(REJECTED, "bob", "equalized odds too wide"))
    assert tally(backend.request(NAME), backend.decisions(NAME)).status == REJECTED
    with pytest.raises(ApprovalError, match="already rejected by bob: decisions are final"):
        backend.decide(NAME, _decision(approver="carol"))
    assert backend.pending() == []


def test_the_requester_cannot_decide(tmp_path: Path) -> None:
    backend = _backend(tmp_path, _request())
    with pytest.raises(ApprovalError, match=f"four-eyes: ci requested approval '{NAME}'"):
        backend.decide(NAME, _decision(approver="ci"))
    assert backend.decisions(NAME) == []


def test_no_decision_after_expiry_and_expired_requests_are_not_pending(tmp_path: Path) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)  # 1 to 2 s
    backend = _backend(tmp_path, _request(expires_at=soon.isoformat()), _request("later"))
    assert [r.name for r in backend.pending()] == [NAME, "later"]
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    assert [r.name for r in backend.pending()] == ["later"]
    with pytest.raises(ApprovalError, match=r"expired at .*: it can no longer be decided"):
        backend.decide(NAME, _decision())
    late = Decision(APPROVED, "alice", "dated after the expiry", "2099-06-01T00:00:00+00:00")
    with pytest.raises(ApprovalError, match="expired at"):
        backend.decide("later", late)
    assert backend.decisions(NAME) == []


def test_rejection_requires_reason() -> None:
    with pytest.raises(ApprovalError, match="rejection must give a reason"):
        _decision(REJECTED, reason="  ")
    with pytest.raises(ApprovalError, match="must be 'approved' or 'rejected'"):
        Decision("maybe", "alice", "", "now")


def test_wait_returns_once_settled_by_decisions_from_other_threads(tmp_path: Path) -> None:
    backend = _backend(tmp_path, _request(required=2))
    threading.Timer(0.2, backend.decide, (NAME, _decision(approver="alice"))).start()
    threading.Timer(0.6, backend.decide, (NAME, _decision(approver="bob"))).start()
    started = time.monotonic()
    decisions = backend.wait(NAME, timeout_s=10)
    assert [d.approver for d in decisions] == ["alice", "bob"]
    assert 0.5 < time.monotonic() - started < 5, "returned before the second approval"


def test_wait_times_out_with_the_decisions_so_far(tmp_path: Path) -> None:
    backend = _backend(tmp_path, _request(required=2))
    backend.decide(NAME, _decision())
    assert backend.wait(NAME, timeout_s=0.3) == [_decision()]


def test_wait_ends_at_the_expiry(tmp_path: Path) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0).isoformat()
    backend = _backend(tmp_path, _request(expires_at=soon))
    started = time.monotonic()
    assert backend.wait(NAME, timeout_s=30) == []
    assert time.monotonic() - started < 3


def test_a_file_from_before_n_of_m_still_reads(tmp_path: Path) -> None:
    backend = _backend(tmp_path, _request())
    path = tmp_path / f"{NAME}.json"
    document = json.loads(path.read_text())
    del document["decisions"], document["request"]["required_approvals"]
    document["decision"] = {**_decision().__dict__}
    path.write_text(json.dumps(document))
    assert backend.decisions(NAME) == [_decision()]
    assert backend.request(NAME).required_approvals == 1 and backend.pending() == []


def test_unknown_request_and_backend(tmp_path: Path) -> None:
    with pytest.raises(ApprovalError, match="no approval request named 'nope'"):
        _backend(tmp_path).decide("nope", _decision())
    with pytest.raises(ApprovalError, match="not available"):
        backend_from_uri("kubernetes")


def test_an_approval_must_make_the_requested_acknowledgements(tmp_path: Path) -> None:
    """Both backends share check_decision: an approval that skips a finding the request says
    must be acknowledged is refused (deployment re-checks the records, test_deployment)."""
    from dataclasses import replace

    from aiact.approval.local import LocalApprovalBackend

    backend = LocalApprovalBackend(tmp_path)
    request = replace(_request("ack"), acknowledgements_required=("insufficient_data[age_band]",))
    backend.ensure_request(request)
    when = EARLY
    with pytest.raises(ApprovalError, match=r"--acknowledge 'insufficient_data\[age_band\]'"):
        backend.decide("ack", Decision(APPROVED, "alice", "ok", when))
    backend.decide(
        "ack",
        Decision(APPROVED, "alice", "ok", when, acknowledged=("insufficient_data[age_band]",)),
    )
    assert tally(backend.request("ack"), backend.decisions("ack")).status == "approved"
