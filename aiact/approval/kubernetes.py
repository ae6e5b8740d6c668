"""Kubernetes approval backend: one `ModelApproval` (aiact.eu/v1) per request.

The pipeline creates the resource and watches it; each approver appends one decision to
`status.decisions` through the status subresource (`aiact approve`, `kubectl aiact approve`)
until `spec.requiredApprovals` distinct approvers have approved or one has rejected. The CRD
keeps decisions append-only and closes the request once settled; the ValidatingAdmissionPolicies
(manifests/cluster) bind every decision to the user who sends it, refuse service accounts, system
users and the requester, and enforce the cluster's minimum number of approvers on creation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from aiact.approval import (
    APPROVED,
    PENDING,
    REJECTED,
    ApprovalError,
    ApprovalRequest,
    Decision,
    check_approver_group,
    check_decision,
    is_pending,
    parse_time,
    tally,
)
from aiact.kubeclient import (
    WatchReporting,
    api_client_from_environment,
    api_message,
    watch_object,
)
from aiact.lineage import version_of
from aiact.observability import log_event

GROUP = "aiact.eu"
VERSION = "v1"
PLURAL = "modelapprovals"
KIND = "ModelApproval"
# Attempts at appending a decision when another approver's decision lands in between (409).
CONFLICT_ATTEMPTS = 5
# status.phase for each tally status (kubectl's PHASE column).
PHASES = {PENDING: "Pending", APPROVED: "Approved", REJECTED: "Rejected"}
STAGE = "approval"


def to_resource(request: ApprovalRequest) -> dict[str, Any]:
    """The ModelApproval object for a request."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": request.name,
            "labels": {
                "app.kubernetes.io/part-of": "aiact",
                "aiact.eu/environment": request.environment,
            },
        },
        "spec": {
            "model": {
                "name": request.model_name,
                "version": version_of(request.model_sha256),
                "sha256": request.model_sha256,
            },
            "evaluationReport": {
                "uri": request.evaluation_report_uri,
                "sha256": request.evaluation_report_sha256,
            },
            "integrationTestReport": {
                "uri": request.integration_report_uri,
                "sha256": request.integration_report_sha256,
            },
            "pipelineRunId": request.pipeline_run_id,
            "requestedBy": request.requested_by,
            "approverGroup": request.approver_group,
            "requiredApprovals": request.required_approvals,
            "environment": request.environment,
            "expiry": request.expires_at,
            **(
                {"acknowledgementsRequired": list(request.acknowledgements_required)}
                if request.acknowledgements_required
                else {}
            ),
            **(
                {
                    "gatePolicy": {
                        "sha256": request.policy_sha256,
                        "stricterThanFloor": list(request.policy_vs_floor),
                    }
                }
                if request.policy_sha256
                else {}
            ),
            **(
                {
                    "reviewPage": {
                        "uri": request.review_page_uri,
                        "sha256": request.review_page_sha256,
                    }
                }
                if request.review_page_sha256
                else {}
            ),
        },
    }


def request_of(resource: dict[str, Any]) -> ApprovalRequest:
    """The request a ModelApproval object carries."""
    spec = resource["spec"]
    return ApprovalRequest(
        name=resource["metadata"]["name"],
        model_name=spec["model"]["name"],
        model_sha256=spec["model"]["sha256"],
        evaluation_report_uri=spec["evaluationReport"]["uri"],
        evaluation_report_sha256=spec["evaluationReport"]["sha256"],
        integration_report_uri=spec["integrationTestReport"]["uri"],
        integration_report_sha256=spec["integrationTestReport"]["sha256"],
        pipeline_run_id=spec["pipelineRunId"],
        requested_by=spec["requestedBy"],
        approver_group=spec.get("approverGroup", ""),
        environment=spec.get("environment", ""),
        expires_at=spec["expiry"],
        required_approvals=int(spec.get("requiredApprovals", 1)),
        acknowledgements_required=tuple(spec.get("acknowledgementsRequired") or ()),
        policy_sha256=(spec.get("gatePolicy") or {}).get("sha256", ""),
        policy_vs_floor=tuple((spec.get("gatePolicy") or {}).get("stricterThanFloor") or ()),
        review_page_uri=(spec.get("reviewPage") or {}).get("uri", ""),
        review_page_sha256=(spec.get("reviewPage") or {}).get("sha256", ""),
    )


def decisions_of(resource: dict[str, Any]) -> list[Decision]:
    """The decisions recorded in a ModelApproval's status, oldest first."""
    return [
        Decision(
            decision=stored["verdict"],
            approver=stored["approver"],
            reason=stored.get("reason", ""),
            decided_at=stored["time"],
            kind=stored.get("kind", "human"),
            acknowledged=tuple(stored.get("acknowledged") or ()),
        )
        for stored in (resource.get("status") or {}).get("decisions") or []
    ]


def decision_entry(decision: Decision) -> dict[str, Any]:
    """One entry of status.decisions."""
    return {
        "verdict": decision.decision,
        "approver": decision.approver,
        "reason": decision.reason,
        "time": decision.decided_at,
        "kind": decision.kind,
        **({"acknowledged": list(decision.acknowledged)} if decision.acknowledged else {}),
    }


def status_of(request: ApprovalRequest, decisions: list[Decision]) -> dict[str, Any]:
    """The status block for a request's decisions, with the summary the CRD checks against
    them: `phase` (Pending, Approved, Rejected) and `approvals` (approvals that count)."""
    outcome = tally(request, decisions)
    return {
        "decisions": [decision_entry(d) for d in decisions],
        "phase": PHASES[outcome.status],
        "approvals": len(outcome.approvers),
    }


class KubernetesApprovalBackend:
    """Approvals as ModelApproval resources in one namespace."""

    def __init__(self, namespace: str, api_client: client.ApiClient) -> None:
        self.namespace = namespace
        self.api_client = api_client
        self.api = client.CustomObjectsApi(api_client)

    def _get(self, name: str) -> dict[str, Any]:
        try:
            found: dict[str, Any] = self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                raise ApprovalError(
                    f"no ModelApproval named {name!r} in namespace {self.namespace!r}"
                ) from exc
            raise ApprovalError(f"reading ModelApproval {name!r}: {api_message(exc)}") from exc
        return found

    def ensure_request(self, request: ApprovalRequest) -> ApprovalRequest:
        """Create the ModelApproval, or return the existing one of that name (409).

        Raises:
            ApprovalError: when the approver group would admit anyone, or the cluster refuses
                the request (e.g. fewer required approvals than its policy's minimum).
        """
        check_approver_group(request.approver_group)
        try:
            self.api.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, to_resource(request)
            )
        except ApiException as exc:
            if exc.status != 409:
                raise ApprovalError(
                    f"creating ModelApproval {request.name!r}: {api_message(exc)}"
                ) from exc
            existing = request_of(self._get(request.name))
            log_event(STAGE, "approval_reused", approval=request.name, namespace=self.namespace)
            return existing
        log_event(STAGE, "approval_created", approval=request.name, namespace=self.namespace)
        return request

    def request(self, name: str) -> ApprovalRequest:
        """A stored request."""
        return request_of(self._get(name))

    def current_user(self) -> str:
        """The Kubernetes username of this client (SelfSubjectReview)."""
        try:
            review = client.AuthenticationV1Api(self.api_client).create_self_subject_review(
                client.V1SelfSubjectReview()
            )
        except ApiException as exc:
            raise ApprovalError(f"cannot tell who you are: {api_message(exc)}") from exc
        username: str = review.status.user_info.username
        return username

    def decide(self, name: str, decision: Decision) -> None:
        """Append one decision to the status subresource.

        The merge patch carries the resourceVersion read, so a decision landing in between is
        never overwritten: the API server answers 409 and the append is retried on a fresh read
        (which may now refuse it, e.g. because that decision settled the request).

        Raises:
            ApprovalError: when `check_decision` or the cluster refuses the decision.
        """
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            resource = self._get(name)
            request, decisions = request_of(resource), decisions_of(resource)
            check_decision(request, decisions, decision)
            patch = {
                "metadata": {"resourceVersion": resource["metadata"]["resourceVersion"]},
                "status": status_of(request, [*decisions, decision]),
            }
            try:
                self.api.patch_namespaced_custom_object_status(
                    GROUP, VERSION, self.namespace, PLURAL, name, patch
                )
            except ApiException as exc:
                if exc.status == 409 and attempt < CONFLICT_ATTEMPTS:
                    log_event(STAGE, "decision_conflict_retry", approval=name, attempt=attempt)
                    continue
                raise ApprovalError(
                    f"the cluster refused the decision on {name!r} ({exc.status}): "
                    f"{api_message(exc)}"
                ) from exc
            log_event(
                STAGE,
                "decision_written",
                approval=name,
                verdict=decision.decision,
                approver=decision.approver,
                decisions=len(decisions) + 1,
                required_approvals=request.required_approvals,
            )
            return

    def decisions(self, name: str) -> list[Decision]:
        """The decisions on a request, oldest first."""
        return decisions_of(self._get(name))

    def _list(self, field_selector: str = "") -> dict[str, Any]:
        try:
            listed: dict[str, Any] = self.api.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, field_selector=field_selector
            )
        except ApiException as exc:
            raise ApprovalError(f"listing ModelApprovals: {api_message(exc)}") from exc
        return listed

    def wait(self, name: str, timeout_s: float) -> list[Decision]:
        """Watch the ModelApproval until its decisions settle it (`tally`); once the timeout
        or spec.expiry passes, return the decisions recorded by then.

        Resumes from the last seen resourceVersion after a dropped connection (with a backoff
        while the API server is unreachable) and re-lists when the server answers 410 Gone.

        Raises:
            ApprovalError: when the resource is deleted, or the API stays unreachable until the
                deadline.
        """
        request = self.request(name)
        expiry = parse_time(request.expires_at)
        until_expiry = (expiry - datetime.now(UTC)).total_seconds()

        def settle(obj: dict[str, Any]) -> list[Decision] | None:
            found = decisions_of(obj)
            return found if tally(request, found).settled else None

        def at_deadline() -> list[Decision]:
            final = self.decisions(name)  # authoritative read at the deadline
            if not tally(request, final).settled:
                log_event(
                    STAGE,
                    "approval_expired",
                    approval=name,
                    expiry=str(expiry),
                    decisions=len(final),
                    required_approvals=request.required_approvals,
                )
            return final

        return watch_object(
            self.api,
            (GROUP, VERSION, PLURAL),
            self.namespace,
            name,
            list_objects=lambda: self._list(field_selector=f"metadata.name={name}"),
            settle=settle,
            at_deadline=at_deadline,
            timeout_s=min(timeout_s, until_expiry),
            reporting=WatchReporting(
                stage=STAGE,
                what=f"{KIND} {name!r}",
                error=ApprovalError,
                log_key="approval",
                refusal=lambda exc: str(exc.reason),
            ),
        )

    def pending(self) -> list[ApprovalRequest]:
        """Unsettled, unexpired requests, by name."""
        now = datetime.now(UTC)
        return sorted(
            (
                request
                for item in self._list().get("items", [])
                if is_pending(request := request_of(item), decisions_of(item), now)
            ),
            key=lambda r: r.name,
        )


def backend_for_namespace(namespace: str) -> KubernetesApprovalBackend:
    """A backend for `namespace` (empty: the pod's or the kubeconfig context's namespace),
    authenticated in-cluster when running in a pod, else from the kubeconfig ($KUBECONFIG)."""
    api_client, default_namespace = api_client_from_environment(ApprovalError)
    return KubernetesApprovalBackend(namespace or default_namespace, api_client)
