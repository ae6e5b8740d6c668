"""Human approval (AI Act Art. 14): the request a pipeline raises and the decisions humans take.

A request settles by N-of-M: `required_approvals` distinct approvers approving settles it as
approved, any rejection settles it as rejected (`tally`). Nothing on a cluster tells a task who
started its run, so `requested_by` is a claim, not an identity: the four-eyes guarantee comes
from N distinct humans, each deciding under their own identity, not from excluding the requester
alone.

Backends share one interface so that `aiact approve` and the approval stage work the same
against the local file store (`aiact run-local`) and, on a cluster, a Kubernetes resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

APPROVED = "approved"
REJECTED = "rejected"
PENDING = "pending"
HUMAN = "human"
DEMO = "demo"
# Upper bound of required_approvals (the CRD's maximum; it bounds the cost of its CEL rules).
MAX_REQUIRED_APPROVALS = 10
SYSTEM_PREFIX = "system:"


class ApprovalError(RuntimeError):
    """An approval cannot be requested or decided as asked."""


def parse_time(value: str) -> datetime:
    """An ISO 8601 / RFC 3339 time; a time without an offset is taken as UTC.

    Raises:
        ApprovalError: when `value` is not such a time.
    """
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApprovalError(f"{value!r} is not an ISO 8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ApprovalRequest:
    """What the approvers are asked to authorise, with the evidence to review."""

    name: str
    model_name: str
    model_sha256: str
    evaluation_report_uri: str
    evaluation_report_sha256: str
    integration_report_uri: str
    integration_report_sha256: str
    pipeline_run_id: str
    requested_by: str
    approver_group: str
    environment: str
    expires_at: str
    required_approvals: int = 1
    # Findings every approving decision must acknowledge explicitly (e.g. a fairness check
    # with too few members of a group to conclude, insufficient_data[age_band]).
    acknowledgements_required: tuple[str, ...] = ()
    # The gate policy the run was judged by, and where it is stricter than the platform floor.
    policy_sha256: str = ""
    policy_vs_floor: tuple[str, ...] = ()
    # The review page the approvers read (aiact.review_page), rendered before the request was
    # raised: where it is stored and its content SHA-256 (immutable with the rest).
    review_page_uri: str = ""
    review_page_sha256: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "acknowledgements_required", tuple(self.acknowledgements_required))
        object.__setattr__(self, "policy_vs_floor", tuple(self.policy_vs_floor))
        required = self.required_approvals
        if isinstance(required, bool) or not isinstance(required, int):
            raise ApprovalError(f"required_approvals must be an integer, got {required!r}")
        if not 1 <= required <= MAX_REQUIRED_APPROVALS:
            raise ApprovalError(
                f"required_approvals must be 1..{MAX_REQUIRED_APPROVALS}, got {required}"
            )


@dataclass(frozen=True)
class Decision:
    """One approver's verdict on a request; final once recorded."""

    decision: str
    approver: str
    reason: str
    decided_at: str
    kind: str = HUMAN
    # The request's acknowledgements_required this approver explicitly accepts.
    acknowledged: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "acknowledged", tuple(self.acknowledged))
        if self.decision not in (APPROVED, REJECTED):
            raise ApprovalError(f"decision must be {APPROVED!r} or {REJECTED!r}")
        if not self.approver:
            raise ApprovalError("a decision must name its approver")
        if self.decision == REJECTED and not self.reason.strip():
            raise ApprovalError("a rejection must give a reason")


@dataclass(frozen=True)
class Tally:
    """Where a request stands after its decisions.

    Attributes:
        status: "pending", "approved" or "rejected".
        approvers: Distinct approvers whose approval counts, in the order they decided.
        rejected_by: Who rejected the request ("" unless rejected).
        reason: The rejection's reason; when approved, the counted approvals' reasons.
    """

    status: str
    approvers: tuple[str, ...] = ()
    rejected_by: str = ""
    reason: str = ""

    @property
    def settled(self) -> bool:
        """Whether no further decision can change the outcome."""
        return self.status != PENDING


def tally(request: ApprovalRequest, decisions: Sequence[Decision]) -> Tally:
    """Settle a request by N-of-M.

    Any rejection settles it as rejected; `request.required_approvals` distinct approvers
    approving settles it as approved. A second decision by the same approver counts once (its
    first), and an approval by the request's own `requested_by` never counts.

    Args:
        request: The request decided on.
        decisions: Its decisions, oldest first.

    Returns:
        The outcome so far.
    """
    approvals: dict[str, Decision] = {}
    for decision in decisions:
        if decision.decision == REJECTED:
            return Tally(REJECTED, tuple(approvals), decision.approver, decision.reason)
        if decision.approver != request.requested_by:
            approvals.setdefault(decision.approver, decision)
    approvers = tuple(approvals)[: request.required_approvals]
    if len(approvers) < request.required_approvals:
        return Tally(PENDING, approvers)
    reasons = [approvals[a].reason.strip() for a in approvers if approvals[a].reason.strip()]
    return Tally(APPROVED, approvers, "", "; ".join(reasons))


def missing_acknowledgements(request: ApprovalRequest, decision: Decision) -> list[str]:
    """The request's required acknowledgements an approving decision does not make."""
    if decision.decision != APPROVED:
        return []
    return [a for a in request.acknowledgements_required if a not in decision.acknowledged]


def check_approver_group(group: str) -> None:
    """Refuse an approver group that would admit anyone.

    Raises:
        ApprovalError: when the group is empty or a Kubernetes system group (`system:...`,
            e.g. system:authenticated, which every signed-in user and service account is in).
    """
    if not group.strip():
        raise ApprovalError("an approval needs an approver group: an empty group admits anyone")
    if group.startswith(SYSTEM_PREFIX):
        raise ApprovalError(
            f"approver group {group!r} is a Kubernetes system group that admits any "
            "authenticated user or service account: name a group of human approvers"
        )


def check_decision(
    request: ApprovalRequest,
    decisions: Sequence[Decision],
    decision: Decision,
    now: datetime | None = None,
) -> None:
    """Refuse a decision the request can no longer take (both backends apply this).

    Args:
        request: The request decided on.
        decisions: Its decisions so far.
        decision: The decision to add.
        now: The current time (default: the clock).

    Raises:
        ApprovalError: when the request is settled or has expired, when the approver requested
            it, or when the approver has already decided it.
    """
    name = request.name
    outcome = tally(request, decisions)
    if outcome.status == APPROVED:
        raise ApprovalError(
            f"approval {name!r} is already approved by {', '.join(outcome.approvers)}: "
            "decisions are final"
        )
    if outcome.status == REJECTED:
        raise ApprovalError(
            f"approval {name!r} is already rejected by {outcome.rejected_by}: decisions are final"
        )
    latest = max(parse_time(decision.decided_at), now or datetime.now(UTC))
    if latest >= parse_time(request.expires_at):
        raise ApprovalError(
            f"approval {name!r} expired at {request.expires_at}: it can no longer be decided"
        )
    if decision.approver == request.requested_by:
        raise ApprovalError(
            f"four-eyes: {decision.approver} requested approval {name!r} and cannot decide it"
        )
    missing = missing_acknowledgements(request, decision)
    if missing:
        flags = " ".join(f"--acknowledge '{item}'" for item in missing)
        raise ApprovalError(
            f"approval {name!r} needs every approver to acknowledge {', '.join(missing)} "
            f"(see the evaluation report): approve with {flags}"
        )
    if any(taken.approver == decision.approver for taken in decisions):
        raise ApprovalError(
            f"{decision.approver} has already decided approval {name!r}: each approver decides once"
        )


def is_pending(request: ApprovalRequest, decisions: Sequence[Decision], now: datetime) -> bool:
    """Whether a request still awaits decisions: unsettled and not expired at `now`."""
    return not tally(request, decisions).settled and parse_time(request.expires_at) > now


def to_dict(value: ApprovalRequest | Decision | Tally) -> dict[str, Any]:
    """JSON-ready form."""
    return asdict(value)


class ApprovalBackend(Protocol):
    """Where approval requests live and how a stage waits on them."""

    def ensure_request(self, request: ApprovalRequest) -> ApprovalRequest:
        """Create the request, or return the existing one of that name (idempotent)."""

    def request(self, name: str) -> ApprovalRequest:
        """A stored request; ApprovalError when there is none of that name."""

    def decide(self, name: str, decision: Decision) -> None:
        """Append one decision; ApprovalError when `check_decision` refuses it."""

    def decisions(self, name: str) -> list[Decision]:
        """The decisions recorded on a request, oldest first."""

    def wait(self, name: str, timeout_s: float) -> list[Decision]:
        """Block until `tally` settles the request, or until the timeout or its expiry;
        returns the decisions recorded by then."""

    def pending(self) -> list[ApprovalRequest]:
        """Unsettled, unexpired requests, by name."""


def backend_from_uri(uri: str) -> ApprovalBackend:
    """`local:/path/to/dir` for the file store; `kubernetes://NAMESPACE` for ModelApproval
    resources (in-cluster credentials, else the kubeconfig; no namespace: the current one)."""
    from pathlib import Path

    from aiact.approval.local import LocalApprovalBackend

    if uri.startswith("local:"):
        return LocalApprovalBackend(Path(uri.removeprefix("local:")))
    if uri.startswith("kubernetes://"):
        from aiact.approval.kubernetes import backend_for_namespace

        return backend_for_namespace(uri.removeprefix("kubernetes://").strip("/"))
    raise ApprovalError(
        f"approval backend {uri!r} is not available: use local:/path/to/dir or "
        "kubernetes://NAMESPACE"
    )
