"""The compiled pipeline spec: fresh, self-hashed, GPU-requesting, credential-free, gated."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from components.images import VERSION
from pipelines.compliance_pipeline import Toleration, TrainingResources
from pipelines.spec import (
    SPEC_PATH,
    compile_documents,
    component_files,
    embedded_sha256,
    load_documents,
    render,
    spec_sha256,
)

STAGES = (
    "data-preparation",
    "feature-engineering",
    "training",
    "evaluation",
    "registration",
    "integration-testing",
    "approval",
    "deployment",
)
# Each stage consumes artefacts of the stage before it (a data dependency, not only ordering).
# Each gate's verdict task (gate-verdict, -2, -3, -4: data, features, evaluation, integration)
# reads its gate's report; the stage after the gate consumes the verdict.
CONSUMES = {
    "gate-verdict": {"data-preparation"},
    "feature-engineering": {"data-preparation", "gate-verdict"},
    "gate-verdict-2": {"feature-engineering"},
    "training": {"feature-engineering", "gate-verdict-2"},
    "evaluation": {"training", "feature-engineering"},
    "gate-verdict-3": {"evaluation"},
    "registration": {"training", "evaluation", "data-preparation", "gate-verdict-3"},
    "integration-testing": {"training", "registration", "feature-engineering"},
    "gate-verdict-4": {"integration-testing"},
    "approval": {"training", "evaluation", "integration-testing", "gate-verdict-4"},
    "deployment": {"training", "approval"},
}
VERDICTS = {
    "gate-verdict": "data_preparation",
    "gate-verdict-2": "feature_engineering",
    "gate-verdict-3": "evaluation",
    "gate-verdict-4": "integration_testing",
}


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return load_documents()


def _tasks(documents: list[dict[str, Any]]) -> dict[str, Any]:
    tasks: dict[str, Any] = documents[0]["root"]["dag"]["tasks"]
    return tasks


def test_committed_spec_equals_a_fresh_compile() -> None:
    assert SPEC_PATH.read_text() == render(compile_documents()), "run `aiact compile`"


def test_committed_component_files_equal_a_fresh_compile() -> None:
    """components/<stage>/{component.yaml,metadata.yaml,README.md} drift like the spec."""
    for path, text in component_files().items():
        assert path.is_file() and path.read_text() == text, f"{path}: run `aiact compile`"


def test_embedded_hash_is_the_spec_hash(documents: list[dict[str, Any]]) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", embedded_sha256(documents))
    assert embedded_sha256(documents) == spec_sha256(documents)
    documents[0]["root"]["dag"]["tasks"]["training"]["componentRef"]["name"] = "tampered"
    assert spec_sha256(documents) != embedded_sha256(documents)


def test_all_eight_stages_chained_by_artifacts(documents: list[dict[str, Any]]) -> None:
    tasks = _tasks(documents)
    assert set(tasks) == set(STAGES) | set(VERDICTS)
    for task, gate in VERDICTS.items():  # which gate each verdict task judges: a constant
        assert tasks[task]["inputs"]["parameters"]["gate"]["runtimeValue"]["constant"] == gate
    for task, producers in CONSUMES.items():
        artifacts = tasks[task]["inputs"]["artifacts"].values()
        consumed = {a["taskOutputArtifact"]["producerTask"] for a in artifacts}
        assert consumed == producers, task


def test_no_stage_is_cached(documents: list[dict[str, Any]]) -> None:
    for name, task in _tasks(documents).items():
        assert task["cachingOptions"].get("enableCache", False) is False, name


def _training_placement(documents: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training container's resources and its Kubernetes platform settings."""
    container = documents[0]["deploymentSpec"]["executors"]["exec-training"]["container"]
    kubernetes = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    others = [e for name, e in kubernetes.items() if name != "exec-training"]
    assert all("nodeSelector" not in e and "tolerations" not in e for e in others)
    return container["resources"], kubernetes["exec-training"]


def test_training_requests_one_gpu_and_resources(documents: list[dict[str, Any]]) -> None:
    resources, training = _training_placement(documents)
    accelerator = resources["accelerator"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu", "1")
    assert (resources["resourceCpuRequest"], resources["resourceCpuLimit"]) == ("4", "4")
    assert (resources["resourceMemoryRequest"], resources["resourceMemoryLimit"]) == ("16G", "16G")
    assert training["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert training["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_training_resources_are_configurable_at_compile_time() -> None:
    config = TrainingResources(
        cpu_request="8",
        cpu_limit="12",
        memory_request="32G",
        memory_limit="48G",
        accelerator_type="nvidia.com/gpu",
        accelerator_count=2,
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
        tolerations=(Toleration("dedicated", "Equal", "NoExecute", "ml-training"),),
    )
    documents = compile_documents(config)
    resources, training = _training_placement(documents)
    accelerator = resources["accelerator"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu", "2")
    assert (resources["resourceCpuRequest"], resources["resourceCpuLimit"]) == ("8", "12")
    assert (resources["resourceMemoryRequest"], resources["resourceMemoryLimit"]) == ("32G", "48G")
    assert training["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb"
    }
    assert training["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml-training", "effect": "NoExecute"}
    ]
    assert embedded_sha256(documents) != embedded_sha256(load_documents())
    cpu_only, _ = _training_placement(compile_documents(TrainingResources(accelerator_count=0)))
    assert "accelerator" not in cpu_only
    with pytest.raises(ValueError, match="accelerator_count"):
        TrainingResources(accelerator_count=-1)


def test_spec_contains_no_credentials() -> None:
    text = SPEC_PATH.read_text()
    for pattern in (
        r"AKIA[0-9A-Z]{16}",
        r"(?i)password\s*[:=]\s*\S+",
        r"(?i)(secret_access_key|token)\s*[:=]\s*\S{16,}",
    ):
        assert not re.search(pattern, text), pattern
    documents = list(yaml.safe_load_all(text))
    executors = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        for secret in executor.get("secretAsEnv", []):
            assert secret["secretName"] == "aiact-s3-credentials", name
    defaults = documents[0]["root"]["inputDefinitions"]["parameters"]
    assert defaults["metadata_uri"]["defaultValue"] == ""


def test_images_are_the_stage_images(documents: list[dict[str, Any]]) -> None:
    executors = documents[0]["deploymentSpec"]["executors"]
    images = {name: e["container"]["image"] for name, e in executors.items()}
    assert images["exec-training"].endswith(f"/aiact-training:{VERSION}")
    assert images["exec-data-preparation"].endswith(f"/aiact-data:{VERSION}")
    for executor in executors.values():
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command, "components must not install kfp at run time"
