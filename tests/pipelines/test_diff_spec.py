"""`aiact diff-spec`: compliance diff of compiled specs, gate policies and platform floors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiact.cli import main
from aiact.specdiff import LOOSENED, REMOVED, TIGHTENED, Diff, diff_files

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "pipelines" / "compliance_pipeline.yaml"
POLICY = ROOT / "aiact" / "usecases" / "credit" / "policy.yaml"
PLATFORM = ROOT / "manifests" / "base" / "platform.yaml"


def _spec() -> list[Any]:
    return [d for d in yaml.safe_load_all(SPEC.read_text()) if d is not None]


def _write(path: Path, documents: list[Any]) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def _tasks(documents: list[Any]) -> dict[str, Any]:
    tasks: dict[str, Any] = documents[0]["root"]["dag"]["tasks"]
    return tasks


def _remove_registration(documents: list[Any]) -> None:
    """Drop the registration gate and rewire its consumer (integration testing)."""
    tasks = _tasks(documents)
    del tasks["registration"]
    consumer = tasks["integration-testing"]
    del consumer["inputs"]["artifacts"]["registration"]
    consumer["dependentTasks"] = [t for t in consumer["dependentTasks"] if t != "registration"]


def _diff(capsys: pytest.CaptureFixture[str], old: Path, new: Path, *extra: str) -> tuple[int, str]:
    code = main(["diff-spec", str(old), str(new), *extra])
    return code, capsys.readouterr().out


def test_removed_gate_and_loosened_fairness_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = _spec()
    _remove_registration(documents)
    policy = yaml.safe_load(POLICY.read_text())
    policy["evaluation"]["fairness"]["sex"]["max_equalized_odds_difference"] = 0.3
    documents[0]["root"]["inputDefinitions"]["parameters"]["gate_policy"]["defaultValue"] = policy
    new = _write(tmp_path / "new.yaml", documents)

    code, out = _diff(capsys, SPEC, new)
    assert code == 1
    assert out.startswith("## Compliance diff (compiled pipeline spec)")
    assert "| **loosened** | gate removed | `registration` |" in out
    assert "`gate_policy.evaluation.fairness.sex.max_equalized_odds_difference`" in out
    assert "| 0.15 | 0.3 |" in out
    diff = diff_files(SPEC, new)
    fairness = [c for c in diff.relevant if "fairness" in c.subject]
    assert [(c.effect, c.old, c.new) for c in fairness] == [(LOOSENED, "0.15", "0.3")]
    # Integration testing followed evaluation only through registration: that order is lost.
    orders = [
        (c.subject, c.old, c.new, c.effect) for c in diff.changes if c.category == "gate order"
    ]
    # (and, downstream of it, the order after the evaluation gate's verdict task, #3).
    assert ("integration_testing", "after evaluation", "no longer after evaluation", LOOSENED) in (
        orders
    )
    assert {old for _, old, _, _ in orders} == {"after evaluation", "after gate_verdict#3"}
    assert {subject for subject, _, _, _ in orders} == {
        "integration_testing",
        "gate_verdict#4",
        "approval",
        "deployment",
    }
    assert {effect for *_, effect in orders} == {LOOSENED}


def test_identical_specs_have_no_compliance_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_of_spec = _write(tmp_path / "same.yaml", _spec())
    code, out = _diff(capsys, SPEC, copy_of_spec)
    assert code == 0
    assert "**No compliance-relevant change.**" in out
    assert diff_files(SPEC, copy_of_spec).changes == []
    code, out = _diff(capsys, SPEC, copy_of_spec, "--format", "text")
    assert code == 0
    assert "no compliance-relevant change" in out


def test_renamed_gate_task_is_not_a_removed_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = _spec()
    tasks = _tasks(documents)
    tasks["evaluate-model"] = tasks.pop("evaluation")
    tasks["evaluate-model"]["taskInfo"]["name"] = "evaluate-model"
    for task in tasks.values():
        task["dependentTasks"] = [
            "evaluate-model" if t == "evaluation" else t for t in task.get("dependentTasks", [])
        ]
        for wiring in task.get("inputs", {}).get("artifacts", {}).values():
            output = wiring.get("taskOutputArtifact", {})
            if output.get("producerTask") == "evaluation":
                output["producerTask"] = "evaluate-model"
    new = _write(tmp_path / "renamed.yaml", documents)

    code, out = _diff(capsys, SPEC, new)
    assert code == 0, out
    assert "removed" not in out and "gate added" not in out
    [renamed] = diff_files(SPEC, new).changes
    assert (renamed.category, renamed.subject, renamed.old, renamed.new) == (
        "task renamed",
        "evaluation",
        "evaluation",
        "evaluate-model",
    )


def test_caching_switched_on_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = _spec()
    _tasks(documents)["training"]["cachingOptions"] = {"enableCache": True}
    new = _write(tmp_path / "cached.yaml", documents)

    code, out = _diff(capsys, SPEC, new)
    assert code == 1
    assert "| **loosened** | caching | `training` | cache off | cache on |" in out


def test_image_resources_and_gate_order(tmp_path: Path) -> None:
    documents = _spec()
    executors = documents[0]["deploymentSpec"]["executors"]
    executors["exec-evaluation"]["container"]["image"] = "example.org/evaluation:evil"
    executors["exec-training"]["container"]["resources"]["cpuLimit"] = 8.0
    # Deployment consumes the model only: it no longer follows approval.
    deployment = _tasks(documents)["deployment"]
    del deployment["inputs"]["artifacts"]["approval"]
    deployment["dependentTasks"] = ["training"]
    diff = diff_files(SPEC, _write(tmp_path / "new.yaml", documents))
    found = {(c.category, c.subject, c.relevant) for c in diff.changes}
    assert ("image", "evaluation", True) in found
    assert ("resources", "training cpuLimit", False) in found
    assert ("gate order", "deployment", True) in found
    orders = {c.old: c.effect for c in diff.changes if c.category == "gate order"}
    assert orders["after approval"] == LOOSENED


def _policy_diff(tmp_path: Path, source: Path, edit: Any) -> Diff:
    loaded = yaml.safe_load(source.read_text())
    edited = copy.deepcopy(loaded)
    edit(edited)
    new = tmp_path / source.name
    new.write_text(yaml.safe_dump(edited, sort_keys=False))
    return diff_files(source, new)


def test_policy_loosened_and_tightened_are_told_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(policy: dict[str, Any]) -> None:
        policy["evaluation"]["fairness"]["age_band"]["min_demographic_parity_ratio"] = 0.4
        policy["evaluation"]["min_accuracy"] = 0.75
        policy["evaluation"]["drift"]["require_production_reference"] = True
        del policy["data_quality"]["bias"]["age_band"]["max_favourable_rate_difference"]
        policy["integration"]["max_latency_ms_p95"] = 800

    diff = _policy_diff(tmp_path, POLICY, edit)
    assert diff.kind == "policy"
    effects = {c.subject: (c.effect, c.old, c.new) for c in diff.changes}
    assert effects == {
        "evaluation.fairness.age_band.min_demographic_parity_ratio": (LOOSENED, "0.5", "0.4"),
        "evaluation.min_accuracy": (TIGHTENED, "0.7", "0.75"),
        "evaluation.drift.require_production_reference": (TIGHTENED, "false", "true"),
        "data_quality.bias.age_band.max_favourable_rate_difference": (LOOSENED, "0.35", "-"),
        "integration.max_latency_ms_p95": (LOOSENED, "500", "800"),
    }
    assert [c.category for c in diff.changes if c.new == "-"] == [f"threshold {REMOVED}"]
    code, out = _diff(capsys, POLICY, tmp_path / POLICY.name)
    assert code == 1
    assert (
        "| **loosened** | threshold | `evaluation.fairness.age_band.min_demographic_parity_ratio`"
    )
    assert "| 0.5 | 0.4 |" in out and "| 0.7 | 0.75 |" in out
    code, out = _diff(capsys, POLICY, tmp_path / POLICY.name, "--format", "text")
    assert "LOOSENED   threshold: integration.max_latency_ms_p95: 500 -> 800" in out


def test_platform_floor(tmp_path: Path) -> None:
    def edit(platform: dict[str, Any]) -> None:
        platform["policy_floor"]["evaluation"]["fairness"]["sex"][
            "min_demographic_parity_ratio"
        ] = 0.9
        platform["policy_floor"]["evaluation"]["min_f1"] = 0.6
        platform["defaults"]["required_approvals"] = 1

    diff = _policy_diff(tmp_path, PLATFORM, edit)
    assert diff.kind == "platform"
    effects = {c.subject: (c.effect, c.old, c.new) for c in diff.changes}
    assert effects == {
        "policy_floor.evaluation.fairness.sex.min_demographic_parity_ratio": (
            TIGHTENED,
            "0.8",
            "0.9",
        ),
        "policy_floor.evaluation.min_f1": (LOOSENED, "0.75", "0.6"),
        "defaults.required_approvals": (LOOSENED, "2", "1"),
    }


def test_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff-spec", str(SPEC), str(POLICY)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a compiled pipeline spec but" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1,\n")
    assert main(["diff-spec", str(broken), str(broken)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["diff-spec", str(tmp_path / "missing.yaml"), str(SPEC)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
