"""Reuse of completed stage executions (aiact.reuse) and content-addressed outputs
(aiact.storage), with the real stage executors in this process (tests/chain.py) on a real
SQLite MLMD store: a second run with the same inputs reuses data preparation, feature
engineering and training, records the reuse, and verifies like a computed run; deleting the
first run's folder breaks neither run's evidence."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiact import lineage
from aiact.custody import CustodyError, Verifier, verdict_stage
from aiact.evidence import NOT_PRODUCED
from aiact.hashing import sha256_file, sha256_path
from aiact.lineage import ArtifactRecord, LineageStore, RunInfo, properties_of
from aiact.policy import GateFailed
from aiact.reuse import NEVER_REUSED, REUSABLE_STAGES, ReuseError, image_identity
from aiact.stage import StageContext
from aiact.storage import is_object_uri, keep_object, object_store_root, object_uri
from tests.chain import Chain

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Runs:
    root: Path
    uri: str
    first: Chain
    second: Chain

    def store_copy(self, directory: Path) -> str:
        target = directory / "mlmd.sqlite"
        shutil.copyfile(self.root / "mlmd.sqlite", target)
        return f"sqlite://{target}"


def _executions(uri: str, run_id: str) -> dict[str, lineage.ExecutionRecord]:
    return {e.stage: e for e in LineageStore.connect(uri).executions_of_run(run_id)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """`first` computes data preparation, feature engineering and training; `second`, with
    the same data, policy, seed and hyperparameters, goes on through registration."""
    root = tmp_path_factory.mktemp("reuse")
    uri = f"sqlite://{root / 'mlmd.sqlite'}"
    first = Chain(root, uri, "first")
    first.prepare()
    first.engineer()
    first.train()
    second = Chain(root, uri, "second")
    second.prepare()
    second.engineer()
    second.train()
    second.evaluate()
    second.register()
    return Runs(root, uri, first, second)


def test_a_second_run_reuses_the_completed_stages_and_says_so(runs: Runs) -> None:
    first, second = _executions(runs.uri, "first"), _executions(runs.uri, "second")
    for stage in REUSABLE_STAGES:
        computed, reused = first[stage], second[stage]
        assert "reused_execution_id" not in computed.properties
        assert reused.state == "COMPLETE" and reused.id != computed.id
        assert reused.properties["reused_execution_id"] == computed.id
        assert reused.properties["reused_from_run"] == "first"
        assert reused.properties["reuse_key"] == computed.properties["reuse_key"]
        # The evidence of the original computation travels with the reuse.
        for name in ("verdict", "gate", "statistics_before", "output_version"):
            if name in computed.properties:
                assert reused.properties[name] == computed.properties[name], (stage, name)
    # Verdict tasks and the stages after training are never reused.
    for stage, execution in second.items():
        if stage not in REUSABLE_STAGES:
            assert "reused_execution_id" not in execution.properties, stage
    # The same artefacts (one per content digest and type), copied into the new run's folder.
    for name in ("dataset", "features", "transform", "model"):
        assert sha256_path(runs.first.paths[name]) == sha256_path(runs.second.paths[name])
    store = LineageStore.connect(runs.uri)
    for type_name in (lineage.DATASET, lineage.FEATURE_SET, lineage.MODEL):
        assert len(store.store.get_artifacts_by_type(type_name)) == 1
    # The HTML report, written only by the computing execution, was restored from its object.
    html = runs.second.out("validation_report.html")
    assert html.read_bytes() == runs.first.out("validation_report.html").read_bytes()


def test_the_key_covers_inputs_parameters_policy_code_and_image(runs: Runs) -> None:
    training = _executions(runs.uri, "second")["training"]
    document = json.loads(str(training.properties["reuse_key_json"]))
    assert set(document) == {
        "stage",
        "inputs",
        "parameters",
        "policy_sha256",
        "code_commit",
        "image",
    }
    assert set(document["inputs"]) == {"use_case", "feature_set", "transform"}
    assert verdict_stage("feature_engineering") not in document["inputs"]
    assert document["parameters"]["seed"] == runs.second.seed
    assert document["parameters"]["hyperparameters"]["max_epochs"] == 12
    assert document["parameters"]["device"] == "cpu"
    image = document["image"]
    assert image == image_identity()
    assert image["lock_sha256"] == sha256_file(REPO / "requirements" / "constraints.txt")
    assert len(image["environment_sha256"]) == 64 and len(image["source_sha256"]) == 64
    data = json.loads(
        str(_executions(runs.uri, "second")["data_preparation"].properties["reuse_key_json"])
    )
    assert data["policy_sha256"] and set(data["inputs"]) >= {"source", "data_card", "gate_policy"}


def test_a_reused_run_verifies_like_a_computed_one(runs: Runs) -> None:
    store = LineageStore.connect(runs.uri)
    model = sha256_path(runs.second.paths["model"])
    with Verifier(store) as verifier:
        custody = verifier.verify_model(model, run_id="second", through="registration")
    reused = {e.id for e in _executions(runs.uri, "second").values()}
    assert {link.execution_id for link in custody.links.values()} <= reused
    assert "every artefact re-hashed from storage equals its record" in custody.checks


def test_deleting_the_first_runs_folder_breaks_no_evidence(runs: Runs, tmp_path: Path) -> None:
    uri = runs.store_copy(tmp_path)
    store = LineageStore.connect(uri)
    [dataset] = store.store.get_artifacts_by_type(lineage.DATASET)
    # Shared by two runs: the record names the content-addressed object, not a run's folder.
    assert is_object_uri(dataset.uri) and dataset.uri.startswith(str(runs.root / "objects"))
    assert properties_of(dataset)["first_uri"] == str(runs.first.paths["dataset"])
    model = sha256_path(runs.second.paths["model"])
    moved = runs.root / "first-deleted"
    (runs.root / "first").rename(moved)
    try:
        with Verifier(store) as verifier:
            assert verifier.verify_model(model, run_id="second", through="registration")
        # The first run's own (unshared) evidence lay only in its folder, and is gone with it.
        with Verifier(store) as verifier, pytest.raises(CustodyError, match="cannot be read"):
            verifier.verify_model(model, run_id="first", through="training")
    finally:
        moved.rename(runs.root / "first")


def test_a_changed_parameter_recomputes_that_stage_only(runs: Runs, tmp_path: Path) -> None:
    uri = runs.store_copy(tmp_path)
    other = Chain(runs.root, uri, "wider", hyperparameters={"max_epochs": 12, "hidden_units": [8]})
    other.prepare()
    other.engineer()
    other.train()
    executions = _executions(uri, "wider")
    assert executions["data_preparation"].properties["reused_from_run"] == "first"
    assert executions["feature_engineering"].properties["reused_from_run"] == "first"
    training = executions["training"]
    assert "reused_execution_id" not in training.properties
    assert (
        training.properties["reuse_key"]
        != _executions(uri, "first")["training"].properties["reuse_key"]
    )
    assert sha256_path(other.paths["model"]) != sha256_path(runs.first.paths["model"])


def test_an_altered_output_is_never_reused(runs: Runs, tmp_path: Path) -> None:
    """The first run's transform is edited both in its folder and in the object store: the
    next run recomputes feature engineering, and its own copy replaces the altered object."""
    uri = runs.store_copy(tmp_path)
    store = LineageStore.connect(uri)
    [transform] = store.store.get_artifacts_by_type(lineage.FEATURE_TRANSFORM)
    locations = {Path(transform.uri), Path(str(properties_of(transform)["object_uri"]))}
    originals = {path: path.read_bytes() for path in locations}
    try:
        for path in locations:
            path.write_bytes(originals[path] + b" ")
        third = Chain(runs.root, uri, "third")
        third.prepare()
        third.engineer()
        executions = _executions(uri, "third")
        assert executions["data_preparation"].properties["reused_from_run"] == "first"
        assert "reused_execution_id" not in executions["feature_engineering"].properties
        with Verifier(store) as verifier:
            verifier.verify_features(
                sha256_path(third.paths["features"]), sha256_path(third.paths["transform"]), "third"
            )
    finally:
        for path, content in originals.items():
            if path.exists():
                path.write_bytes(content)


def test_a_forged_execution_under_a_matching_key_is_not_reused(runs: Runs, tmp_path: Path) -> None:
    """A record that claims the key but whose recorded inputs are not the key's is passed
    over: the genuine execution is reused."""
    uri = runs.store_copy(tmp_path)
    store = LineageStore.connect(uri)
    genuine = _executions(uri, "first")["data_preparation"]
    fake = tmp_path / "fake.csv"
    fake.write_text("a,b\n1,2\n")
    report = tmp_path / "report.json"
    report.write_text("{}")
    forged_id, _ = store.record_execution(
        run=RunInfo(run_id="forger"),
        stage="data_preparation",
        inputs=[ArtifactRecord(lineage.RAW_DATASET, str(fake), sha256_path(fake), "source")],
        outputs=[
            ArtifactRecord(
                lineage.DATA_VALIDATION_REPORT,
                str(report),
                sha256_path(report),
                "validation_report",
            )
        ],
        succeeded=True,
        properties={
            k: genuine.properties[k] for k in ("reuse_key", "reuse_key_json", "outcome", "verdict")
        },
    )
    fourth = Chain(runs.root, uri, "fourth")
    fourth.prepare()
    reused = _executions(uri, "fourth")["data_preparation"]
    assert forged_id > genuine.id
    assert reused.properties["reused_execution_id"] == genuine.id


def test_a_reused_breached_gate_stays_breached(tmp_path: Path) -> None:
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    with pytest.raises(GateFailed, match="favourable_rate_ratio"):
        Chain(tmp_path, uri, "biased", label_bias=0.7).prepare()
    again = Chain(tmp_path, uri, "biased-again", label_bias=0.7)
    with pytest.raises(GateFailed, match="favourable_rate_ratio"):
        again.prepare()
    [computed] = LineageStore.connect(uri).executions_of_run("biased")
    reused = _executions(uri, "biased-again")["data_preparation"]
    assert reused.state == "COMPLETE" and reused.properties["verdict"] == "breached"
    assert reused.properties["reused_execution_id"] == computed.id
    assert reused.properties["gate_breaches"] == computed.properties["gate_breaches"]
    # Its verdict task, re-run, halts the run again, and no model of it may pass.
    with pytest.raises(GateFailed):
        again.verdict("data_preparation", again.out("validation_report.json"))
    assert _executions(uri, "biased-again")["data_preparation_verdict"].state == "FAILED"
    report = sha256_path(again.out("validation_report.json"))
    assert report == reused_report(uri, "biased-again")
    with (
        Verifier(LineageStore.connect(uri)) as verifier,
        pytest.raises(CustodyError, match="data preparation gate breached"),
    ):
        verifier.verify_dataset("0" * 64, "biased-again")
    # Nothing was produced: the withheld dataset's note was restored, never recorded.
    assert LineageStore.connect(uri).store.get_artifacts_by_type(lineage.DATASET) == []
    note = again.out("dataset") / NOT_PRODUCED
    assert note.read_text() == (tmp_path / "biased" / "dataset" / NOT_PRODUCED).read_text()


def reused_report(uri: str, run_id: str) -> str:
    store = LineageStore.connect(uri)
    [report] = store.artifacts_of_run(run_id, lineage.DATA_VALIDATION_REPORT)
    return report.name


def test_reuse_can_be_switched_off(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIACT_REUSE", "off")
    uri = runs.store_copy(tmp_path)
    off = Chain(runs.root, uri, "off")
    off.prepare()
    execution = _executions(uri, "off")["data_preparation"]
    assert "reused_execution_id" not in execution.properties
    assert (
        execution.properties["reuse_key"]
        == _executions(uri, "first")["data_preparation"].properties["reuse_key"]
    )


@pytest.mark.parametrize("stage", [*NEVER_REUSED, "data_preparation_verdict", "evaluation_verdict"])
def test_stages_whose_verdict_depends_on_the_world_never_reuse(stage: str, tmp_path: Path) -> None:
    context = StageContext(
        stage=stage,
        run=RunInfo(run_id="r"),
        lineage=LineageStore.connect(f"sqlite://{tmp_path / 'mlmd.sqlite'}"),
    )
    with pytest.raises(ReuseError, match=f"stage {stage} never reuses"):
        context.reuse({}, {"report": tmp_path / "report.json"})


# -- the content-addressed object store -----------------------------------------------------


def test_objects_are_named_by_content_and_stored_once(tmp_path: Path) -> None:
    tree = tmp_path / "run-a" / "dataset"
    (tree / "sub").mkdir(parents=True)
    (tree / "data.csv").write_text("x\n1\n")
    (tree / "sub" / "card.yaml").write_text("name: t\n")
    digest = sha256_path(tree)
    root = object_store_root(f"sqlite://{tmp_path / 'mlmd.sqlite'}")
    assert root == str(tmp_path / "objects")
    uri = keep_object(tree, digest, "dataset", root)
    assert uri == object_uri(root, digest, "dataset") and is_object_uri(uri)
    assert uri == str(tmp_path / "objects" / "sha256" / digest[:2] / digest / "dataset")
    assert sha256_path(Path(uri)) == digest
    shutil.rmtree(tmp_path / "run-a")  # the run's folder goes; the object stays
    assert sha256_path(Path(uri)) == digest
    assert keep_object(Path(uri), digest, "dataset", root) == uri  # idempotent
    assert not list((tmp_path / "objects").rglob("*.partial"))
    assert not is_object_uri(str(tmp_path / "run-a" / "dataset"))


def test_where_objects_live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIACT_OBJECT_STORE", raising=False)
    assert object_store_root("memory:") == ""
    assert object_store_root("mysql://u@h:3306/db") == ""
    assert object_store_root("sqlite:///w/mlmd.sqlite") == "/w/objects"
    kfp = "minio://mlpipeline/v2/artifacts/p/run/task/dataset"
    assert object_store_root("mysql://u@h:3306/db", kfp) == "s3://mlpipeline/aiact-objects"
    assert (
        object_uri("s3://b/p", "ab" + "0" * 62, "model") == f"s3://b/p/sha256/ab/ab{'0' * 62}/model"
    )
    monkeypatch.setenv("AIACT_OBJECT_STORE", "s3://evidence/objects")
    assert object_store_root("sqlite:///w/mlmd.sqlite", kfp) == "s3://evidence/objects"


def test_a_reused_training_returns_what_the_component_logs(runs: Runs, tmp_path: Path) -> None:
    """The training component logs best_epoch, val_loss, train_loss, duration_s and peak_rss_mb
    from the executor's result: a reuse returns the original training's figures."""
    from components.training.executor import run_training

    uri = runs.store_copy(tmp_path)
    chain = Chain(runs.root, uri, "metrics")
    chain.prepare()
    chain.engineer()
    result = run_training(
        run=chain.run,
        metadata_uri=uri,
        feature_set_dir=chain.paths["features"],
        feature_set_uri=str(chain.paths["features"]),
        transform_path=chain.paths["transform"],
        transform_uri=str(chain.paths["transform"]),
        hyperparameters=chain.hyperparameters,
        seed=chain.seed,
        model_name="credit-scoring",
        device="cpu",
        model_dir=chain.out("model"),
        model_uri=str(chain.out("model")),
        report_path=chain.out("training_report.json"),
        report_uri=str(chain.out("training_report.json")),
        feature_verdict_path=chain.paths["feature_engineering_verdict"],
        feature_verdict_uri=str(chain.paths["feature_engineering_verdict"]),
    )
    original = json.loads(runs.first.out("training_report.json").read_text())
    computed = _executions(uri, "first")["training"]
    assert result["reused_execution_id"] == computed.id
    assert result["duration_s"] == original["duration_s"]
    assert result["best_epoch"] == original["best_epoch"]
    best = original["history"][original["best_epoch"] - 1]
    assert result["train_loss"] == round(best["train_loss"], 6)
    assert result["peak_rss_mb"] == original["environment"]["peak_rss_mb"]
    assert result["val_loss"] == round(best["val_loss"], 6)
