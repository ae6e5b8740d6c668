"""Pre-deployment approval rules: request naming, the demo decision's limits, and what each
outcome means for the pipeline."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from aiact.approval import APPROVED, ApprovalError, Decision

PRODUCTION = "production"


class ApprovalRejected(RuntimeError):
    """A human rejected deployment."""


class ApprovalExpired(RuntimeError):
    """Nobody decided before the request expired."""


def utc_now() -> str:
    """Current time, ISO 8601 in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def approval_name(model_name: str, model_sha256: str, run_id: str) -> str:
    """A stable, DNS-1123 name: the same model in the same run always maps to one request,
    so a retried stage finds its existing request instead of raising a second one."""
    base = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")[:30] or "model"
    run = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{base}-{model_sha256[:12]}-{run}"


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
        kind="demo",
    )


def settle(name: str, decision: Decision | None, timeout_s: float) -> Decision:
    """The approved decision; raises when rejected or expired."""
    if decision is None:
        raise ApprovalExpired(f"approval {name!r} expired: no decision within {timeout_s:g} s")
    if decision.decision != APPROVED:
        raise ApprovalRejected(
            f"approval {name!r} rejected by {decision.approver}: {decision.reason}"
        )
    return decision
