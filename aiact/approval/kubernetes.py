"""Kubernetes approval backend: one `ModelApproval` (aiact.eu/v1) per request.

The pipeline creates the resource and watches it; a human records the decision in its status
subresource (`aiact approve`, `kubectl aiact approve`). The CRD makes the decision final and the
ValidatingAdmissionPolicy ties it to the requesting user (manifests/cluster).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from aiact.approval import ApprovalError, ApprovalRequest, Decision
from aiact.lineage import version_of
from aiact.observability import log_event

GROUP = "aiact.eu"
VERSION = "v1"
PLURAL = "modelapprovals"
KIND = "ModelApproval"
# One watch request lasts at most this long; the server ends it and the watch resumes.
WATCH_WINDOW_S = 300
# Client-side read timeout beyond the server's watch window (a silent, dead connection).
READ_MARGIN_S = 10.0
# Pause before reconnecting after a broken connection, doubling while the API server stays
# unreachable, so that it is not hammered.
RECONNECT_DELAY_S = 0.2
RECONNECT_MAX_S = 10.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
STAGE = "approval"


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


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
            "environment": request.environment,
            "expiry": request.expires_at,
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
    )


def decision_of(resource: dict[str, Any]) -> Decision | None:
    """The decision recorded in a ModelApproval's status, if any."""
    stored = (resource.get("status") or {}).get("decision")
    if not stored:
        return None
    return Decision(
        decision=stored["verdict"],
        approver=stored["approver"],
        reason=stored.get("reason", ""),
        decided_at=stored["time"],
        kind=stored.get("kind", "human"),
    )


def decision_status(decision: Decision) -> dict[str, Any]:
    """The status.decision block for a decision."""
    return {
        "verdict": decision.decision,
        "approver": decision.approver,
        "reason": decision.reason,
        "time": decision.decided_at,
        "kind": decision.kind,
    }


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


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
            raise ApprovalError(f"reading ModelApproval {name!r}: {_api_message(exc)}") from exc
        return found

    def ensure_request(self, request: ApprovalRequest) -> ApprovalRequest:
        """Create the ModelApproval, or return the existing one of that name (409)."""
        try:
            self.api.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, to_resource(request)
            )
        except ApiException as exc:
            if exc.status != 409:
                raise ApprovalError(
                    f"creating ModelApproval {request.name!r}: {_api_message(exc)}"
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
            raise ApprovalError(f"cannot tell who you are: {_api_message(exc)}") from exc
        username: str = review.status.user_info.username
        return username

    def decide(self, name: str, decision: Decision) -> None:
        """Write the decision to the status subresource, once, before expiry."""
        resource = self._get(name)
        taken = decision_of(resource)
        if taken is not None:
            raise ApprovalError(
                f"approval {name!r} is already {taken.decision} by {taken.approver}: "
                "decisions are final"
            )
        expiry = request_of(resource).expires_at
        latest = max(_parse_time(decision.decided_at), datetime.now(UTC))
        if latest >= _parse_time(expiry):
            raise ApprovalError(
                f"approval {name!r} expired at {expiry}: it can no longer be decided"
            )
        patch = {
            # Optimistic concurrency: refused (409) when someone decided in between.
            "metadata": {"resourceVersion": resource["metadata"]["resourceVersion"]},
            "status": {"decision": decision_status(decision)},
        }
        try:
            self.api.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, name, patch
            )
        except ApiException as exc:
            raise ApprovalError(
                f"the cluster refused the decision on {name!r} ({exc.status}): {_api_message(exc)}"
            ) from exc
        log_event(
            STAGE,
            "decision_written",
            approval=name,
            verdict=decision.decision,
            approver=decision.approver,
        )

    def decision(self, name: str) -> Decision | None:
        """The decision on a request, if taken."""
        return decision_of(self._get(name))

    def _list(self, field_selector: str = "") -> dict[str, Any]:
        try:
            listed: dict[str, Any] = self.api.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, field_selector=field_selector
            )
        except ApiException as exc:
            raise ApprovalError(f"listing ModelApprovals: {_api_message(exc)}") from exc
        return listed

    def wait(self, name: str, timeout_s: float) -> Decision | None:
        """Watch the ModelApproval until decided; None once the timeout or spec.expiry passes.

        Resumes from the last seen resourceVersion after a dropped connection (with a backoff
        while the API server is unreachable) and re-lists when the server answers 410 Gone.
        """
        expiry = _parse_time(self.request(name).expires_at)
        until_expiry = (expiry - datetime.now(UTC)).total_seconds()
        deadline = time.monotonic() + max(0.0, min(timeout_s, until_expiry))
        resource_version: str | None = None
        failures = 0
        while True:
            watcher = watch.Watch()
            try:
                if resource_version is None:
                    listed = self._list(field_selector=f"metadata.name={name}")
                    for item in listed.get("items", []):
                        if item["metadata"]["name"] == name and (found := decision_of(item)):
                            return found
                    resource_version = listed["metadata"]["resourceVersion"]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    final = self.decision(name)  # authoritative read at the deadline
                    if final is None:
                        log_event(STAGE, "approval_expired", approval=name, expiry=str(expiry))
                    return final
                window = max(1, min(WATCH_WINDOW_S, int(remaining + 0.999)))
                for event in watcher.stream(
                    self.api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    field_selector=f"metadata.name={name}",
                    resource_version=resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=window,
                    _request_timeout=(READ_MARGIN_S, window + READ_MARGIN_S),
                ):
                    failures = 0
                    obj = event["raw_object"]
                    resource_version = obj["metadata"].get("resourceVersion", resource_version)
                    if event["type"] == "BOOKMARK" or obj["metadata"].get("name") != name:
                        continue
                    if event["type"] == "DELETED":
                        raise ApprovalError(f"ModelApproval {name!r} was deleted while awaited")
                    if found := decision_of(obj):
                        return found
                    if time.monotonic() >= deadline:
                        break
            except ApiException as exc:
                if exc.status != 410:
                    raise ApprovalError(f"watching ModelApproval {name!r}: {exc.reason}") from exc
                log_event(STAGE, "watch_expired_relist", approval=name, since=resource_version)
                resource_version = None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise ApprovalError(
                        f"lost the Kubernetes API while awaiting ModelApproval {name!r}: {exc}"
                    ) from exc
                failures += 1
                delay = min(RECONNECT_MAX_S, RECONNECT_DELAY_S * 2 ** (failures - 1))
                log_event(
                    STAGE,
                    "watch_reconnect",
                    approval=name,
                    since=resource_version,
                    delay_s=delay,
                    error=str(exc),
                )
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            finally:
                watcher.stop()

    def pending(self) -> list[ApprovalRequest]:
        """Undecided, unexpired requests, by name."""
        now = datetime.now(UTC)
        return sorted(
            (
                request_of(item)
                for item in self._list().get("items", [])
                if decision_of(item) is None and _parse_time(item["spec"]["expiry"]) > now
            ),
            key=lambda r: r.name,
        )


def backend_for_namespace(namespace: str) -> KubernetesApprovalBackend:
    """A backend for `namespace` (empty: the pod's or the kubeconfig context's namespace),
    authenticated in-cluster when running in a pod, else from the kubeconfig ($KUBECONFIG)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
        default_namespace = (
            SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
            if SERVICE_ACCOUNT_NAMESPACE.is_file()
            else "default"
        )
    except config.ConfigException:
        kubeconfig = os.environ.get("KUBECONFIG") or None
        try:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        except (config.ConfigException, OSError) as exc:
            raise ApprovalError(
                f"no Kubernetes credentials: not in a pod and no usable kubeconfig ({exc})"
            ) from exc
        default_namespace = active.get("context", {}).get("namespace", "default")
    return KubernetesApprovalBackend(
        namespace or default_namespace, client.ApiClient(configuration)
    )
