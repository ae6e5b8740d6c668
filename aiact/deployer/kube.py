"""The Kubernetes side of deployment: the controller's applier (server-side apply of rendered
objects, wait for Ready) and the client the deployment stage and `aiact rollback` use to create
a DeploymentRequest and watch its status.

Every wait is the watch the approval backend uses too (aiact/kubeclient.py): one watch request
lasts at most WATCH_WINDOW_S (`timeout_seconds`) with a client read timeout a little longer
(`_request_timeout`), an overall deadline bounds the whole wait, a dropped connection resumes
from the last resourceVersion with a backoff, and 410 Gone re-lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from aiact import kubeclient
from aiact.deployer import FIELD_MANAGER, FINAL_PHASES, GROUP, PLURAL, VERSION
from aiact.deployer.reconcile import DeploymentFailed
from aiact.deployer.render import PLURALS, ready
from aiact.kubeclient import READ_MARGIN_S, WatchReporting, api_message, watch_object
from aiact.observability import log_event
from components.deployment.core import DeploymentRefused

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
STAGE = "deployer"


def watch_until(
    api: client.CustomObjectsApi,
    coordinates: tuple[str, str, str],
    namespace: str,
    name: str,
    done: Callable[[dict[str, Any]], bool],
    timeout_s: float,
) -> dict[str, Any] | None:
    """Watch one custom object until `done(obj)`; returns it, or the object as it stands at
    the deadline (None when it does not exist).

    Raises:
        DeploymentRefused: when the object is deleted while awaited, the API refuses the watch,
            or stays unreachable until the deadline.
    """
    group, version, plural = coordinates
    latest: dict[str, Any] | None = None

    def settle(obj: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal latest
        latest = obj
        return obj if done(obj) else None

    def list_objects() -> dict[str, Any]:
        listed: dict[str, Any] = api.list_namespaced_custom_object(
            group,
            version,
            namespace,
            plural,
            field_selector=f"metadata.name={name}",
            _request_timeout=(READ_MARGIN_S, READ_MARGIN_S),
        )
        return listed

    return watch_object(
        api,
        coordinates,
        namespace,
        name,
        list_objects=list_objects,
        settle=settle,
        at_deadline=lambda: latest,
        timeout_s=timeout_s,
        reporting=WatchReporting(
            stage=STAGE, what=f"{plural} {namespace}/{name}", error=DeploymentRefused
        ),
    )


class KubernetesApplier:
    """Applies rendered objects with the controller's own credentials."""

    applies = True

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.api = client.CustomObjectsApi(api_client)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (field manager aiact-deployer, force): creates the object or
        updates the fields this manager owns. A server that does not create on apply (the test
        emulator) answers 404 and gets a create.

        Raises:
            DeploymentRefused: when the API server refuses the object.
        """
        group, version, plural = PLURALS[obj["kind"]]
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        path = f"/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}"
        try:
            stored = self.api_client.call_api(
                path,
                "PATCH",
                query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                header_params={"Content-Type": APPLY_CONTENT_TYPE, "Accept": "application/json"},
                body=obj,
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=(READ_MARGIN_S, 30.0),
            )
        except ApiException as exc:
            if exc.status != 404:
                raise DeploymentRefused(
                    f"the cluster refused {obj['kind']} {namespace}/{name} "
                    f"({exc.status}): {api_message(exc)}"
                ) from exc
            try:
                stored = self.api.create_namespaced_custom_object(
                    group, version, namespace, plural, obj, field_manager=FIELD_MANAGER
                )
            except ApiException as inner:
                raise DeploymentRefused(
                    f"the cluster refused {obj['kind']} {namespace}/{name} "
                    f"({inner.status}): {api_message(inner)}"
                ) from inner
        result: dict[str, Any] = stored
        return result

    def wait_ready(self, obj: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Watch the InferenceService until KServe reports it Ready for the applied generation.

        Raises:
            DeploymentFailed: when it is not Ready within `timeout_s`.
        """
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        generation = int((obj.get("metadata") or {}).get("generation") or 0)

        def is_ready(current: dict[str, Any]) -> bool:
            if int(current["metadata"].get("generation") or 0) < generation:
                return False
            return ready(current)[0]

        found = watch_until(self.api, PLURALS[obj["kind"]], namespace, name, is_ready, timeout_s)
        if found is not None and is_ready(found):
            return found
        why = ready(found)[1] if found is not None else "it does not exist"
        raise DeploymentFailed(
            f"{obj['kind']} {namespace}/{name} was not Ready within {timeout_s:g} s ({why})"
        )


class DeploymentRequests:
    """DeploymentRequests of one namespace, as the stage and `aiact rollback` see them: create
    (or find the one a retry created before), then watch its status."""

    def __init__(self, namespace: str, api_client: client.ApiClient) -> None:
        self.namespace = namespace
        self.api = client.CustomObjectsApi(api_client)

    def submit(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the request; when one of that name exists (a retried task), reuse it if it
        asks for the same thing.

        Raises:
            DeploymentRefused: when the cluster refuses it, or the name is taken by a request
                with another spec.
        """
        name = obj["metadata"]["name"]
        try:
            created: dict[str, Any] = self.api.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, obj
            )
            log_event(STAGE, "request_created", request=f"{self.namespace}/{name}")
            return created
        except ApiException as exc:
            if exc.status != 409:
                raise DeploymentRefused(
                    f"creating DeploymentRequest {name!r} in {self.namespace!r} "
                    f"({exc.status}): {api_message(exc)}"
                ) from exc
        existing: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        if existing.get("spec") != obj["spec"]:
            raise DeploymentRefused(
                f"DeploymentRequest {self.namespace}/{name} exists with another spec"
            )
        log_event(STAGE, "request_reused", request=f"{self.namespace}/{name}")
        return existing

    def wait(self, name: str, timeout_s: float) -> dict[str, Any]:
        """The request's final status (phase Succeeded or Failed).

        Raises:
            DeploymentRefused: when the controller has not finished it within `timeout_s`.
        """

        def final(obj: dict[str, Any]) -> bool:
            return (obj.get("status") or {}).get("phase") in FINAL_PHASES

        found = watch_until(
            self.api, (GROUP, VERSION, PLURAL), self.namespace, name, final, timeout_s
        )
        if found is None or not final(found):
            phase = ((found or {}).get("status") or {}).get("phase", "no status")
            raise DeploymentRefused(
                f"DeploymentRequest {self.namespace}/{name} not finished by the deployer within "
                f"{timeout_s:g} s ({phase}): is the deployer controller running in aiact-system?"
            )
        status: dict[str, Any] = found["status"]
        return status


def api_client_from_environment() -> tuple[client.ApiClient, str]:
    """An API client and its default namespace: in-cluster credentials in a pod, else the
    kubeconfig ($KUBECONFIG).

    Raises:
        DeploymentRefused: without usable credentials.
    """
    return kubeclient.api_client_from_environment(DeploymentRefused)
