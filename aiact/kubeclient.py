"""What the approval backend (aiact/approval/kubernetes.py) and the deployer
(aiact/deployer/kube.py) share as Kubernetes clients: credentials from the environment, the
message of an API error, and watching one custom object until the caller is satisfied.

One watch request lasts at most WATCH_WINDOW_S (`timeout_seconds`) with a client read timeout a
little longer (`_request_timeout`), an overall deadline bounds the whole wait, a dropped
connection resumes from the last resourceVersion with a backoff while the API server stays
unreachable, and 410 Gone (a compacted resourceVersion) re-lists.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from aiact.observability import log_event

# One watch request lasts at most this long; the server ends it and the watch resumes.
WATCH_WINDOW_S = 300
# Client-side read timeout beyond the server's watch window (a silent, dead connection).
READ_MARGIN_S = 10.0
# Pause before reconnecting after a broken connection, doubling while the API server stays
# unreachable, so that it is not hammered.
RECONNECT_DELAY_S = 0.2
RECONNECT_MAX_S = 10.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

T = TypeVar("T")


def api_message(exc: ApiException) -> str:
    """The message of a Kubernetes API error."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


def api_client_from_environment(
    error: Callable[[str], Exception],
) -> tuple[client.ApiClient, str]:
    """An API client and its default namespace: in-cluster credentials (and the pod's
    namespace) in a pod, else the kubeconfig ($KUBECONFIG) and its context's namespace.

    Raises:
        error: without usable credentials.
    """
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
        namespace = (
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
            raise error(
                f"no Kubernetes credentials: not in a pod and no usable kubeconfig ({exc})"
            ) from exc
        namespace = active.get("context", {}).get("namespace", "default")
    return client.ApiClient(configuration), namespace


def _status_and_message(exc: ApiException) -> str:
    return f"{exc.status} {api_message(exc)}"


@dataclass(frozen=True)
class WatchReporting:
    """How a watch names its object in log records and in the caller's errors."""

    stage: str
    """The stage of the log records."""
    what: str
    """The object in error messages, e.g. "ModelApproval 'x'"."""
    error: Callable[[str], Exception]
    """The caller's exception for a deleted object, a refused watch or a lost API server."""
    log_key: str = "name"
    """The log field that carries the object's name."""
    refusal: Callable[[ApiException], str] = _status_and_message
    """What a refused watch's error says about the API's answer."""


def watch_object(
    api: client.CustomObjectsApi,
    coordinates: tuple[str, str, str],
    namespace: str,
    name: str,
    *,
    list_objects: Callable[[], dict[str, Any]],
    settle: Callable[[dict[str, Any]], T | None],
    at_deadline: Callable[[], T],
    timeout_s: float,
    reporting: WatchReporting,
) -> T:
    """Watch the custom object `name` (coordinates: group, version, plural) until
    `settle(obj)` returns a result other than None, and return that result; once `timeout_s`
    passes, return `at_deadline()`.

    `list_objects()` lists the objects with `metadata.name=name` (at the start and after
    410 Gone); `settle` sees each listed item of that name and each watched version of it.

    Raises:
        reporting.error: when the object is deleted while awaited, the API refuses the watch,
            or stays unreachable until the deadline.
    """
    group, version, plural = coordinates
    deadline = time.monotonic() + max(0.0, timeout_s)
    resource_version: str | None = None
    failures = 0
    while True:
        watcher = watch.Watch()
        try:
            if resource_version is None:
                listed = list_objects()
                for item in listed.get("items", []):
                    if item["metadata"]["name"] != name:
                        continue
                    if (result := settle(item)) is not None:
                        return result
                resource_version = listed["metadata"]["resourceVersion"]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return at_deadline()
            window = max(1, min(WATCH_WINDOW_S, int(remaining + 0.999)))
            for event in watcher.stream(
                api.list_namespaced_custom_object,
                group,
                version,
                namespace,
                plural,
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
                if obj.get("kind") and obj.get("apiVersion", "").split("/")[0] != group:
                    continue
                if event["type"] == "DELETED":
                    raise reporting.error(f"{reporting.what} was deleted while awaited")
                if (result := settle(obj)) is not None:
                    return result
                if time.monotonic() >= deadline:
                    break
        except ApiException as exc:
            if exc.status != 410:
                raise reporting.error(
                    f"watching {reporting.what}: {reporting.refusal(exc)}"
                ) from exc
            log_event(
                reporting.stage,
                "watch_expired_relist",
                **{reporting.log_key: name},
                since=resource_version,
            )
            resource_version = None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise reporting.error(
                    f"lost the Kubernetes API while awaiting {reporting.what}: {exc}"
                ) from exc
            failures += 1
            delay = min(RECONNECT_MAX_S, RECONNECT_DELAY_S * 2 ** (failures - 1))
            log_event(
                reporting.stage,
                "watch_reconnect",
                **{reporting.log_key: name},
                since=resource_version,
                delay_s=delay,
                error=str(exc),
            )
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        finally:
            watcher.stop()
