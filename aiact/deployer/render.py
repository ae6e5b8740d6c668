"""The Kubernetes objects a rollout applies: KServe InferenceServices (serving.kserve.io/v1beta1)
and, for a shadow rollout, an Istio VirtualService (networking.istio.io/v1).

Rendering is deterministic (same model, strategy and configuration: byte-identical objects), so
the digest the ledger records (`object_digest`) can be recomputed by an auditor.

- **full**: the production InferenceService `<name>` serves the new model to all traffic.
- **canary**: the same InferenceService with `spec.predictor.canaryTrafficPercent`: KServe routes
  that share to the new revision and the rest to the last rolled-out one. KServe honours
  canaryTrafficPercent only in its Serverless (Knative) deployment mode, hence every production
  InferenceService carries the annotation `serving.kserve.io/deploymentMode: Serverless` (KServe
  refuses to change a service's deployment mode later, so full and canary use the same one;
  newer KServe releases call the mode "Knative" and still accept "Serverless").
- **shadow**: the production InferenceService is left alone; a copy `<name>-shadow` serves the
  new model with cluster-local visibility (`networking.kserve.io/visibility: cluster-local`: no
  ingress route, so no user traffic), and a VirtualService `<name>-shadow-mirror` routes
  mesh traffic for the production predictor unchanged while Istio mirrors a copy of each request
  to the shadow predictor (`mirror`, `mirrorPercentage`); mirrored responses are discarded. This
  needs an Istio mesh (sidecars on the callers): without one the VirtualService has no effect
  and the shadow receives nothing. It has not run against Istio here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiact.hashing import sha256_json
from aiact.lineage import version_of
from components.deployment.core import DeploymentRefused

KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
ISVC_PLURAL = "inferenceservices"
ISVC_KIND = "InferenceService"
ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSION = "v1"
VS_PLURAL = "virtualservices"
VS_KIND = "VirtualService"

DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
SERVERLESS = "Serverless"
VISIBILITY = "networking.kserve.io/visibility"
CLUSTER_LOCAL = "cluster-local"
# The suite's model package (aiact/model_package.py) served by the platform's ServingRuntime.
MODEL_FORMAT = "aiact-mlp"
DEFAULT_RUNTIME = "aiact-kserve"
SHADOW_SUFFIX = "-shadow"
MIRROR_SUFFIX = "-shadow-mirror"
# KServe names are DNS-1035 labels; Knative appends "-predictor" and a revision suffix, and the
# shadow copy "-shadow", so production names stay well below 63 characters.
MAX_NAME = 40
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
PLURALS = {
    ISVC_KIND: (KSERVE_GROUP, KSERVE_VERSION, ISVC_PLURAL),
    VS_KIND: (ISTIO_GROUP, ISTIO_VERSION, VS_PLURAL),
}


@dataclass(frozen=True)
class ServedModel:
    """The model a rollout serves, as the verified chain of custody names it.

    Attributes:
        name: The model name (the InferenceService's name).
        sha256: The model's content digest.
        uri: Where the model package is stored (storageUri: s3://, gs://, pvc://...).
        run_id: The pipeline run that trained, evaluated and approved it.
        request: The DeploymentRequest that asked for this rollout (namespace/name).
    """

    name: str
    sha256: str
    uri: str
    run_id: str
    request: str


def service_name(model_name: str) -> str:
    """The InferenceService name of a model: the model name itself, which must be a DNS-1035
    label of at most MAX_NAME characters.

    Raises:
        DeploymentRefused: when the model name cannot name an InferenceService.
    """
    if len(model_name) > MAX_NAME or not _DNS_1035.match(model_name):
        raise DeploymentRefused(
            f"model name {model_name!r} cannot name an InferenceService: use lower-case "
            f"letters, digits and '-', starting with a letter, at most {MAX_NAME} characters"
        )
    return model_name


def _metadata(
    name: str, namespace: str, model: ServedModel, extra_labels: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/part-of": "aiact",
            "app.kubernetes.io/managed-by": "aiact-deployer",
            "aiact.eu/model-name": model.name,
            "aiact.eu/model-version": version_of(model.sha256),
            **extra_labels,
        },
        "annotations": {
            DEPLOYMENT_MODE: SERVERLESS,
            "aiact.eu/model-sha256": model.sha256,
            "aiact.eu/pipeline-run-id": model.run_id,
            "aiact.eu/deployment-request": model.request,
        },
    }


def render_inference_service(
    model: ServedModel,
    *,
    namespace: str,
    runtime: str = DEFAULT_RUNTIME,
    canary_percent: int | None = None,
    shadow: bool = False,
) -> dict[str, Any]:
    """The InferenceService serving `model` in `namespace`.

    Args:
        model: The model, from the verified chain.
        namespace: The serving namespace of the request's environment.
        runtime: The ServingRuntime that serves the suite's model format.
        canary_percent: The canary's traffic share (canary rollouts only).
        shadow: Render the shadow copy `<name>-shadow` (cluster-local, no user traffic).

    Returns:
        The object, ready for a server-side apply.
    """
    name = service_name(model.name) + (SHADOW_SUFFIX if shadow else "")
    predictor: dict[str, Any] = {
        "minReplicas": 1,
        "model": {
            "modelFormat": {"name": MODEL_FORMAT},
            "runtime": runtime,
            "protocolVersion": "v2",
            "storageUri": model.uri,
        },
    }
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    labels = {VISIBILITY: CLUSTER_LOCAL, "aiact.eu/role": "shadow"} if shadow else {}
    return {
        "apiVersion": f"{KSERVE_GROUP}/{KSERVE_VERSION}",
        "kind": ISVC_KIND,
        "metadata": _metadata(name, namespace, model, labels),
        "spec": {"predictor": predictor},
    }


def predictor_host(name: str, namespace: str) -> str:
    """The in-cluster host of an InferenceService's predictor (Serverless mode)."""
    return f"{name}-predictor.{namespace}.svc.cluster.local"


def render_mirror(model: ServedModel, *, namespace: str, mirror_percent: float) -> dict[str, Any]:
    """The VirtualService that mirrors mesh traffic of the production predictor to the shadow.

    Args:
        model: The shadowed model.
        namespace: The serving namespace.
        mirror_percent: Share of requests copied to the shadow (0 < p <= 100).

    Returns:
        The object (needs an Istio mesh to take effect).
    """
    if not 0 < mirror_percent <= 100:
        raise DeploymentRefused(f"mirror percent must be in (0, 100], got {mirror_percent:g}")
    name = service_name(model.name)
    primary = predictor_host(name, namespace)
    return {
        "apiVersion": f"{ISTIO_GROUP}/{ISTIO_VERSION}",
        "kind": VS_KIND,
        "metadata": {
            **_metadata(name + MIRROR_SUFFIX, namespace, model, {"aiact.eu/role": "shadow"}),
        },
        "spec": {
            "hosts": [primary],
            "http": [
                {
                    "name": "production-with-shadow-mirror",
                    "route": [{"destination": {"host": primary}, "weight": 100}],
                    "mirror": {"host": predictor_host(name + SHADOW_SUFFIX, namespace)},
                    "mirrorPercentage": {"value": float(mirror_percent)},
                }
            ],
        },
    }


def render(
    plan: Mapping[str, Any],
    model: ServedModel,
    *,
    namespace: str,
    runtime: str = DEFAULT_RUNTIME,
    mirror_percent: float = 100.0,
) -> list[dict[str, Any]]:
    """Every object a rollout plan (components.deployment.core.rollout_plan) applies, in order.

    Returns:
        full: [InferenceService]; canary: [InferenceService with canaryTrafficPercent];
        shadow: [shadow InferenceService, mirroring VirtualService].
    """
    strategy = plan["strategy"]
    if strategy == "shadow":
        return [
            render_inference_service(model, namespace=namespace, runtime=runtime, shadow=True),
            render_mirror(model, namespace=namespace, mirror_percent=mirror_percent),
        ]
    canary = int(plan["traffic_percent"]) if strategy == "canary" else None
    return [
        render_inference_service(model, namespace=namespace, runtime=runtime, canary_percent=canary)
    ]


def object_digest(obj: Mapping[str, Any]) -> str:
    """The digest of what was applied: apiVersion, kind, name, namespace, labels, annotations and
    spec (server-set fields such as status, uid and resourceVersion excluded)."""
    metadata = obj.get("metadata") or {}
    return sha256_json(
        {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "metadata": {
                k: metadata.get(k) for k in ("name", "namespace", "labels", "annotations")
            },
            "spec": obj.get("spec"),
        }
    )


def ready(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether KServe reports an InferenceService Ready for its current generation, and why not.

    A Ready condition counts only when status.observedGeneration has caught up with
    metadata.generation (else it describes the previous spec)."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or int(observed) < int(generation)):
        return False, f"KServe has not yet observed generation {generation} (at {observed})"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            if str(condition.get("status")) == "True":
                return True, ""
            return False, str(condition.get("message") or condition.get("reason") or "not ready")
    return False, "no Ready condition yet"
