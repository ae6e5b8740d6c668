"""End to end: all eight stages through `kfp.local` (SubprocessRunner), each stage in its own
process, lineage in a real embedded SQLite MLMD store read back with the ml-metadata API."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import cli, lineage
from aiact.approval import backend_from_uri
from aiact.lineage import connection_config
from pipelines.local_run import LocalRunConfig, LocalRunResult, run_local

pytestmark = pytest.mark.slow


def _store(config: LocalRunConfig) -> metadata_store.MetadataStore:
    return metadata_store.MetadataStore(connection_config(config.metadata_uri))


def _props(node: object) -> dict:
    return lineage.properties_of(node)


def _producer(store: metadata_store.MetadataStore, artifact_id: int) -> mlmd_pb.Execution:
    events = store.get_events_by_artifact_ids([artifact_id])
    [execution_id] = [e.execution_id for e in events if e.type == mlmd_pb.Event.OUTPUT]
    [execution] = store.get_executions_by_id([execution_id])
    return execution


def _inputs(store: metadata_store.MetadataStore, execution_id: int) -> dict[str, mlmd_pb.Artifact]:
    events = store.get_events_by_execution_ids([execution_id])
    roles = {e.artifact_id: e.path.steps[0].key for e in events if e.type == mlmd_pb.Event.INPUT}
    return {roles[a.id]: a for a in store.get_artifacts_by_id(list(roles))}


def _stages(config: LocalRunConfig, run_id: str) -> dict[str, str]:
    store = lineage.LineageStore.connect(config.metadata_uri)
    return {e.stage: e.state for e in store.executions_of_run(run_id)}


def test_clean_run_completes_all_eight_stages(
    clean_run: tuple[LocalRunConfig, LocalRunResult],
) -> None:
    config, result = clean_run
    assert result.succeeded, result.error
    assert _stages(config, result.run_id) == {
        stage: "COMPLETE"
        for stage in (
            "data_preparation",
            "data_preparation_verdict",
            "feature_engineering",
            "feature_engineering_verdict",
            "training",
            "evaluation",
            "evaluation_verdict",
            "registration",
            "integration_testing",
            "integration_testing_verdict",
            "approval",
            "deployment",
        )
    }


def test_every_evidence_task_gives_the_kfp_ui_something_readable(
    clean_run: tuple[LocalRunConfig, LocalRunResult],
) -> None:
    """What the KFP UI shows per task: each gate's Markdown verdict and HTML report, the
    deployment's Markdown summary (here: nothing applied to a cluster)."""
    config, result = clean_run
    store = lineage.LineageStore.connect(config.metadata_uri)
    [deployment] = store.artifacts_of_run(result.run_id, lineage.DEPLOYMENT)
    root = Path(deployment.uri).parent.parent  # this run's folder of the pipeline root

    def text(task: str, output: str) -> str:
        return (root / task / output).read_text()

    for task, summary in (
        ("data-preparation", "validation_summary"),
        ("feature-engineering", "feature_summary"),
        ("evaluation", "evaluation_summary"),
        ("integration-testing", "integration_summary"),
    ):
        assert "PASSED" in text(task, summary), task
    assert "<svg" in text("evaluation", "evaluation_report_html")
    assert "Integration test report" in text("integration-testing", "integration_report_html")
    deployment = text("deployment", "deployment_summary")
    assert "nothing applied to a cluster" in deployment and "ledger entry" in deployment


def test_deployed_model_traces_to_raw_data_code_evaluation_and_approval(
    clean_run: tuple[LocalRunConfig, LocalRunResult],
) -> None:
    """Walks MLMD with the ml-metadata API directly, from the deployment to the raw dataset."""
    config, result = clean_run
    store = _store(config)
    [deployment] = store.get_artifacts_by_type(lineage.DEPLOYMENT)
    deploy_exec = _producer(store, deployment.id)
    assert _props(deploy_exec)["stage"] == "deployment"
    deploy_inputs = _inputs(store, deploy_exec.id)
    model, approval = deploy_inputs["model"], deploy_inputs["approval"]
    assert _props(model)["stage"] == "production"

    approval_props = _props(approval)
    assert approval_props["decision"] == "approved"
    assert approval_props["approver"] == "demo:dana" and approval_props["kind"] == "demo"
    assert approval_props["reason"] and approval_props["decided_at"]

    training = _producer(store, model.id)
    assert _props(training)["stage"] == "training"
    feature_set = _inputs(store, training.id)["feature_set"]
    features_exec = _producer(store, feature_set.id)
    dataset = _inputs(store, features_exec.id)["dataset"]
    prep_exec = _producer(store, dataset.id)
    assert _props(prep_exec)["stage"] == "data_preparation"
    prep_inputs = _inputs(store, prep_exec.id)
    raw = prep_inputs["source"]
    assert raw.uri.endswith("credit_applications.csv")
    assert store.get_artifact_types_by_id([raw.type_id])[0].name == lineage.RAW_DATASET
    assert {"data_card", "gate_policy"} <= set(prep_inputs)

    consumers = {
        e.execution_id
        for e in store.get_events_by_artifact_ids([model.id])
        if e.type == mlmd_pb.Event.INPUT
    }
    registrations = [
        ex
        for ex in store.get_executions_by_id(list(consumers))
        if _props(ex)["stage"] == "registration"
    ]
    [registration_exec] = registrations
    registration_inputs = _inputs(store, registration_exec.id)
    events = store.get_events_by_execution_ids([registration_exec.id])
    [registration_id] = [  # (its other outputs: the model card and its page)
        e.artifact_id
        for e in events
        if e.type == mlmd_pb.Event.OUTPUT and e.path.steps[0].key == "registration"
    ]
    [registration] = store.get_artifacts_by_id([registration_id])
    attached = _props(registration)
    assert attached["stage"] == "staging"
    assert attached["evaluation_report_uri"] == registration_inputs["evaluation_report"].uri
    assert attached["dataset_version"] == _props(dataset)["version"]
    assert attached["pipeline_run_id"] == result.run_id

    [context] = store.get_contexts_by_artifact(model.id)
    run = _props(context)
    assert context.name == result.run_id
    assert run["pipeline_spec_sha256"] == result.pipeline_spec_sha256
    assert "code_commit" in run and attached["code_commit"] == run["code_commit"]


def test_biased_data_halts_at_the_data_gate(tmp_path: Path) -> None:
    """Art. 10(2)(f): women's favourable-label rate far below men's stops the run at data
    preparation, before any model is trained on it."""
    config = LocalRunConfig(workdir=tmp_path, demo_approver="dana", label_bias=0.7)
    result = run_local(config)
    assert not result.succeeded and "'gate-verdict'" in result.error
    # The gate's own task completed with its evidence; its verdict task halted the run.
    assert _stages(config, result.run_id) == {
        "data_preparation": "COMPLETE",
        "data_preparation_verdict": "FAILED",
    }
    store = lineage.LineageStore.connect(config.metadata_uri)
    execution = store.executions_of_run(result.run_id)[0]
    assert execution.properties["verdict"] == "breached"
    assert "favourable_rate_ratio[sex]" in str(execution.properties["gate_breaches"])
    assert store.store.get_artifacts_by_type(lineage.MODEL) == []
    assert store.store.get_artifacts_by_type(lineage.DATASET) == []


def test_an_undertrained_model_halts_at_the_evaluation_gate(tmp_path: Path) -> None:
    config = LocalRunConfig(
        workdir=tmp_path,
        demo_approver="dana",
        overrides={
            "hyperparameters": {"max_epochs": 1, "hidden_units": [2], "learning_rate": 1e-5}
        },
    )
    result = run_local(config)
    assert not result.succeeded and "'gate-verdict-3'" in result.error
    assert _stages(config, result.run_id) == {
        "data_preparation": "COMPLETE",
        "data_preparation_verdict": "COMPLETE",
        "feature_engineering": "COMPLETE",
        "feature_engineering_verdict": "COMPLETE",
        "training": "COMPLETE",
        "evaluation": "COMPLETE",
        "evaluation_verdict": "FAILED",
    }
    store = lineage.LineageStore.connect(config.metadata_uri)
    [report] = store.artifacts_of_run(result.run_id, lineage.EVALUATION_REPORT)
    assert _props(report)["passed"] is False
    [evaluation] = [e for e in store.executions_of_run(result.run_id) if e.stage == "evaluation"]
    assert "accuracy_gap_to_baseline" in str(evaluation.properties["gate_breaches"])
    models = store.store.get_artifacts_by_type(lineage.MODEL)
    assert [_props(m)["stage"] for m in models] == ["experimental"]


def test_corrupted_data_halts_at_the_data_gate(tmp_path: Path) -> None:
    config = LocalRunConfig(workdir=tmp_path, demo_approver="dana", corruption=0.2)
    result = run_local(config)
    assert not result.succeeded and "'gate-verdict'" in result.error
    assert _stages(config, result.run_id)["data_preparation_verdict"] == "FAILED"
    store = lineage.LineageStore.connect(config.metadata_uri)
    [report] = store.artifacts_of_run(result.run_id, lineage.DATA_VALIDATION_REPORT)
    assert _props(report)["passed"] is False
    assert store.store.get_artifacts_by_type(lineage.MODEL) == []


def test_a_failed_fairness_gate_shows_its_metrics_in_the_evaluation_tasks_outputs(
    tmp_path: Path,
) -> None:
    """A stricter (allowed: it narrows the platform floor) sex demographic-parity limit than
    the model meets fails the fairness gate; the evaluation task still completes and KFP
    publishes its metrics, confusion matrix, ROC curve, HTML report and Markdown summary,
    while its verdict task fails the run and nothing is registered."""
    import json

    import yaml

    from aiact.usecase import BUNDLED_USE_CASE

    policy = yaml.safe_load((BUNDLED_USE_CASE / "policy.yaml").read_text())
    fairness = policy["evaluation"]["fairness"]["sex"]
    fairness["max_demographic_parity_difference"] = 0.0001
    policy_path = tmp_path / "strict.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    config = LocalRunConfig(workdir=tmp_path, demo_approver="dana", policy_path=policy_path)
    result = run_local(config)
    assert not result.succeeded and "'gate-verdict-3'" in result.error
    stages = _stages(config, result.run_id)
    assert (stages["evaluation"], stages["evaluation_verdict"]) == ("COMPLETE", "FAILED")
    assert "registration" not in stages
    store = lineage.LineageStore.connect(config.metadata_uri)
    [evaluation] = [e for e in store.executions_of_run(result.run_id) if e.stage == "evaluation"]
    assert "demographic_parity_difference[sex]" in str(evaluation.properties["gate_breaches"])
    # What the KFP UI reads: the task's executor output, written because the task returned.
    [output_file] = (tmp_path / "pipeline_root").rglob("evaluation/executor_output.json")
    published = json.loads(output_file.read_text())["artifacts"]
    metrics = published["metrics"]["artifacts"][0]["metadata"]
    [report] = store.artifacts_of_run(result.run_id, lineage.EVALUATION_REPORT)
    assert metrics["accuracy"] == pytest.approx(_props(report)["accuracy"], abs=1e-6)
    assert metrics["demographic_parity_difference[sex]"] > 0.0001
    curves = published["classification_metrics"]["artifacts"][0]["metadata"]
    assert curves["confusionMatrix"]["rows"] and curves["confidenceMetrics"]
    roc = curves["confidenceMetrics"]
    assert (roc[0]["falsePositiveRate"], roc[0]["recall"]) == (0.0, 0.0)
    assert (roc[-1]["falsePositiveRate"], roc[-1]["recall"]) == (1.0, 1.0)
    summary = next((tmp_path / "pipeline_root").rglob("evaluation/evaluation_summary"))
    assert "BREACHED" in summary.read_text()
    assert "demographic_parity_difference[sex]" in summary.read_text()
    assert store.store.get_artifacts_by_type(lineage.MODEL_REGISTRATION) == []


@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_run_pauses_until_a_human_decides(tmp_path: Path, verdict: str) -> None:
    config = LocalRunConfig(workdir=tmp_path, approval_timeout_s=300)
    outcome: dict[str, LocalRunResult] = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("r", run_local(config)))
    worker.start()
    backend = backend_from_uri(config.approvals_uri)
    deadline = time.monotonic() + 240
    while not (pending := backend.pending()) and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(pending) == 1, "the run never paused at approval"
    time.sleep(1.0)
    assert worker.is_alive(), "the run did not wait for the decision"
    code = cli.main(
        [
            verdict,
            pending[0].name,
            "--approvals",
            config.approvals_uri,
            "--approver",
            "alice",
            "--reason",
            "reviewed evaluation and tests",
        ]
    )
    assert code == 0
    worker.join(timeout=240)
    result = outcome["r"]
    store = lineage.LineageStore.connect(config.metadata_uri)
    [approval] = store.artifacts_of_run(result.run_id, lineage.APPROVAL)
    assert (_props(approval)["approver"], _props(approval)["kind"]) == ("alice", "human")
    if verdict == "approve":
        assert result.succeeded and _stages(config, result.run_id)["deployment"] == "COMPLETE"
    else:
        assert not result.succeeded
        stages = _stages(config, result.run_id)
        assert stages["approval"] == "FAILED" and "deployment" not in stages
        [execution] = [e for e in store.executions_of_run(result.run_id) if e.stage == "approval"]
        assert "rejected by alice: reviewed evaluation and tests" in str(
            execution.properties["error"]
        )


def test_two_concurrent_runs_on_one_store_keep_their_identities(tmp_path: Path) -> None:
    """Two `aiact run-local` processes at once on one workdir (one MLMD SQLite file, one
    ledger, one approvals folder): each reports and bundles its own run."""
    import re
    import subprocess
    import sys

    def start(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "aiact"),
                "run-local",
                "--workdir",
                str(tmp_path),
                "--demo-approver",
                "dana",
                "--rows",
                "3000",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    clean, biased = start(), start("--label-bias", "0.7")
    outputs = [process.communicate(timeout=600)[0] for process in (clean, biased)]
    assert (clean.returncode, biased.returncode) == (0, 1), outputs
    found = [re.search(r"run id:\s+(\S+)", text) for text in outputs]
    run_ids = [match.group(1) for match in found if match]
    assert len(run_ids) == 2, outputs
    assert run_ids[0] != run_ids[1]
    config = LocalRunConfig(workdir=tmp_path)
    assert _stages(config, run_ids[0])["deployment"] == "COMPLETE"
    assert _stages(config, run_ids[1]) == {
        "data_preparation": "COMPLETE",  # with the breach as its verdict
        "data_preparation_verdict": "FAILED",
    }
    import json

    for run_id, text in zip(run_ids, outputs, strict=True):
        manifest = json.loads((tmp_path / "evidence" / run_id / "manifest.json").read_text())
        assert manifest["run_id"] == run_id and f"evidence/{run_id}/" in text
    halted = json.loads((tmp_path / "evidence" / run_ids[1] / "manifest.json").read_text())
    assert "FAILED" in {e["state"] for e in halted["executions"]}
    assert halted["custody"]["verified"] is False
    assert "HALTED" in outputs[1] and "SUCCEEDED" in outputs[0]
