"""Human approval (AI Act Art. 14): the request a pipeline raises and the decision a human takes.

Backends share one interface so that `aiact approve` and the approval stage work the same
against the local file store (`aiact run-local`) and, on a cluster, a Kubernetes resource.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

APPROVED = "approved"
REJECTED = "rejected"


class ApprovalError(RuntimeError):
    """An approval cannot be requested or decided as asked."""


@dataclass(frozen=True)
class ApprovalRequest:
    """What the approver is asked to authorise, with the evidence to review."""

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


@dataclass(frozen=True)
class Decision:
    """A human's verdict on a request; final once recorded."""

    decision: str
    approver: str
    reason: str
    decided_at: str
    kind: str = "human"

    def __post_init__(self) -> None:
        if self.decision not in (APPROVED, REJECTED):
            raise ApprovalError(f"decision must be {APPROVED!r} or {REJECTED!r}")
        if not self.approver:
            raise ApprovalError("a decision must name its approver")
        if self.decision == REJECTED and not self.reason.strip():
            raise ApprovalError("a rejection must give a reason")


def to_dict(value: ApprovalRequest | Decision) -> dict[str, Any]:
    """JSON-ready form."""
    return asdict(value)


class ApprovalBackend(Protocol):
    """Where approval requests live and how a stage waits on them."""

    def ensure_request(self, request: ApprovalRequest) -> ApprovalRequest:
        """Create the request, or return the existing one of that name (idempotent)."""

    def decide(self, name: str, decision: Decision) -> None:
        """Record a decision; refused when the request is already decided."""

    def decision(self, name: str) -> Decision | None:
        """The decision on a request, if taken."""

    def wait(self, name: str, timeout_s: float) -> Decision | None:
        """Block until decided or until the timeout; None on timeout."""

    def pending(self) -> list[ApprovalRequest]:
        """Requests still awaiting a decision."""


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
