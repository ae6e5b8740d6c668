"""`aiact verify-spec`: the compiled spec's DAG proves the declared gate structure.

(No `from __future__ import annotations`: KFP reads the test pipeline's annotations.)
"""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiact.cli import main
from aiact.specverify import load_structure, verify, verify_file

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "pipelines" / "compliance_pipeline.yaml"
STRUCTURE = ROOT / "pipelines" / "compliance_structure.yaml"


@pytest.fixture()
def documents() -> list[Any]:
    return [d for d in yaml.safe_load_all(SPEC.read_text()) if d is not None]


def _tasks(documents: list[Any]) -> dict[str, Any]:
    tasks: dict[str, Any] = documents[0]["root"]["dag"]["tasks"]
    return tasks


def _violations(documents: list[Any], structure: Path = STRUCTURE) -> list[str]:
    platform = documents[1] if len(documents) > 1 else {}
    return verify(documents[0], platform, load_structure(structure)).violations


def _artifact(producer: str, key: str) -> dict[str, Any]:
    return {"taskOutputArtifact": {"outputArtifactKey": key, "producerTask": producer}}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(["verify-spec", *argv])
    return code, capsys.readouterr().out.splitlines()


def test_committed_spec_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, str(SPEC))
    assert code == 0
    assert len(out) == 1 and out[0].startswith("verified: 12 tasks, 1 deployment(s)")
    assert verify_file(SPEC, STRUCTURE).ok


def _around_evaluation(documents: list[Any]) -> None:
    """Registration fed the training report and the FEATURE gate's verdict (gate-verdict-2)
    instead of the evaluation's report and verdict."""
    inputs = _tasks(documents)["registration"]["inputs"]["artifacts"]
    inputs["evaluation_report"] = _artifact("training", "training_report")
    inputs["evaluation_verdict"] = _artifact("gate-verdict-2", "verdict")


def test_cli_names_the_path(tmp_path: Path, documents: list[Any], capsys: Any) -> None:
    _around_evaluation(documents)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    code, out = _run(capsys, str(spec), "--structure", str(STRUCTURE))
    assert code == 1
    assert (
        "path deployment <- approval <- integration-testing <- registration <- training "
        "skips evaluation-verdict"
    ) in out


def test_removed_gate_with_consumers_rewired(documents: list[Any]) -> None:
    tasks = _tasks(documents)
    del tasks["registration"]
    tasks["integration-testing"]["inputs"]["artifacts"]["registration"] = _artifact(
        "evaluation", "evaluation_report"
    )
    tasks["integration-testing"]["dependentTasks"].remove("registration")
    violations = _violations(documents)
    assert "no task runs the registration gate" in violations
    assert (
        "path deployment <- approval <- integration-testing <- evaluation skips registration"
        in violations
    )


def test_edge_rewired_around_evaluation(documents: list[Any]) -> None:
    _around_evaluation(documents)
    assert _violations(documents) == [
        # The evaluation's report reaches the deployment without its verdict task ...
        "path deployment <- approval <- evaluation skips evaluation-verdict",
        # ... and what registration registers was never judged by the evaluation gate.
        "path deployment <- approval <- integration-testing <- registration <- training "
        "skips evaluation-verdict",
    ]


def test_dependent_tasks_alone_do_not_count(documents: list[Any]) -> None:
    """Approval listed in dependentTasks but not consumed: the deployment is not behind it."""
    deployment = _tasks(documents)["deployment"]
    deployment["inputs"]["artifacts"]["approval"] = _artifact(
        "integration-testing", "integration_report"
    )
    assert "approval" in deployment["dependentTasks"]
    violations = _violations(documents)
    assert "path deployment <- integration-testing skips approval" in violations
    assert "path deployment <- approval skips deployment" not in violations


def test_caching_switched_on_for_a_gate(documents: list[Any]) -> None:
    _tasks(documents)["evaluation"]["cachingOptions"] = {"enableCache": True}
    assert _violations(documents) == [
        "task evaluation (evaluation) has caching enabled (cachingOptions.enableCache)"
    ]


def test_gate_moved_after_deployment(documents: list[Any]) -> None:
    tasks = _tasks(documents)
    # Integration testing now tests what the deployment... after it ran: it consumes the
    # deployment's record, and approval is fed the registration instead.
    tasks["integration-testing"]["inputs"]["artifacts"]["registration"] = _artifact(
        "deployment", "deployment"
    )
    for name in ("integration_report", "integration_verdict"):
        tasks["approval"]["inputs"]["artifacts"][name] = _artifact("registration", "registration")
    violations = _violations(documents)
    assert "path deployment <- approval <- registration skips integration" in violations
    assert any(
        v.startswith("path integration-testing <- deployment runs integration after deployment")
        for v in violations
    ), violations


def test_renamed_gate_still_verifies(documents: list[Any]) -> None:
    tasks = _tasks(documents)
    tasks["quality-check"] = tasks.pop("evaluation")
    for task in tasks.values():
        for source in (task.get("inputs") or {}).get("artifacts", {}).values():
            ref = source.get("taskOutputArtifact") or {}
            if ref.get("producerTask") == "evaluation":
                ref["producerTask"] = "quality-check"
        deps = task.get("dependentTasks") or []
        task["dependentTasks"] = ["quality-check" if d == "evaluation" else d for d in deps]
    tasks["quality-check"]["taskInfo"]["name"] = "quality-check"
    assert _violations(documents) == []
    # ... and a task merely NAMED like a gate is not one: renaming cannot fool the check.
    tasks["evaluation"] = copy.deepcopy(tasks["quality-check"])
    tasks["evaluation"]["componentRef"]["name"] = "comp-training"
    tasks["registration"]["inputs"]["artifacts"]["evaluation_report"] = _artifact(
        "evaluation", "training_report"
    )
    violations = _violations(documents)
    assert any(v.endswith("skips evaluation") for v in violations), violations


def test_missing_accelerator(documents: list[Any]) -> None:
    container = documents[0]["deploymentSpec"]["executors"]["exec-training"]["container"]
    del container["resources"]["accelerator"]
    assert _violations(documents) == [
        "task training (training) requests no accelerator (resources.accelerator with a "
        "literal count >= 1)"
    ]
    container["resourceSpec"] = {"accelerator": {"resourceType": "nvidia.com/gpu", "count": "1"}}
    assert _violations(documents) == []


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("default", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("env", "postgres://u:x@db?password=hunter2"),
        ("env-private-key", "-----BEGIN RSA PRIVATE KEY-----\nMIIE..."),
        ("token", "ghxQ3b9ZkR2mLp7VtY4nW8sJcF1dH6aE0uKiOgBzXyNq5rT"),
    ],
)
def test_inlined_credential(documents: list[Any], where: str, value: str) -> None:
    spec = documents[0]
    if where == "default":
        spec["root"]["inputDefinitions"]["parameters"]["aws_secret_access_key"] = {
            "defaultValue": value,
            "parameterType": "STRING",
        }
        expected = "credential inlined in root parameter aws_secret_access_key default"
    elif where == "token":
        spec["root"]["inputDefinitions"]["parameters"]["endpoint_options"] = {
            "defaultValue": {"header": value},
            "parameterType": "STRUCT",
        }
        expected = "credential inlined in root parameter endpoint_options default"
    else:
        container = spec["deploymentSpec"]["executors"]["exec-deployment"]["container"]
        container["env"] = [{"name": "DB_URL", "value": value}]
        expected = "credential inlined in executor exec-deployment env DB_URL"
    violations = _violations(documents)
    assert len(violations) == 1 and violations[0].startswith(expected), violations


def test_secret_references_and_digests_are_not_credentials(documents: list[Any]) -> None:
    """The committed spec maps AWS_SECRET_ACCESS_KEY from a Secret and carries a sha256 default:
    neither is an inlined credential."""
    assert "AWS_SECRET_ACCESS_KEY" in yaml.safe_dump(documents[1])
    assert _violations(documents) == []


SHAPE_STRUCTURE = """
gates:
  - {name: prep, image: 'example\\.org/prep:', command: 'def prep\\(', cache_off: true}
  - name: train
    image: 'example\\.org/train:'
    command: 'def train\\('
    cache_off: true
    accelerator: true
  - {name: check, image: 'example\\.org/check:', command: 'def check\\(', cache_off: true}
  - {name: ship, image: 'example\\.org/ship:', command: 'def ship\\(', cache_off: true}
"""


def _compile_shape(path: Path, *, gated: bool) -> Path:
    """A pipeline of another shape: training inside a sub-DAG (a nested pipeline), the ship
    step inside a condition on the check's verdict (or, `gated=False`, not behind it)."""
    from kfp import compiler, dsl
    from kfp.dsl import Dataset, Input, Model, Output

    @dsl.component(base_image="example.org/prep:1")
    def prep(data: Output[Dataset]) -> None:
        Path(data.path).write_text("x")

    @dsl.component(base_image="example.org/train:1")
    def train(data: Input[Dataset], model: Output[Model]) -> None:
        Path(model.path).write_text(Path(data.path).read_text())

    @dsl.component(base_image="example.org/check:1")
    def check(model: Input[Model]) -> bool:
        return bool(model.path)

    @dsl.component(base_image="example.org/ship:1")
    def ship(model: Input[Model]) -> None:
        print(model.uri)

    @dsl.pipeline
    def trained(data: Input[Dataset]) -> Model:
        task = train(data=data).set_caching_options(False)
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        return task.outputs["model"]

    @dsl.pipeline(name="shape")
    def shape() -> None:
        data = prep().set_caching_options(False)
        model = trained(data=data.outputs["data"])
        verdict = check(model=model.output).set_caching_options(False)
        if gated:
            with dsl.If(verdict.output == True):  # noqa: E712 (a KFP condition)
                ship(model=model.output).set_caching_options(False)
        else:
            ship(model=model.output).set_caching_options(False)

    compiler.Compiler().compile(shape, str(path))
    return path


def test_another_shape_with_sub_dag_and_condition(tmp_path: Path) -> None:
    structure = tmp_path / "structure.yaml"
    structure.write_text(SHAPE_STRUCTURE)
    gated = verify_file(_compile_shape(tmp_path / "gated.yaml", gated=True), structure)
    assert gated.violations == []
    assert gated.summary.startswith("verified: 4 tasks, 1 deployment(s)")
    ungated = verify_file(_compile_shape(tmp_path / "ungated.yaml", gated=False), structure)
    assert ungated.violations == ["path ship <- trained/train skips check"]


def test_another_shape_default_caching_is_refused(tmp_path: Path) -> None:
    structure = tmp_path / "structure.yaml"
    structure.write_text(SHAPE_STRUCTURE)
    path = _compile_shape(tmp_path / "gated.yaml", gated=True)
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    documents[0]["components"]["comp-trained"]["dag"]["tasks"]["train"]["cachingOptions"] = {
        "enableCache": True
    }
    assert _violations(documents, structure) == [
        "task trained/train (train) has caching enabled (cachingOptions.enableCache)"
    ]


def test_unreadable_spec_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelineInfo: {name: x}\n")
    assert main(["verify-spec", str(bad)]) == 2
    assert "not a compiled KFP v2 pipeline spec" in capsys.readouterr().err


def test_a_verdict_task_whose_gate_is_a_run_parameter_is_no_verdict(documents: list[Any]) -> None:
    """The gate a verdict task judges must be a literal of the compiled DAG: wired to a run
    parameter instead (which a submitter could set to another gate), the task no longer counts
    as the evaluation gate's verdict, and the deployment is not behind it."""
    task = _tasks(documents)["gate-verdict-3"]
    task["inputs"]["parameters"]["gate"] = {"componentInputParameter": "model_name"}
    violations = _violations(documents)
    assert "no task runs the evaluation-verdict gate" in violations, violations
    # Told apart by the constant, not by accident: every verdict task is still one gate's.
    assert not any("several gates" in v for v in violations), violations
