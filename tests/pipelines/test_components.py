"""The per-component files (components/<stage>/{component.yaml,metadata.yaml,README.md}): fresh,
loadable, every input and output described; one stage run from its component.yaml under
kfp.local; and image pinning by digest."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import components, dsl

from aiact import lineage
from aiact.bundle import ARTICLES
from aiact.custody import GATE_REPORTS
from aiact.lineage import LineageStore, RunInfo
from aiact.stage import PIPELINE_NAME
from components.images import IMAGES, REGISTRY, VERSION, DigestError, load_digests, package_version
from pipelines.spec import (
    COMPONENT_FILES,
    COMPONENTS_DIR,
    SPEC_PATH,
    STAGES,
    SUPPORT_COMPONENTS,
    compile_documents,
    component_files,
    embedded_sha256,
    render,
    run_compile,
    spec_sha256,
)
from tests.chain import record_chain

FIXTURE_DIGESTS = {name: f"sha256:{index:064x}" for index, name in enumerate(IMAGES, start=1)}


@pytest.fixture(scope="module")
def generated() -> dict[Path, str]:
    return component_files()


def _image_refs(documents: list[dict[str, Any]]) -> dict[str, str]:
    executors = documents[0]["deploymentSpec"]["executors"]
    return {name: e["container"]["image"] for name, e in executors.items()}


def test_every_stage_has_its_generated_files(generated: dict[Path, str]) -> None:
    expected = {
        COMPONENTS_DIR / s / f for s in (*STAGES, *SUPPORT_COMPONENTS) for f in COMPONENT_FILES
    }
    assert set(generated) == expected


def test_committed_component_files_equal_a_fresh_compile(generated: dict[Path, str]) -> None:
    for path, text in generated.items():
        assert path.is_file() and path.read_text() == text, f"{path} is stale: run `aiact compile`"
    assert run_compile(check=True) == 0


@pytest.mark.parametrize("stage", STAGES)
def test_component_yaml_loads_with_every_input_described(stage: str) -> None:
    path = COMPONENTS_DIR / stage / "component.yaml"
    component = components.load_component_from_file(str(path))
    assert component.name == stage.replace("_", "-")
    spec = component.component_spec
    assert spec.description and spec.inputs and spec.outputs
    # kfp 2.13's loader drops input descriptions (InputSpec.from_ir_component_inputs_dict):
    # read them from the compiled definitions, the component's and the root's.
    document = yaml.safe_load(path.read_text())
    for definitions in (
        document["components"][f"comp-{component.name}"]["inputDefinitions"],
        document["root"]["inputDefinitions"],
    ):
        described = {
            name: entry.get("description")
            for kind in ("artifacts", "parameters")
            for name, entry in definitions.get(kind, {}).items()
        }
        assert set(described) == set(spec.inputs), stage
        for name, description in described.items():
            assert description, f"{stage}: input {name} has no description"


@pytest.mark.parametrize("stage", STAGES)
def test_metadata_and_readme_describe_every_input_and_output(stage: str) -> None:
    folder = COMPONENTS_DIR / stage
    metadata = yaml.safe_load((folder / "metadata.yaml").read_text())
    component = components.load_component_from_file(str(folder / "component.yaml"))
    spec = component.component_spec
    assert metadata["name"] == component.name
    assert metadata["stage"] == STAGES.index(stage) + 1
    assert metadata["image"] == IMAGES[metadata["image"].split("/")[-1].split(":")[0]]
    assert sorted(i["name"] for i in metadata["inputs"]) == sorted(spec.inputs)
    assert sorted(o["name"] for o in metadata["outputs"]) == sorted(spec.outputs)
    for entry in metadata["inputs"] + metadata["outputs"]:
        assert entry["description"], f"{stage}: {entry['name']} has no description"
    assert metadata["ai_act_articles"] and set(metadata["ai_act_articles"]) <= set(ARTICLES)
    root = COMPONENTS_DIR.parent
    assert metadata["tests"] and all((root / t).is_file() for t in metadata["tests"])
    readme = (folder / "README.md").read_text()
    assert metadata["description"] in readme
    for entry in metadata["inputs"] + metadata["outputs"]:
        assert f"| `{entry['name']}` |" in readme and entry["description"] in readme


def test_images_derive_from_the_package_version() -> None:
    assert package_version() == VERSION
    assert all(ref == f"{REGISTRY}/{name}:{VERSION}" for name, ref in IMAGES.items())
    root = COMPONENTS_DIR.parent
    python_files = [f for d in ("components", "pipelines") for f in (root / d).rglob("*.py")]
    repeated = [p for p in python_files if f'"{VERSION}"' in p.read_text()]
    assert not repeated, f"version string repeated in {repeated}"


def test_digest_file_pins_every_stage_image_and_nothing_else(tmp_path: Path) -> None:
    digests_path = tmp_path / "digests.json"
    digests_path.write_text(json.dumps(FIXTURE_DIGESTS))
    digests = load_digests(digests_path)
    tagged, pinned = compile_documents(), compile_documents(image_digests=digests)
    tagged_refs, pinned_refs = _image_refs(tagged), _image_refs(pinned)
    # One executor per stage and one per gate's verdict task.
    assert set(tagged_refs) == set(pinned_refs)
    assert len(pinned_refs) == len(STAGES) + len(GATE_REPORTS)
    for executor, reference in pinned_refs.items():
        name = tagged_refs[executor].split("/")[-1].split(":")[0]
        assert reference == f"{REGISTRY}/{name}@{FIXTURE_DIGESTS[name]}", executor
        assert re.fullmatch(rf"{re.escape(REGISTRY)}/aiact-\w+@sha256:[0-9a-f]{{64}}", reference)
    # The pinned spec carries its own (different) hash; apart from images and hash it is equal.
    assert embedded_sha256(pinned) == spec_sha256(pinned) != embedded_sha256(tagged)
    for documents in (tagged, pinned):
        for executor in documents[0]["deploymentSpec"]["executors"].values():
            executor["container"]["image"] = "IMAGE"
        root = documents[0]["root"]["inputDefinitions"]["parameters"]
        root["pipeline_spec_sha256"]["defaultValue"] = ""
    assert tagged == pinned
    # The committed files keep tags.
    assert "@sha256:" not in SPEC_PATH.read_text()
    assert SPEC_PATH.read_text() == render(compile_documents())
    for stage in STAGES:
        assert "@sha256:" not in (COMPONENTS_DIR / stage / "component.yaml").read_text()
    # Component files pin the same way.
    pinned_files = component_files(digests)
    for stage in STAGES:
        text = pinned_files[COMPONENTS_DIR / stage / "component.yaml"]
        [image] = re.findall(r"image: (\S+)", text)
        assert "@sha256:" in image and image.split("@")[1] in FIXTURE_DIGESTS.values()


def test_digest_file_must_cover_every_image(tmp_path: Path) -> None:
    path = tmp_path / "digests.json"
    path.write_text(json.dumps({"aiact-data": FIXTURE_DIGESTS["aiact-data"]}))
    with pytest.raises(
        DigestError, match="no digest for aiact-control, aiact-evaluation, aiact-training"
    ):
        load_digests(path)
    path.write_text(json.dumps({**FIXTURE_DIGESTS, "aiact-data": "sha256:short"}))
    with pytest.raises(DigestError, match="aiact-data"):
        load_digests(path)


def test_compile_cli_writes_pinned_components_elsewhere_untouched(tmp_path: Path) -> None:
    """`aiact compile --check --image-digests` compares against pinned text: the committed
    (tagged) files are stale for it, and nothing is written."""
    from aiact.cli import main

    path = tmp_path / "digests.json"
    path.write_text(json.dumps(FIXTURE_DIGESTS))
    before = {p: p.read_text() for p in component_files()}
    assert main(["compile", "--check", "--components", "--image-digests", str(path)]) == 1
    assert main(["compile", "--check", "--components"]) == 0
    assert {p: p.read_text() for p in before} == before


def test_approval_component_yaml_runs_under_kfp_local(tmp_path: Path) -> None:
    """The compiled approval component, loaded from its YAML, runs as the one stage of a
    pipeline under kfp.local on a recorded upstream chain, and records a demo approval."""
    from kfp import local

    metadata_uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    run_id = "component-yaml-run"
    run = RunInfo(run_id=run_id, pipeline_name=PIPELINE_NAME, environment="development")
    paths = record_chain(metadata_uri, run, tmp_path / "upstream")
    approval = components.load_component_from_file(
        str(COMPONENTS_DIR / "approval" / "component.yaml")
    )

    @dsl.pipeline(name="approval-only")
    def approval_only():  # no return annotation: KFP would read "None" as an output
        model = dsl.importer(artifact_uri=str(paths["model"]), artifact_class=dsl.Model)
        evaluation = dsl.importer(
            artifact_uri=str(paths["evaluation_report"]), artifact_class=dsl.Artifact
        )
        integration = dsl.importer(
            artifact_uri=str(paths["integration_report"]), artifact_class=dsl.Artifact
        )
        verdict = dsl.importer(
            artifact_uri=str(paths["integration_testing_verdict"]), artifact_class=dsl.Artifact
        )
        approval(
            model=model.output,
            evaluation_report=evaluation.output,
            integration_report=integration.output,
            integration_verdict=verdict.output,
            model_name="credit-scoring",
            approval_backend=f"local:{tmp_path / 'approvals'}",
            requested_by="tester",
            approver_group="aiact-approvers",
            demo_approver="dana",
            timeout_s=30.0,
            run_id=run_id,
            metadata_uri=metadata_uri,
        ).set_caching_options(False)

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "pipeline_root"),
        raise_on_error=True,
    )
    approval_only()
    store = LineageStore.connect(metadata_uri)
    stages = {e.stage: e.state for e in store.executions_of_run(run_id)}
    assert stages.get("approval") == "COMPLETE", stages
    records = list((tmp_path / "pipeline_root").rglob("approval"))
    assert records, "the approval stage wrote no output artefact"


@pytest.mark.slow
def test_every_component_yaml_runs_as_a_one_task_pipeline(tmp_path: Path) -> None:
    """Each stage's compiled component.yaml, loaded from its file, runs as the only task of a
    pipeline under kfp.local (SubprocessRunner), one after the other in one run id: each
    one-task pipeline imports the artefacts the previous ones recorded in MLMD (read back by
    role), so every stage re-verifies the chain of custody the earlier components built."""
    from kfp import local

    from aiact.custody import GATE_REPORTS, Verifier, verdict_stage
    from aiact.refdata import write_reference_dataset
    from tests.chain import FAST_HYPERPARAMETERS

    metadata_uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    run_id = "component-runs"
    source = write_reference_dataset(tmp_path / "data", rows=3000, seed=7)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "pipeline_root"),
        raise_on_error=True,
    )
    store = LineageStore.connect(metadata_uri)
    common = {"run_id": run_id, "metadata_uri": metadata_uri}
    recorded: dict[str, str] = {}  # role -> URI of the artefact an earlier stage wrote

    def imported(role: str, kind: Any) -> Any:
        return dsl.importer(artifact_uri=recorded[role], artifact_class=kind).output

    calls: dict[str, Any] = {
        "data_preparation": lambda c: c(
            source_uri=str(source.data_path),
            data_card_uri=str(source.data_card_path),
            use_case_uri="",
            gate_policy={},
            code_commit="",
            pipeline_spec_sha256="",
            environment="",
            baseline_dataset_uri="",
            submission_id="",
            **common,
        ),
        "feature_engineering": lambda c: c(
            dataset=imported("dataset", dsl.Dataset),
            data_verdict=imported("data_preparation_verdict", dsl.Artifact),
            use_case_uri="",
            gate_policy={},
            seed=1,
            **common,
        ),
        "training": lambda c: c(
            feature_set=imported("feature_set", dsl.Dataset),
            transform=imported("transform", dsl.Artifact),
            feature_verdict=imported("feature_engineering_verdict", dsl.Artifact),
            hyperparameters=FAST_HYPERPARAMETERS,
            seed=0,
            model_name="",
            use_case_uri="",
            device="cpu",
            **common,
        ),
        "evaluation": lambda c: c(
            model=imported("model", dsl.Model),
            feature_set=imported("feature_set", dsl.Dataset),
            gate_policy={},
            use_case_uri="",
            **common,
        ),
        "registration": lambda c: c(
            model=imported("model", dsl.Model),
            evaluation_report=imported("evaluation_report", dsl.Artifact),
            evaluation_verdict=imported("evaluation_verdict", dsl.Artifact),
            dataset=imported("dataset", dsl.Dataset),
            **common,
        ),
        "integration_testing": lambda c: c(
            model=imported("model", dsl.Model),
            registration=imported("registration", dsl.Artifact),
            feature_set=imported("feature_set", dsl.Dataset),
            gate_policy={},
            use_case_uri="",
            **common,
        ),
        "approval": lambda c: c(
            model=imported("model", dsl.Model),
            evaluation_report=imported("evaluation_report", dsl.Artifact),
            integration_report=imported("integration_report", dsl.Artifact),
            integration_verdict=imported("integration_testing_verdict", dsl.Artifact),
            model_name="",
            approval_backend=f"local:{tmp_path / 'approvals'}",
            requested_by="tester",
            approver_group="",
            demo_approver="dana",
            timeout_s=30.0,
            **common,
        ),
        "deployment": lambda c: c(
            model=imported("model", dsl.Model),
            approval=imported("approval", dsl.Artifact),
            strategy="canary",
            canary_percent=10,
            ledger_uri=f"file://{tmp_path / 'ledger'}",
            **common,
        ),
    }
    assert list(calls) == list(STAGES)

    def verdict_of(gate: str) -> Any:
        return lambda c: c(gate=gate, report=imported(GATE_REPORTS[gate], dsl.Artifact), **common)

    def one_task(stage: str, call: Any = None, folder: str = "") -> Any:
        call = call or calls[stage]
        component = components.load_component_from_file(
            str(COMPONENTS_DIR / (folder or stage) / "component.yaml")
        )

        @dsl.pipeline(name=f"{stage.replace('_', '-')}-only")
        def pipeline():  # no return annotation: KFP would read "None" as an output
            call(component).set_caching_options(False)

        return pipeline

    for stage in calls:
        one_task(stage)()
        with Verifier(store) as verifier:
            [link] = [link for link in verifier.links_of_run(run_id) if link.stage == stage]
        assert link.state == "COMPLETE", (stage, link.properties.get("error"))
        recorded.update({role: artifact.uri for role, artifact in link.outputs.items()})
        if stage in GATE_REPORTS:  # the gate's verdict task, from its own component.yaml
            name = verdict_stage(stage)
            one_task(name, verdict_of(stage), "gate_verdict")()
            with Verifier(store) as verifier:
                [link] = [link for link in verifier.links_of_run(run_id) if link.stage == name]
            assert link.state == "COMPLETE", (name, link.properties.get("error"))
            recorded.update({role: artifact.uri for role, artifact in link.outputs.items()})
    [model] = store.artifacts_of_run(run_id, lineage.MODEL)
    assert lineage.properties_of(model)["stage"] == "production"
