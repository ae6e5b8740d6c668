"""The deployer controller: kopf handlers around `aiact.deployer.reconcile.reconcile`.

Run in aiact-system under the ServiceAccount aiact-deployer (manifests/deployer):

    kopf run --all-namespaces --standalone --liveness=http://0.0.0.0:8080/healthz \\
        -m aiact.deployer.operator

One replica (`standalone`: no peering) and a lock around each reconcile serialise rollouts and
ledger appends. The handlers are thin: they skip requests that already carry a final phase
(a restart resumes only unfinished ones), call `reconcile` in kopf's thread pool and write the
status it returns through the status subresource. Settings come from the environment of the
controller's Deployment: AIACT_METADATA_URI, the S3 credentials of the ledger (AWS_*),
AIACT_DEPLOYER_* (aiact/deployer/reconcile.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import kopf

from aiact.deployer import FINAL_PHASES, GROUP, PLURAL, VERSION
from aiact.deployer.reconcile import Deployer, DeployerConfig, reconcile
from aiact.lineage import LineageStore
from aiact.platform import PLATFORM_CONFIG_MAP, PLATFORM_NAMESPACE, PlatformConfig, parse_platform


def platform_reader(api_client: Any) -> Callable[[str], PlatformConfig]:
    """The platform configuration of a namespace, read from ConfigMap aiact-system/aiact-platform
    at each request (an admin's change applies to the next request)."""
    from aiact.platform import _read_config_map  # the same reader the stages use

    def read(namespace: str) -> PlatformConfig:
        text = _read_config_map(api_client, namespace)
        return parse_platform(
            text,
            namespace=namespace,
            source=f"ConfigMap {PLATFORM_NAMESPACE}/{PLATFORM_CONFIG_MAP}",
        )

    return read


@functools.cache
def _deployer() -> Deployer:
    """The controller's deployer, built once from its environment and credentials."""
    import os

    from aiact.deployer.kube import KubernetesApplier, api_client_from_environment

    api_client, _ = api_client_from_environment()
    return Deployer(
        lineage=LineageStore.connect(os.environ.get("AIACT_METADATA_URI", "")),
        platform_for=platform_reader(api_client),
        applier=KubernetesApplier(api_client),
        config=DeployerConfig.from_environ(),
    )


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf settings: progress in annotations (the status belongs to the request's outcome),
    no peering objects, a bounded number of worker threads."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="aiact.eu")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="aiact.eu", key="last-handled-configuration"
    )
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 4
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 310


def handle(
    body: kopf.Body,
    patch: kopf.Patch,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    deployer: Deployer,
) -> None:
    """Reconcile one request unless it is already final; write the outcome to its status."""
    phase = (body.get("status") or {}).get("phase")
    if phase in FINAL_PHASES:
        return
    obj = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body.metadata),
        "spec": dict(body.spec),
    }
    status = reconcile(obj, deployer)
    logger.info("%s: %s", status["phase"], status["message"])
    patch.status.update(status)


def register(registry: kopf.OperatorRegistry, deployer: Callable[[], Deployer]) -> None:
    """Register the handlers on `registry` (kopf's default one for `kopf run`)."""

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)
        deployer()  # fail fast on missing credentials or configuration

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    def deploy(
        body: kopf.Body,
        patch: kopf.Patch,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **_: Any,
    ) -> None:
        handle(body, patch, logger, deployer())


register(kopf.get_default_registry(), _deployer)
