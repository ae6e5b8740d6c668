"""The emulated API server of tests/aiact/k8s_emulator.py, extended for the deployer: it also
serves DeploymentRequests (aiact.eu/v1), KServe InferenceServices (serving.kserve.io/v1beta1) and
Istio VirtualServices (networking.istio.io/v1), and a stand-in for KServe's controller.

Added over the approval emulator, and only as far as the deployer relies on it:
- watches and replays deliver events of the watched resource only;
- a status subresource for every resource here (a status patch changes only status, a
  main-resource patch never status) and metadata.generation bumped when spec changes;
- a server-side apply (`application/apply-patch+yaml`) replaces the labels, annotations and
  spec it names (one field manager: no managedFields, no conflicts), on an existing object only
  (404 otherwise: the applier then creates).

NOT reproduced: RBAC (tests/manifests/test_deployer_rbac.py evaluates the rules offline), the
CRDs' schemas (checked offline with jsonschema in the tests), admission webhooks of KServe, and
KServe itself: `FakeKServe` plays its controller's part by setting an InferenceService's status
Ready (observedGeneration = generation) through the API; no pod, Knative revision, traffic split
or Istio route exists, so what traffic would reach which model is not checked.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp.web
from kmock._internal import enums, references, rendering
from kubernetes import client

from tests.aiact.k8s_emulator import ApprovalApiEmulator, EmulatedApiServer

DEPLOYER_RESOURCES = {
    "aiact.eu/v1/deploymentrequests": ("DeploymentRequest", "deploymentrequest"),
    "serving.kserve.io/v1beta1/inferenceservices": ("InferenceService", "inferenceservice"),
    "networking.istio.io/v1/virtualservices": ("VirtualService", "virtualservice"),
}
APPLY = "application/apply-patch+yaml"
CONTROLLER = "system:serviceaccount:aiact-system:aiact-deployer"
PIPELINE = "system:serviceaccount:team-a:aiact-pipeline-runner"


def _removals(old: Any, new: Any) -> Any:
    """A JSON merge patch turning `old` into `new` (None deletes a key)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        patch[key] = _removals(old.get(key), value) if key in old else copy.deepcopy(value)
    return patch


class DeployerApiEmulator(ApprovalApiEmulator):
    """The approval emulator plus the deployer's resources."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key, (kind, singular) in DEPLOYER_RESOURCES.items():
            self.resources[key] = {
                "namespaced": True,
                "kind": kind,
                "singular": singular,
                "verbs": ["get", "list", "watch", "create", "patch", "update"],
                "shortnames": [],
                "categories": [],
                "subresources": ["status"],
            }
        # kopf waits for the core `namespaces` resource in discovery (also when cluster-wide).
        self.resources[references.resource(group="", version="v1", plural="namespaces")] = {
            "namespaced": False,
            "kind": "Namespace",
            "singular": "namespace",
            "verbs": ["get", "list", "watch"],
            "shortnames": [],
            "categories": [],
            "subresources": [],
        }
        self.applies: list[dict[str, Any]] = []  # server-side apply bodies, for assertions

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        resource = request.resource
        if (
            resource is not None
            and f"{resource.group}/{resource.version}/{resource.plural}" in DEPLOYER_RESOURCES
            and request.action == enums.action.UPDATE
            and isinstance(request.data, dict)
        ):
            key = (resource, request.namespace, request.name or "")
            stored = self.objects[key] if key in self.objects else None  # noqa: SIM401
            if stored is None or stored.deleted:
                return aiohttp.web.json_response(
                    {"kind": "Status", "code": 404, "reason": "NotFound"}, status=404
                )
            old = copy.deepcopy(dict(stored.raw))
            if request.headers.get("Content-Type", "").startswith(APPLY):
                self.applies.append(copy.deepcopy(request.data))
                body = request.data
                patch = {
                    "metadata": {
                        field: _removals(
                            old["metadata"].get(field, {}), body["metadata"].get(field, {})
                        )
                        for field in ("labels", "annotations")
                    },
                    "spec": _removals(old.get("spec", {}), body.get("spec", {})),
                }
                request.data.clear()
                request.data.update(patch)
            if request.subresource == "status":
                for field in list(request.data):
                    if field not in ("status", "metadata"):
                        request.data.pop(field)
                request.data.get("metadata", {}).pop("annotations", None)
            else:
                request.data.pop("status", None)
                if "spec" in request.data:
                    merged = _merged(old.get("spec"), request.data["spec"])
                    if merged != old.get("spec"):
                        generation = int(old["metadata"].get("generation", 1)) + 1
                        request.data.setdefault("metadata", {})["generation"] = generation
        return await super()._handle(request)

    def _replay(
        self, request: rendering.Request, since: int, only_latest: bool = False
    ) -> list[dict[str, Any]]:
        events = super()._replay(request, since, only_latest)
        resource = request.resource
        if resource is None:
            return events
        kinds = {
            str(info.kind)
            for key, info in self.resources.items()
            if key.group == resource.group and key.plural == resource.plural
        }

        def group_of(obj: dict[str, Any]) -> str:
            api_version = str(obj.get("apiVersion", ""))
            return api_version.split("/")[0] if "/" in api_version else ""

        return [
            e
            for e in events
            if group_of(e["object"]) == resource.group
            and (not kinds or e["object"].get("kind") in kinds)
        ]

    def stored(self, plural: str, namespace: str) -> dict[str, dict[str, Any]]:
        """Stored objects of one resource in a namespace, by name."""
        return {
            name: copy.deepcopy(dict(obj.raw))
            for (resource, ns, name), obj in self.objects.items()
            if ns == namespace and not obj.deleted and str(resource.plural) == plural
        }


def _merged(old: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(old, dict):
        return patch
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merged(old.get(key), value)
    return out


class DeployerApiServer(EmulatedApiServer):
    """The extended emulator on 127.0.0.1 in a background thread."""

    def __init__(self) -> None:
        super().__init__()
        self.emulator = DeployerApiEmulator()

    def api_client(self, user: str) -> client.ApiClient:
        """An API client authenticating as `user` (a bearer token the emulator maps to it)."""
        token = f"token-{user}"
        self.emulator.tokens[token] = user
        configuration = client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)


class FakeKServe:
    """Plays KServe's controller: marks every InferenceService Ready for its generation, through
    the status subresource, unless `hold` is set (a rollout that never becomes Ready)."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.hold = threading.Event()
        self.readied: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            if self.hold.is_set():
                continue
            listed = self.api.list_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", self.namespace, "inferenceservices"
            )
            for item in listed.get("items", []):
                generation = int(item["metadata"].get("generation", 1))
                status = item.get("status") or {}
                if status.get("observedGeneration") == generation:
                    continue
                name = item["metadata"]["name"]
                self.api.patch_namespaced_custom_object_status(
                    "serving.kserve.io",
                    "v1beta1",
                    self.namespace,
                    "inferenceservices",
                    name,
                    {
                        "status": {
                            "observedGeneration": generation,
                            "url": f"http://{name}.{self.namespace}.example.com",
                            "conditions": [
                                {
                                    "type": "Ready",
                                    "status": "True",
                                    "lastTransitionTime": time.strftime(
                                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()
                                    ),
                                }
                            ],
                        }
                    },
                )
                self.readied.append((name, generation))

    def start(self) -> FakeKServe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@contextmanager
def deployer_api_server() -> Iterator[DeployerApiServer]:
    """Start and stop the extended emulator."""
    server = DeployerApiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
