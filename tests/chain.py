"""Runs the real stage executors in this process, one pipeline run at a time, so tests can build
genuine chains of custody (and then attack them) without kfp.local's per-task processes."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiact.approval import ApprovalBackend, ApprovalRequest
from aiact.lineage import RunInfo
from aiact.policy import load_policy
from aiact.refdata import write_reference_dataset
from aiact.serving import ARGUMENTS_ON_STDIN
from components.approval.executor import run_approval
from components.data_preparation.executor import run_data_preparation
from components.deployment.executor import run_deployment
from components.evaluation.executor import run_evaluation
from components.feature_engineering.executor import run_feature_engineering
from components.gate_verdict.executor import run_gate_verdict
from components.integration_testing.executor import run_integration_testing
from components.registration.executor import run_registration
from components.training.executor import run_training

FAST_HYPERPARAMETERS = {"max_epochs": 12, "hidden_units": [16]}
# A model that learns almost nothing: clean data passes the data gates, its evaluation fails
# (performance and the gap to the logistic baseline).
UNDERTRAINED = {"max_epochs": 1, "hidden_units": [2], "learning_rate": 1e-5, "patience": 1}


@dataclass
class Chain:
    """One pipeline run driven stage by stage; each method returns the stage's output paths."""

    root: Path
    metadata_uri: str
    run_id: str
    policy: dict[str, Any] = field(default_factory=load_policy)
    rows: int = 3000
    data_seed: int = 7
    label_bias: float = 0.0
    seed: int = 0
    environment: str = "development"
    hyperparameters: dict[str, Any] = field(default_factory=lambda: dict(FAST_HYPERPARAMETERS))
    paths: dict[str, Path] = field(default_factory=dict)

    def at(self, metadata_uri: str, root: Path) -> Chain:
        """The same run, recording into another store and writing new outputs under `root` (the
        original run's evidence files stay as they are)."""
        return replace(self, root=root, metadata_uri=metadata_uri, paths=dict(self.paths))

    @property
    def run(self) -> RunInfo:
        """The run identity the stages record under."""
        return RunInfo(run_id=self.run_id, pipeline_name="test", environment=self.environment)

    def out(self, name: str) -> Path:
        """A path in this run's own output folder."""
        path = self.root / self.run_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def prepare(self) -> Path:
        """Data preparation on freshly generated reference data."""
        source = write_reference_dataset(
            self.root / "data" / f"{self.rows}-{self.data_seed}-{self.label_bias:g}",
            rows=self.rows,
            seed=self.data_seed,
            label_bias=self.label_bias,
        )
        dataset = self.out("dataset")
        run_data_preparation(
            run=self.run,
            metadata_uri=self.metadata_uri,
            source_uri=str(source.data_path),
            data_card_uri=str(source.data_card_path),
            use_case_uri="",
            policy=self.policy,
            dataset_dir=dataset,
            dataset_uri=str(dataset),
            report_path=self.out("validation_report.json"),
            report_uri=str(self.out("validation_report.json")),
            report_html_path=self.out("validation_report.html"),
        )
        self.paths["dataset"] = dataset
        self.paths["validation_report"] = self.out("validation_report.json")
        self.verdict("data_preparation")
        return dataset

    def verdict(self, gate: str, report: Path | None = None) -> Path:
        """The verdict task of `gate` on its report of this run (or the one given)."""
        from aiact.custody import GATE_REPORTS, verdict_stage

        role = verdict_stage(gate)
        verdict = self.out(f"{role}.json")
        report = report or self.paths[GATE_REPORTS[gate]]
        run_gate_verdict(
            run=self.run,
            metadata_uri=self.metadata_uri,
            gate=gate,
            report_path=report,
            report_uri=str(report),
            verdict_path=verdict,
            verdict_uri=str(verdict),
        )
        self.paths[role] = verdict
        return verdict

    def engineer(self, dataset: Path | None = None, verdict: Path | None = None) -> Path:
        """Feature engineering on this run's dataset and data verdict (or the ones given)."""
        features = self.out("features")
        verdict = verdict or self.paths["data_preparation_verdict"]
        run_feature_engineering(
            run=self.run,
            metadata_uri=self.metadata_uri,
            dataset_dir=dataset or self.paths["dataset"],
            dataset_uri=str(dataset or self.paths["dataset"]),
            use_case_uri="",
            policy=self.policy,
            seed=1,
            feature_set_dir=features,
            feature_set_uri=str(features),
            transform_path=self.out("transform.json"),
            transform_uri=str(self.out("transform.json")),
            report_path=self.out("feature_report.json"),
            report_uri=str(self.out("feature_report.json")),
            data_verdict_path=verdict,
            data_verdict_uri=str(verdict),
        )
        self.paths["features"] = features
        self.paths["transform"] = self.out("transform.json")
        self.paths["feature_report"] = self.out("feature_report.json")
        self.verdict("feature_engineering")
        return features

    def train(
        self,
        features: Path | None = None,
        transform: Path | None = None,
        verdict: Path | None = None,
    ) -> Path:
        """Training on this run's feature set and feature verdict (or the ones given)."""
        model = self.out("model")
        verdict = verdict or self.paths["feature_engineering_verdict"]
        features = features or self.paths["features"]
        transform = transform or self.paths["transform"]
        run_training(
            run=self.run,
            metadata_uri=self.metadata_uri,
            feature_set_dir=features,
            feature_set_uri=str(features),
            transform_path=transform,
            transform_uri=str(transform),
            hyperparameters=self.hyperparameters,
            seed=self.seed,
            model_name="credit-scoring",
            device="cpu",
            model_dir=model,
            model_uri=str(model),
            report_path=self.out("training_report.json"),
            report_uri=str(self.out("training_report.json")),
            feature_verdict_path=verdict,
            feature_verdict_uri=str(verdict),
        )
        self.paths["model"] = model
        return model

    def evaluate(self, model: Path | None = None, features: Path | None = None) -> Path:
        """Evaluation of this run's model (or the one given)."""
        report = self.out("evaluation_report.json")
        model = model or self.paths["model"]
        features = features or self.paths["features"]
        self.paths["evaluation_report"] = report
        run_evaluation(
            run=self.run,
            metadata_uri=self.metadata_uri,
            model_dir=model,
            model_uri=str(model),
            feature_set_dir=features,
            feature_set_uri=str(features),
            policy=self.policy,
            report_path=report,
            report_uri=str(report),
            report_html_path=self.out("evaluation_report.html"),
        )
        self.verdict("evaluation", report)
        return report

    def register(
        self,
        model: Path | None = None,
        report: Path | None = None,
        dataset: Path | None = None,
        verdict: Path | None = None,
    ) -> Path:
        """Registration of this run's model with its evaluation report and verdict (or those
        given)."""
        registration = self.out("registration.json")
        verdict = verdict or self.paths["evaluation_verdict"]
        model = model or self.paths["model"]
        report = report or self.paths["evaluation_report"]
        dataset = dataset or self.paths["dataset"]
        run_registration(
            run=self.run,
            metadata_uri=self.metadata_uri,
            model_dir=model,
            model_uri=str(model),
            evaluation_report_path=report,
            evaluation_report_uri=str(report),
            dataset_dir=dataset,
            dataset_uri=str(dataset),
            registration_path=registration,
            registration_uri=str(registration),
            evaluation_verdict_path=verdict,
            evaluation_verdict_uri=str(verdict),
        )
        self.paths["registration"] = registration
        return registration

    def integrate(self, model: Path | None = None, registration: Path | None = None) -> Path:
        """Integration testing of this run's registered model (or those given)."""
        report = self.out("integration_report.json")
        model = model or self.paths["model"]
        registration = registration or self.paths["registration"]
        features = self.paths["features"]
        run_integration_testing(
            run=self.run,
            metadata_uri=self.metadata_uri,
            model_dir=model,
            model_uri=str(model),
            registration_path=registration,
            registration_uri=str(registration),
            feature_set_dir=features,
            feature_set_uri=str(features),
            policy=self.policy,
            report_path=report,
            report_uri=str(report),
        )
        self.paths["integration_report"] = report
        self.verdict("integration_testing", report)
        return report

    def approve(
        self,
        *,
        demo_approver: str = "dana",
        backend: str = "",
        evaluation_report: Path | None = None,
        timeout_s: float = 30.0,
        verdict: Path | None = None,
    ) -> Path:
        """Approval of this run's model (a demo decision unless `demo_approver` is empty)."""
        approval = self.out("approval.json")
        verdict = verdict or self.paths["integration_testing_verdict"]
        model = self.paths["model"]
        report = evaluation_report or self.paths["evaluation_report"]
        integration = self.paths["integration_report"]
        run_approval(
            run=self.run,
            metadata_uri=self.metadata_uri,
            backend_uri=backend or f"local:{self.root / 'approvals'}",
            model_name="credit-scoring",
            model_dir=model,
            model_uri=str(model),
            evaluation_report_path=report,
            evaluation_report_uri=str(report),
            integration_report_path=integration,
            integration_report_uri=str(integration),
            requested_by="tester",
            approver_group="aiact-approvers",
            demo_approver=demo_approver,
            timeout_s=timeout_s,
            approval_path=approval,
            approval_uri=str(approval),
            integration_verdict_path=verdict,
            integration_verdict_uri=str(verdict),
        )
        self.paths["approval"] = approval
        return approval

    def deploy(self, approval: Path | None = None, *, ledger: str = "") -> Path:
        """Deployment of this run's approved model into the run root's ledger."""
        deployment = self.out("deployment.json")
        model = self.paths["model"]
        approval = approval or self.paths["approval"]
        run_deployment(
            run=self.run,
            metadata_uri=self.metadata_uri,
            model_dir=model,
            model_uri=str(model),
            approval_path=approval,
            approval_uri=str(approval),
            strategy="canary",
            canary_percent=10,
            ledger_uri=ledger or self.ledger_uri,
            deployment_path=deployment,
            deployment_uri=str(deployment),
        )
        self.paths["deployment"] = deployment
        return deployment

    @property
    def ledger_uri(self) -> str:
        """The ledger of the run root."""
        return f"file://{self.root / 'ledger'}"

    def through_integration(self) -> Chain:
        """Every stage up to and including integration testing."""
        self.prepare()
        self.engineer()
        self.train()
        self.evaluate()
        self.register()
        self.integrate()
        return self

    def document(self, name: str) -> dict[str, Any]:
        """A JSON output of this run."""
        loaded: dict[str, Any] = json.loads(self.paths[name].read_text())
        return loaded


def record_verdict(store: Any, run: RunInfo, gate: str, report: Any, folder: Path) -> Any:
    """Record the passed verdict task of `gate` on a recorded report (an ArtifactRecord), with
    a real verdict file; returns the verdict's ArtifactRecord (what the next stage consumes)."""
    from aiact import lineage
    from aiact.custody import GATE_REPORTS, verdict_stage
    from aiact.evidence import write_json
    from aiact.hashing import sha256_path
    from aiact.lineage import ArtifactRecord

    role = verdict_stage(gate)
    path = folder / f"{role}.json"
    write_json(path, {"gate": gate, "verdict": "passed", "report_sha256": report.content_sha256})
    verdict = ArtifactRecord(lineage.GATE_VERDICT, str(path), sha256_path(path), role, {})
    store.record_execution(
        run=run,
        stage=role,
        inputs=[replace(report, role=GATE_REPORTS[gate])],
        outputs=[verdict],
        succeeded=True,
        properties={"outcome": "completed", "verdict": "passed", "gate": gate},
    )
    return verdict


def record_upstream(
    uri: str,
    run: RunInfo,
    feature_dir: Path,
    model_dir: Path,
    policy: dict[str, Any],
    *,
    transform_path: Path | None = None,
) -> dict[str, int]:
    """Record a completed data preparation, feature engineering and training for a feature set
    and a model built outside the stages (a test's hand-made model), with real evidence files,
    so that the chain of custody up to training holds. Returns the artefact ids by role."""
    from aiact import lineage
    from aiact.evidence import write_json
    from aiact.hashing import sha256_path
    from aiact.lineage import ArtifactRecord, LineageStore
    from aiact.stage import StageContext
    from aiact.usecase import BUNDLED_USE_CASE, load_use_case, record_of

    store = LineageStore.connect(uri)
    use_case = record_of(load_use_case("", BUNDLED_USE_CASE))
    root = feature_dir.parent / f"upstream-{feature_dir.name}"
    root.mkdir(parents=True, exist_ok=True)
    policy_context = StageContext(stage="policy", run=run, lineage=store)
    policy_digest = policy_context.read_policy(policy)
    [policy_record] = policy_context.inputs
    dataset = root / "dataset"
    dataset.mkdir(exist_ok=True)
    (dataset / "data.csv").write_text(f"made for {feature_dir.name}\n")
    if transform_path is None:
        transform_path = root / "transform.json"
        transform_path.write_text("{}\n")
    passed = {"gate": {"passed": True, "checks": []}, "policy_sha256": policy_digest}

    def record(type_name: str, path: Path, role: str, **props: Any) -> ArtifactRecord:
        return ArtifactRecord(type_name, str(path), sha256_path(path), role, props)

    def report(name: str) -> Path:
        path = root / f"{name}.json"
        write_json(path, {"title": name, "sections": {}, **passed})
        return path

    report_type = lineage.DATA_VALIDATION_REPORT
    dataset_record = record(lineage.DATASET, dataset, "dataset")
    features_record = record(lineage.FEATURE_SET, feature_dir, "feature_set", use_case="credit")
    transform_record = record(lineage.FEATURE_TRANSFORM, transform_path, "transform")
    done = {"outcome": "completed"}
    gate_done = {**done, "verdict": "passed"}
    validation = record(report_type, report("data"), "validation_report", passed=True)
    store.record_execution(
        run=run,
        stage="data_preparation",
        inputs=[policy_record, use_case],
        outputs=[validation, dataset_record],
        succeeded=True,
        properties=gate_done,
    )
    data_verdict = record_verdict(store, run, "data_preparation", validation, root)
    feature_report = record(report_type, report("features"), "feature_report", passed=True)
    store.record_execution(
        run=run,
        stage="feature_engineering",
        inputs=[policy_record, dataset_record, data_verdict],
        outputs=[feature_report, features_record, transform_record],
        succeeded=True,
        properties=gate_done,
    )
    feature_verdict = record_verdict(store, run, "feature_engineering", feature_report, root)
    _, ids = store.record_execution(
        run=run,
        stage="training",
        inputs=[features_record, transform_record, feature_verdict],
        outputs=[record(lineage.MODEL, model_dir, "model", model_name="credit-scoring")],
        succeeded=True,
        properties=done,
    )
    return ids


def record_chain(
    uri: str, run: RunInfo, root: Path, policy: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Record a consistent chain of completed stages through integration testing for small
    hand-made artefacts (no real training), as tests of the later stages need: every artefact
    is a real file whose content names the digests it is about. Returns the paths by role."""
    from aiact import lineage
    from aiact.evidence import write_json
    from aiact.hashing import sha256_path
    from aiact.lineage import ArtifactRecord, LineageStore
    from aiact.stage import StageContext

    policy = policy or load_policy()
    root.mkdir(parents=True, exist_ok=True)
    features, model = root / "features", root / "model"
    features.mkdir(exist_ok=True)
    (features / "test.csv").write_text("x\n1\n")
    model.mkdir(exist_ok=True)
    (model / "weights.pt").write_bytes(b"weights")
    (model / "model.json").write_text('{"model_name": "credit-scoring"}\n')
    record_upstream(uri, run, features, model, policy)
    store = LineageStore.connect(uri)
    context = StageContext(stage="policy", run=run, lineage=store)
    policy_digest = context.read_policy(policy)
    [policy_record] = context.inputs
    upstream = root / f"upstream-{features.name}"
    dataset = upstream / "dataset"

    def record(type_name: str, path: Path, role: str, **props: Any) -> ArtifactRecord:
        return ArtifactRecord(type_name, str(path), sha256_path(path), role, props)

    done = {"outcome": "completed"}
    model_record = record(lineage.MODEL, model, "model")
    features_record = record(lineage.FEATURE_SET, features, "feature_set")
    dataset_record = record(lineage.DATASET, dataset, "dataset")
    evaluation = root / "evaluation_report.json"
    write_json(
        evaluation,
        {
            "title": "evaluation",
            "gate": {"passed": True, "checks": []},
            "policy_sha256": policy_digest,
            "sections": {
                "model_sha256": model_record.content_sha256,
                "feature_set_sha256": features_record.content_sha256,
            },
        },
    )
    evaluation_record = record(
        lineage.EVALUATION_REPORT, evaluation, "evaluation_report", passed=True
    )
    store.record_execution(
        run=run,
        stage="evaluation",
        inputs=[policy_record, model_record, features_record],
        outputs=[evaluation_record],
        succeeded=True,
        properties={**done, "verdict": "passed"},
    )
    evaluation_verdict = record_verdict(store, run, "evaluation", evaluation_record, root)
    registration = root / "registration.json"
    write_json(
        registration,
        {
            "model_sha256": model_record.content_sha256,
            "evaluation_report_sha256": evaluation_record.content_sha256,
            "dataset_sha256": dataset_record.content_sha256,
            "pipeline_run_id": run.run_id,
        },
    )
    registration_record = record(lineage.MODEL_REGISTRATION, registration, "registration")
    store.record_execution(
        run=run,
        stage="registration",
        inputs=[model_record, evaluation_record, dataset_record, evaluation_verdict],
        outputs=[registration_record],
        succeeded=True,
        properties=done,
    )
    integration = root / "integration_report.json"
    write_json(
        integration,
        {
            "title": "integration",
            "gate": {"passed": True, "checks": []},
            "policy_sha256": policy_digest,
            "sections": {
                "model_sha256": model_record.content_sha256,
                "registration_sha256": registration_record.content_sha256,
            },
        },
    )
    integration_record = record(
        lineage.INTEGRATION_TEST_REPORT, integration, "integration_report", passed=True
    )
    store.record_execution(
        run=run,
        stage="integration_testing",
        inputs=[policy_record, model_record, registration_record, features_record],
        outputs=[integration_record],
        succeeded=True,
        properties={**done, "verdict": "passed"},
    )
    record_verdict(store, run, "integration_testing", integration_record, root)
    return {
        "evaluation_verdict": root / "evaluation_verdict.json",
        "integration_testing_verdict": root / "integration_testing_verdict.json",
        "model": model,
        "features": features,
        "dataset": dataset,
        "evaluation_report": evaluation,
        "registration": registration,
        "integration_report": integration,
    }


@contextmanager
def approval_stage_pending(
    backend: ApprovalBackend, run_id: str, arguments: dict[str, Any], *, join_s: float
) -> Iterator[tuple[threading.Thread, dict[str, Any], ApprovalRequest]]:
    """Run the approval stage (`run_approval(**arguments)` as run `run_id`) in a thread until
    its request is pending on `backend`. Yields the thread, the dict the stage's result lands
    in, and the pending request; on the way out, waits up to `join_s` for the stage to end."""
    outcome: dict[str, Any] = {}
    stage = threading.Thread(
        target=lambda: outcome.update(run_approval(run=RunInfo(run_id=run_id), **arguments))
    )
    stage.start()
    try:
        while not backend.pending():
            assert stage.is_alive(), "the stage ended before raising its request"
            stage.join(0.05)
        (request,) = backend.pending()
        yield stage, outcome, request
    finally:
        stage.join(join_s)


def server_processes() -> list[int]:
    """This process's children that are local model servers started ahead of their model
    (integration testing's `start_server_process`)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            parent = next(
                int(line.split()[1])
                for line in status.read_text().splitlines()
                if line.startswith("PPid:")
            )
            command = (status.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, StopIteration):
            continue
        if parent == os.getpid() and ARGUMENTS_ON_STDIN.encode() in command:
            found.append(int(status.parent.name))
    return found
