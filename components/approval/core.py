"""Pre-deployment approval rules: request naming, how many approvers a request needs, the demo
decision's limits, and what each outcome means for the pipeline."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from aiact.approval import (
    APPROVED,
    DEMO,
    HUMAN,
    MAX_REQUIRED_APPROVALS,
    REJECTED,
    ApprovalError,
    Decision,
    Tally,
    parse_time,
)

PRODUCTION = "production"
# N of N-of-M when the platform configures nothing: one approver outside production, and never
# fewer than two for production (the cluster's admission policy enforces its own minimum too).
DEFAULT_REQUIRED_APPROVALS = 1
PRODUCTION_MIN_REQUIRED_APPROVALS = 2


class ApprovalRejected(RuntimeError):
    """A human rejected deployment."""


class ApprovalExpired(RuntimeError):
    """Not enough approvers decided before the request expired."""


def utc_now() -> str:
    """Current time, ISO 8601 in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def approval_name(model_name: str, model_sha256: str, run_id: str) -> str:
    """A stable, DNS-1123 name: the same model in the same run always maps to one request,
    so a retried stage finds its existing request instead of raising a second one."""
    base = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")[:30] or "model"
    run = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{base}-{model_sha256[:12]}-{run}"


def required_approvals(environment: str, configured: int = 0) -> int:
    """How many distinct approvers must approve (the N of N-of-M).

    Args:
        environment: The run's environment; production needs at least
            PRODUCTION_MIN_REQUIRED_APPROVALS.
        configured: The platform's configured number; 0 for the default.

    Returns:
        The configured number (default DEFAULT_REQUIRED_APPROVALS), raised to the production
        minimum for a production run.

    Raises:
        ApprovalError: when `configured` is negative or above MAX_REQUIRED_APPROVALS.
    """
    if not 0 <= configured <= MAX_REQUIRED_APPROVALS:
        raise ApprovalError(
            f"required approvals must be 1..{MAX_REQUIRED_APPROVALS}, got {configured}"
        )
    required = configured or DEFAULT_REQUIRED_APPROVALS
    if environment == PRODUCTION:
        return max(required, PRODUCTION_MIN_REQUIRED_APPROVALS)
    return required


def demo_decision(approver: str, environment: str) -> Decision:
    """An unattended approval for demonstrations, stored as kind 'demo'; never for production."""
    if environment == PRODUCTION:
        raise ApprovalError(
            "a demo approval is refused for the production environment: a human must decide"
        )
    return Decision(
        decision=APPROVED,
        approver=f"demo:{approver}",
        reason="demo approval recorded by aiact run-local --demo-approver (not a human review)",
        decided_at=utc_now(),
        kind=DEMO,
    )


def summary(outcome: Tally, decisions: Sequence[Decision]) -> Decision | None:
    """The settled outcome as one decision record (the approval artefact's `decision`, which
    deployment checks, and its MLMD properties); None while pending.

    An approval names every counted approver (comma-separated), is dated by the approval that
    settled it and is of kind 'demo' when any counted approval was; a rejection is the
    rejecting decision itself.
    """
    if outcome.status == REJECTED:
        return next(
            d for d in decisions if d.decision == REJECTED and d.approver == outcome.rejected_by
        )
    if outcome.status != APPROVED:
        return None
    counted: dict[str, Decision] = {}
    for decision in decisions:
        if decision.decision == APPROVED and decision.approver in outcome.approvers:
            counted.setdefault(decision.approver, decision)
    return Decision(
        decision=APPROVED,
        approver=", ".join(outcome.approvers),
        reason=outcome.reason,
        decided_at=max(counted.values(), key=lambda d: parse_time(d.decided_at)).decided_at,
        kind=DEMO if any(d.kind == DEMO for d in counted.values()) else HUMAN,
    )


def settle(name: str, outcome: Tally, required: int, timeout_s: float) -> None:
    """Return when approved; raise when rejected or expired.

    Raises:
        ApprovalRejected: naming who rejected and why.
        ApprovalExpired: with the approvals gathered before the expiry.
    """
    if outcome.status == REJECTED:
        raise ApprovalRejected(
            f"approval {name!r} rejected by {outcome.rejected_by}: {outcome.reason}"
        )
    if outcome.status == APPROVED:
        return
    if not outcome.approvers:
        raise ApprovalExpired(f"approval {name!r} expired: no decision within {timeout_s:g} s")
    raise ApprovalExpired(
        f"approval {name!r} expired: {len(outcome.approvers)} of {required} required approvals "
        f"({', '.join(outcome.approvers)}) within {timeout_s:g} s"
    )
