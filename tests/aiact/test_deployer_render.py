"""Rendered rollout objects, validated offline: every InferenceService against the openAPIV3Schema
of KServe's own CRD (vendored verbatim in third_party/kserve, see its README), the mirroring
VirtualService structurally against the fields of Istio's networking.istio.io/v1 API that it
uses, and DeploymentRequests against the suite's CRD (manifests/deployer). jsonschema checks the
schema only: no KServe webhook, no Istio validation and no CEL rule of the KServe CRD runs here."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from aiact.deployer.reconcile import deploy_request, rollback_request
from aiact.deployer.render import (
    DEPLOYMENT_MODE,
    SERVERLESS,
    VISIBILITY,
    ServedModel,
    object_digest,
    ready,
    render,
    service_name,
)
from components.deployment.core import DeploymentRefused, rollout_plan

REPO = Path(__file__).resolve().parents[2]
KSERVE_CRD = REPO / "third_party" / "kserve" / "serving.kserve.io_inferenceservices.yaml"
REQUEST_CRD = REPO / "manifests" / "deployer" / "deploymentrequest-crd.yaml"
MODEL = ServedModel(
    name="credit-scoring",
    sha256="ab" * 32,
    uri="s3://aiact-models/credit-scoring/abab",
    run_id="run-1",
    request="team-a/deploy-1",
)

# The subset of Istio's VirtualService (networking.istio.io/v1) the mirror uses, with Istio's
# field names and types (HTTPRoute.route[].destination.host, HTTPRoute.mirror.host,
# HTTPRoute.mirrorPercentage.value as a double in [0, 100]); unknown fields are refused, so a
# misspelt field fails here.
VIRTUAL_SERVICE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "networking.istio.io/v1"},
        "kind": {"const": "VirtualService"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["hosts", "http"],
            "properties": {
                "hosts": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "http": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["route"],
                        "properties": {
                            "name": {"type": "string"},
                            "route": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "destination": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "required": ["host"],
                                            "properties": {"host": {"type": "string"}},
                                        },
                                        "weight": {"type": "integer"},
                                    },
                                },
                            },
                            "mirror": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["host"],
                                "properties": {"host": {"type": "string"}},
                            },
                            "mirrorPercentage": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "value": {"type": "number", "minimum": 0, "maximum": 100}
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def _json_schema(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    return node


@cache
def _validator(path: Path) -> jsonschema.Draft4Validator:
    documents = [d for d in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader) if d]
    (crd,) = [d for d in documents if d["kind"] == "CustomResourceDefinition"]
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return jsonschema.Draft4Validator(_json_schema(version["schema"]["openAPIV3Schema"]))


def _errors(path: Path, obj: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(path).iter_errors(obj)
    ]


def test_the_vendored_crd_is_kserves_inference_service() -> None:
    crd = yaml.load(KSERVE_CRD.read_text(), Loader=yaml.CSafeLoader)
    assert crd["metadata"]["name"] == "inferenceservices.serving.kserve.io"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1beta1"
    predictor = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "predictor"
    ]["properties"]
    assert predictor["canaryTrafficPercent"] == {"format": "int64", "type": "integer"}
    assert "Apache License" in (KSERVE_CRD.parent / "LICENSE").read_text()


@pytest.mark.parametrize("strategy", ["full", "canary", "shadow"])
def test_every_rendered_inference_service_fits_kserves_schema(strategy: str) -> None:
    objects = render(rollout_plan(strategy, 10), MODEL, namespace="aiact-serving")
    services = [o for o in objects if o["kind"] == "InferenceService"]
    assert len(services) == 1
    (service,) = services
    assert _errors(KSERVE_CRD, service) == []
    predictor = service["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == MODEL.uri
    assert service["metadata"]["annotations"][DEPLOYMENT_MODE] == SERVERLESS
    assert service["metadata"]["annotations"]["aiact.eu/model-sha256"] == MODEL.sha256
    if strategy == "canary":
        assert predictor["canaryTrafficPercent"] == 10
        assert service["metadata"]["name"] == "credit-scoring"
    else:
        assert "canaryTrafficPercent" not in predictor
    if strategy == "shadow":
        assert service["metadata"]["name"] == "credit-scoring-shadow"
        assert service["metadata"]["labels"][VISIBILITY] == "cluster-local"
        (mirror,) = [o for o in objects if o["kind"] == "VirtualService"]
        assert list(jsonschema.Draft7Validator(VIRTUAL_SERVICE).iter_errors(mirror)) == []
        (route,) = mirror["spec"]["http"]
        assert route["route"][0]["destination"]["host"] == (
            "credit-scoring-predictor.aiact-serving.svc.cluster.local"
        )
        assert route["mirror"]["host"] == (
            "credit-scoring-shadow-predictor.aiact-serving.svc.cluster.local"
        )
        assert route["mirrorPercentage"] == {"value": 100.0}


def test_the_schema_check_can_fail() -> None:
    (service,) = render(rollout_plan("canary", 10), MODEL, namespace="aiact-serving")
    broken = copy.deepcopy(service)
    broken["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    broken["spec"]["predictor"]["model"]["modelFormat"] = {"version": "1"}  # name is required
    errors = _errors(KSERVE_CRD, broken)
    assert any("canaryTrafficPercent" in e for e in errors), errors
    assert any("'name' is a required property" in e for e in errors), errors
    (_, mirror) = render(rollout_plan("shadow", 0), MODEL, namespace="aiact-serving")
    mirror["spec"]["http"][0]["mirror_percent"] = 5
    assert list(jsonschema.Draft7Validator(VIRTUAL_SERVICE).iter_errors(mirror))


def test_rendering_is_deterministic_and_its_digest_covers_the_spec() -> None:
    first = render(rollout_plan("full", 0), MODEL, namespace="aiact-serving")
    again = render(rollout_plan("full", 0), MODEL, namespace="aiact-serving")
    assert [object_digest(o) for o in first] == [object_digest(o) for o in again]
    stored = {**copy.deepcopy(first[0]), "status": {"url": "x"}}
    stored["metadata"]["uid"] = "u-1"
    assert object_digest(stored) == object_digest(first[0]), "server fields are not digested"
    other = render(
        rollout_plan("full", 0),
        ServedModel(**{**MODEL.__dict__, "uri": "s3://elsewhere"}),
        namespace="aiact-serving",
    )
    assert object_digest(other[0]) != object_digest(first[0])


def test_bad_names_and_mirror_shares_are_refused() -> None:
    with pytest.raises(DeploymentRefused, match="cannot name an InferenceService"):
        service_name("Credit_Scoring")
    with pytest.raises(DeploymentRefused, match="cannot name an InferenceService"):
        service_name("x" * 41)
    with pytest.raises(DeploymentRefused, match=r"mirror percent must be in \(0, 100\]"):
        render(rollout_plan("shadow", 0), MODEL, namespace="ns", mirror_percent=0)


def test_ready_needs_the_current_generation() -> None:
    obj: dict[str, Any] = {"metadata": {"generation": 2}, "status": {}}
    assert ready(obj) == (False, "KServe has not yet observed generation 2 (at None)")
    obj["status"] = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}
    assert ready(obj)[0] is False, "a Ready of the previous spec does not count"
    obj["status"]["observedGeneration"] = 2
    assert ready(obj) == (True, "")
    obj["status"]["conditions"] = [{"type": "Ready", "status": "False", "reason": "RevisionFailed"}]
    assert ready(obj) == (False, "RevisionFailed")


def test_deployment_requests_fit_their_crd() -> None:
    request = deploy_request(
        namespace="team-a",
        key="f" * 64,
        model_name="credit-scoring",
        model_sha256="ab" * 32,
        run_id="run-1",
        approval_name="credit-scoring-abababababab-12345678",
        approval_sha256="cd" * 32,
        strategy="canary",
        canary_percent=10,
    )
    assert _errors(REQUEST_CRD, request) == []
    rollback = rollback_request(
        namespace="team-a",
        name="rollback-credit-scoring-1",
        model_name="credit-scoring",
        requested_by="sre",
        reason="latency regression",
    )
    assert _errors(REQUEST_CRD, rollback) == []
    bad = copy.deepcopy(request)
    bad["spec"]["strategy"] = "blue-green"
    bad["spec"]["canaryPercent"] = 90
    bad["spec"]["model"]["sha256"] = "not-a-digest"
    errors = _errors(REQUEST_CRD, bad)
    assert len(errors) == 3, errors
