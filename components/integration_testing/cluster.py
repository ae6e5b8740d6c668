"""The integration environment on a cluster: the staged model as a KServe `InferenceService`
(serving.kserve.io/v1beta1) in an integration namespace, created through the Kubernetes API,
waited for (Ready, with a deadline), tested at its URL and deleted afterwards.

The predictor is a custom container running the suite's model-server image (`aiact-serving`,
`python -m aiact.kserve_model`); `STORAGE_URI` on the container named `kserve-container` makes
KServe's storage initializer download the registered model's URI into /mnt/models before the
server starts (KServe's documented convention for custom containers).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.integration_testing.core import ServerHandle, ServingError

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MODEL_MOUNT = "/mnt/models"
CONTAINER = "kserve-container"
HTTP_PORT = 8080
API_TIMEOUT_S = 10.0
POLL_S = 2.0
_REMOTE = ("s3://", "gs://", "https://", "http://", "pvc://", "hdfs://", "webhdfs://", "oci://")


class ClusterSetupError(RuntimeError):
    """The InferenceService cannot be created (bad model URI, API refusal)."""


def storage_uri(model_uri: str) -> str:
    """The registered model's URI as KServe's storage initializer reads it (KFP's `minio://`
    artefact URIs are S3 buckets).

    Raises:
        ClusterSetupError: For a URI no storage initializer can fetch (a local path).
    """
    if model_uri.startswith("minio://"):
        return "s3://" + model_uri.removeprefix("minio://")
    if model_uri.startswith(_REMOTE):
        return model_uri
    raise ClusterSetupError(
        f"model URI {model_uri!r} is not in object storage: an InferenceService cannot load it"
    )


def service_name(model_sha256: str) -> str:
    """A fresh, DNS-safe InferenceService name for one integration test of one model."""
    digest = re.sub(r"[^0-9a-f]", "", model_sha256.lower())[:10] or "model"
    return f"aiact-it-{digest}-{secrets.token_hex(3)}"


def manifest(
    *,
    name: str,
    namespace: str,
    image: str,
    model_uri: str,
    model_name: str,
    model_sha256: str,
    run_id: str,
    service_account: str = "",
) -> dict[str, Any]:
    """The InferenceService of one integration test."""
    predictor: dict[str, Any] = {
        "minReplicas": 1,
        "maxReplicas": 1,
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "args": [
                    "--model_dir",
                    MODEL_MOUNT,
                    "--model_name",
                    model_name,
                    "--http_port",
                    str(HTTP_PORT),
                    "--enable_grpc",
                    "false",
                ],
                "env": [{"name": "STORAGE_URI", "value": storage_uri(model_uri)}],
                "ports": [{"containerPort": HTTP_PORT, "protocol": "TCP"}],
                "resources": {
                    "requests": {"cpu": "500m", "memory": "1Gi"},
                    "limits": {"cpu": "2", "memory": "2Gi"},
                },
            }
        ],
    }
    if service_account:
        predictor["serviceAccountName"] = service_account
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "aiact",
                "app.kubernetes.io/component": "integration-testing",
            },
            "annotations": {
                "aiact.eu/model-sha256": model_sha256,
                "aiact.eu/run-id": run_id,
            },
        },
        "spec": {"predictor": predictor},
    }


def _ready(status: dict[str, Any]) -> tuple[bool, str]:
    """(Ready, 'reason: message') from an InferenceService status."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            why = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
            return condition.get("status") == "True", why or f"Ready={condition.get('status')}"
    return False, "no Ready condition yet"


def _api_message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(getattr(exc, "reason", exc))


def _reason(exc: Exception) -> str:
    """One line: HTTP status and the API's message, or the exception's type and text."""
    status = getattr(exc, "status", None)
    if status is not None and hasattr(exc, "body"):
        return f"HTTP {status}: {_api_message(exc)}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def _record(log_path: Path, text: str) -> None:
    with log_path.open("a") as log:
        log.write(text.rstrip("\n") + "\n")


def _predictor_logs(api_client: Any, namespace: str, name: str) -> str:
    """The predictor pods' kserve-container logs, or why they could not be read."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    try:
        pods = core.list_namespaced_pod(
            namespace,
            label_selector=f"serving.kserve.io/inferenceservice={name}",
            _request_timeout=API_TIMEOUT_S,
        )
    except Exception as exc:  # API refusals and connection errors alike: evidence, not fatal
        return f"predictor pods could not be listed: {_reason(exc)}"
    names = [p.metadata.name for p in pods.items or []]
    if not names:
        return "no predictor pod found"
    parts = []
    for pod in names:
        try:
            text = core.read_namespaced_pod_log(
                pod, namespace, container=CONTAINER, _request_timeout=API_TIMEOUT_S
            )
            parts.append(f"--- pod {pod}, container {CONTAINER}\n{text}")
        except Exception as exc:
            parts.append(f"--- pod {pod}: log not readable: {_reason(exc)}")
    return "\n".join(parts)


@contextmanager
def inference_service(
    api_client: Any,
    body: dict[str, Any],
    log_path: Path,
    *,
    ready_timeout_s: float,
    poll_s: float = POLL_S,
) -> Iterator[ServerHandle]:
    """Create the InferenceService, wait until it is Ready (at most `ready_timeout_s`), yield
    its URL (`status.address.url`, the cluster-local address, else `status.url`) and delete it
    afterwards, also on failure. The created object, its last status and the predictor logs go
    to `log_path`.

    Raises:
        ClusterSetupError: The API refused to create it.
        ServingError: Not Ready (with a URL) within the deadline.
    """
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = client.CustomObjectsApi(api_client)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    where = f"InferenceService {namespace}/{name}"
    args = body["spec"]["predictor"]["containers"][0]["args"]
    model_name = args[args.index("--model_name") + 1]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _record(log_path, f"$ create {where}\n{json.dumps(body, indent=2, sort_keys=True)}")
    try:
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, _request_timeout=API_TIMEOUT_S
        )
    except ApiException as exc:
        raise ClusterSetupError(
            f"{where} could not be created (HTTP {exc.status}): {_api_message(exc)}"
        ) from None
    last: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + ready_timeout_s
        why = "not read yet"
        while True:
            try:
                last = api.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=API_TIMEOUT_S
                )
                status = last.get("status") or {}
                ready, why = _ready(status)
                url = (status.get("address") or {}).get("url") or status.get("url")
                if ready and url:
                    _record(log_path, f"{where} Ready at {url}")
                    break
                if ready:
                    why = "Ready but no URL in status"
            except ApiException as exc:
                why = f"HTTP {exc.status}: {_api_message(exc)}"
            except Exception as exc:  # connection errors and timeouts: retry until the deadline
                why = _reason(exc)
            if time.monotonic() + poll_s > deadline:
                raise ServingError(f"{where} was not Ready within {ready_timeout_s:g} s ({why})")
            time.sleep(poll_s)
        yield ServerHandle(str(url), model_name)
    except BaseException:
        _clean_up(api, api_client, namespace, name, last, log_path, strict=False)
        raise
    _clean_up(api, api_client, namespace, name, last, log_path, strict=True)


def _clean_up(
    api: Any,
    api_client: Any,
    namespace: str,
    name: str,
    last: dict[str, Any],
    log_path: Path,
    *,
    strict: bool,
) -> None:
    """Keep the last status and the predictor logs as evidence, then delete the object. A
    failed delete is an error (`strict`) unless another error is already on its way."""
    from kubernetes.client.rest import ApiException

    where = f"InferenceService {namespace}/{name}"
    _record(log_path, f"$ status of {where}\n{json.dumps(last, indent=2, sort_keys=True)}")
    _record(log_path, _predictor_logs(api_client, namespace, name))
    try:
        api.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=API_TIMEOUT_S
        )
        _record(log_path, f"$ deleted {where}")
    except Exception as exc:
        if isinstance(exc, ApiException) and exc.status == 404:
            return
        _record(log_path, f"$ delete of {where} failed: {_reason(exc)}")
        if strict:
            raise ClusterSetupError(f"{where} could not be deleted: {_reason(exc)}") from None
