"""The integration stage's cluster path: an InferenceService created through the Kubernetes API,
waited for, tested at its URL and deleted.

There is no Kubernetes API server or KServe controller on these machines: the API is
tests/aiact/k8s_emulator.py (kmock's KubernetesEmulator over HTTP on 127.0.0.1, driven by the
official kubernetes client). What it does NOT check: no KServe controller reconciles the object
(no storage initializer downloads STORAGE_URI, no pod, no Knative or raw Deployment, no
networking), no RBAC, and the emulator enforces no InferenceService schema. So this test plays
the controller's part: when the InferenceService appears it patches its status Ready with an
address whose URL is a live local KServe ModelServer serving the same package, and the object
itself is validated offline against KServe's own CRD schema
(third_party/kserve/serving.kserve.io_inferenceservices.yaml).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from aiact.featureset import FeatureSplit
from aiact.model_package import ModelPackage
from aiact.transform import FittedTransform
from components.images import SERVING_IMAGE
from components.integration_testing import cluster, core, executor
from tests.aiact.k8s_emulator import EmulatedApiServer, emulated_api_server, json_schema

NAMESPACE = "aiact-integration"
MODEL_URI = "minio://mlpipeline/v2/artifacts/run-1/training/model"
CRD = (
    Path(__file__).resolve().parents[2]
    / "third_party/kserve/serving.kserve.io_inferenceservices.yaml"
)
FAST = core.ServingOptions(latency_requests=100, start_timeout_s=20.0)


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[tuple[EmulatedApiServer, Any]]:
    with emulated_api_server() as server:
        # Declared as the KServe CRD would declare it (kmock lists only declared resources).
        server.emulator.resources[f"{cluster.GROUP}/{cluster.VERSION}/{cluster.PLURAL}"] = {
            "namespaced": True,
            "kind": "InferenceService",
            "singular": "inferenceservice",
            "verbs": ["get", "list", "watch", "create", "patch", "delete"],
            "shortnames": ["isvc"],
            "categories": [],
            "subresources": ["status"],
        }
        # Pods, so that the stage's search for the predictor's log finds none (no controller).
        server.emulator.resources["v1/pods"] = {
            "namespaced": True,
            "kind": "Pod",
            "singular": "pod",
            "verbs": ["get", "list"],
            "shortnames": ["po"],
            "categories": [],
            "subresources": ["log"],
        }
        kubeconfig = server.kubeconfig(
            tmp_path / "kubeconfig", "system:serviceaccount:kubeflow:pipeline-runner", NAMESPACE
        )
        yield server, config.new_client_from_config(str(kubeconfig))


@pytest.fixture()
def pod(tmp_path: Path) -> Path:
    """A service-account mount, as the stage sees it in a pod."""
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    (mount / "token").write_text("token-system:serviceaccount:kubeflow:pipeline-runner")
    (mount / "namespace").write_text(NAMESPACE)
    return mount


def _services(api_client: Any) -> list[dict[str, Any]]:
    listed = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        cluster.GROUP, cluster.VERSION, NAMESPACE, cluster.PLURAL, _request_timeout=5
    )
    return [o for o in listed["items"] if o.get("kind") == "InferenceService"]


def _play_controller(api_client: Any, url: str, created: list[dict[str, Any]]) -> threading.Thread:
    """Wait for an InferenceService and mark it Ready at `url`, as KServe's controller would."""

    def run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            services = _services(api_client)
            if services:
                obj = services[0]
                created.append(obj)
                time.sleep(1.0)  # the stage polls a not-yet-ready object first
                client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
                    cluster.GROUP, cluster.VERSION, NAMESPACE, cluster.PLURAL,
                    obj["metadata"]["name"],
                    {"status": {
                        "url": f"http://{obj['metadata']['name']}.{NAMESPACE}.example.com",
                        "address": {"url": url},
                        "conditions": [{"type": "Ready", "status": "True"}],
                    }},
                    _request_timeout=5,
                )  # fmt: skip
                return
            time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_manifest_is_valid_under_kserves_own_crd_schema() -> None:
    body = cluster.manifest(
        name=cluster.service_name("ab" * 32),
        namespace=NAMESPACE,
        image=SERVING_IMAGE,
        model_uri=MODEL_URI,
        model_name="credit-scoring",
        model_sha256="ab" * 32,
        run_id="run-1",
        service_account="models-reader",
    )
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = json_schema(version["schema"]["openAPIV3Schema"])
    errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(body)]
    assert errors == []
    (container,) = body["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container" and container["image"] == SERVING_IMAGE
    assert {
        "name": "STORAGE_URI",
        "value": "s3://mlpipeline/v2/artifacts/run-1/training/model",
    } in (container["env"])
    assert container["args"][:2] == ["--model_dir", "/mnt/models"]
    # Something the schema refuses, so the check above can fail.
    broken = {**body, "spec": {"predictor": {"minReplicas": "one"}}}
    assert list(jsonschema.Draft4Validator(schema).iter_errors(broken))


def test_a_local_path_cannot_be_an_inference_service_storage_uri() -> None:
    with pytest.raises(cluster.ClusterSetupError, match="is not in object storage"):
        cluster.storage_uri("/tmp/model")


def test_in_a_pod_the_stage_tests_an_inference_service_and_deletes_it(
    tmp_path: Path,
    api: tuple[EmulatedApiServer, Any],
    pod: Path,
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    """The executor's pod path (`_serve` with a service-account mount) against the emulated
    API, with the controller's part played by the test (see the module docstring)."""
    _, api_client = api
    directory, package = clean_package
    holdout = clean_features[1]["test"]
    assert executor.in_cluster(pod) and not executor.in_cluster(tmp_path)
    created: list[dict[str, Any]] = []
    log = tmp_path / "server.log"
    # The predictor pod's server: the same package, as the storage initializer would fetch it.
    with core.local_model_server(
        directory, "credit-scoring", tmp_path / "pod.log", FAST
    ) as pod_server:
        controller = _play_controller(api_client, pod_server.base_url, created)
        served = executor._serve(
            environment=executor.KUBERNETES,
            model_dir=directory,
            model_uri=MODEL_URI,
            model_sha256="cd" * 32,
            model_name="credit-scoring",
            run_id="run-1",
            log_path=log,
            options=FAST,
            api_client=api_client,
            service_account_dir=pod,
        )
        with served as server:
            assert server.base_url == pod_server.base_url
            gate, evidence = core.run_integration_tests(
                server, package, holdout.raw, package.predict_proba(holdout.features),
                policy["integration"], FAST,
            )  # fmt: skip
        controller.join(5)
    assert gate.passed, [c.describe() for c in gate.breaches]
    assert evidence["regression"]["mismatched"] == 0
    (obj,) = created
    name = obj["metadata"]["name"]
    assert name.startswith("aiact-it-cdcdcdcdcd-") and obj["metadata"]["namespace"] == NAMESPACE
    assert obj["spec"]["predictor"]["containers"][0]["image"] == SERVING_IMAGE
    assert obj["metadata"]["annotations"]["aiact.eu/model-sha256"] == "cd" * 32
    assert _services(api_client) == [], "the InferenceService was not deleted"
    text = log.read_text()
    assert f"$ create InferenceService {NAMESPACE}/{name}" in text
    assert f"Ready at {pod_server.base_url}" in text
    assert f"$ deleted InferenceService {NAMESPACE}/{name}" in text
    assert "no predictor pod found" in text


def test_an_inference_service_that_never_gets_ready_fails_within_its_timeout_and_is_deleted(
    tmp_path: Path, api: tuple[EmulatedApiServer, Any]
) -> None:
    _, api_client = api
    body = cluster.manifest(
        name="aiact-it-never-ready",
        namespace=NAMESPACE,
        image=SERVING_IMAGE,
        model_uri=MODEL_URI,
        model_name="credit-scoring",
        model_sha256="ef" * 32,
        run_id="run-2",
    )
    started = time.monotonic()
    with (
        pytest.raises(core.ServingError, match=r"was not Ready within 3 s \(no Ready condition"),
        cluster.inference_service(
            api_client, body, tmp_path / "server.log", ready_timeout_s=3.0, poll_s=0.5
        ),
    ):
        pass
    assert time.monotonic() - started < 8
    with pytest.raises(ApiException) as missing:
        client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            cluster.GROUP, cluster.VERSION, NAMESPACE, cluster.PLURAL, "aiact-it-never-ready",
            _request_timeout=5,
        )  # fmt: skip
    assert missing.value.status == 404
