"""The executable compliance specification: eight stages wired by data dependencies, so no
stage can run before the gate whose output it consumes has passed.

Every task has caching disabled: a cached gate proves nothing, and each execution must be
recorded in this run's lineage. Training requests one GPU on the cluster (CPU locally); its
resources, accelerator, node selector and tolerations are fixed at compile time by
`TrainingResources` (`build_pipeline`); `compliance_pipeline` is the default build.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kfp import dsl, kubernetes

from aiact.stage import PIPELINE_NAME
from components.approval.component import approval
from components.data_preparation.component import data_preparation
from components.deployment.component import deployment
from components.evaluation.component import evaluation
from components.feature_engineering.component import feature_engineering
from components.gate_verdict.component import gate_verdict
from components.integration_testing.component import integration_testing
from components.registration.component import registration
from components.training.component import training

CONFIG_MAP = "aiact-config"
S3_SECRET = "aiact-s3-credentials"
DEFAULT_HYPERPARAMETERS = {
    "hidden_units": [32, 16],
    "dropout": 0.1,
    "learning_rate": 0.003,
    "weight_decay": 0.0001,
    "batch_size": 128,
    "max_epochs": 60,
    "patience": 6,
}
GPU_TYPE = "nvidia.com/gpu"


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration for the training pod."""

    key: str
    operator: str = "Exists"
    effect: str = "NoSchedule"
    value: str = ""


@dataclass(frozen=True)
class TrainingResources:
    """What the training task asks of the cluster; `accelerator_count=0` trains on CPU."""

    cpu_request: str = "4"
    cpu_limit: str = "4"
    memory_request: str = "16G"
    memory_limit: str = "16G"
    accelerator_type: str = GPU_TYPE
    accelerator_count: int = 1
    node_selector: dict[str, str] = field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"}
    )
    tolerations: tuple[Toleration, ...] = (Toleration(GPU_TYPE),)

    def __post_init__(self) -> None:
        if self.accelerator_count < 0:
            raise ValueError(f"accelerator_count must be >= 0, got {self.accelerator_count}")

    def apply(self, task: dsl.PipelineTask) -> None:
        """Set requests, limits, accelerator, node selector and tolerations on `task`."""
        task.set_cpu_request(self.cpu_request).set_cpu_limit(self.cpu_limit)
        task.set_memory_request(self.memory_request).set_memory_limit(self.memory_limit)
        if self.accelerator_count:
            task.set_accelerator_type(self.accelerator_type)
            task.set_accelerator_limit(self.accelerator_count)
        for key, value in self.node_selector.items():
            kubernetes.add_node_selector(task, key, value)
        for toleration in self.tolerations:
            kubernetes.add_toleration(
                task,
                key=toleration.key,
                operator=toleration.operator,
                value=toleration.value or None,
                effect=toleration.effect,
            )


def _configure(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Settings every stage shares: no caching; the metadata store from the namespace's
    ConfigMap; object storage, since every stage re-hashes its upstream artefacts from where
    they are stored. Environment, approvers, ledger and policy floor are NOT taken from here
    (a profile owner can edit this ConfigMap): each stage reads them from the platform
    configuration in aiact-system (aiact.platform)."""
    task.set_caching_options(False)
    kubernetes.use_config_map_as_env(
        task,
        config_map_name=CONFIG_MAP,
        config_map_key_to_env={"AIACT_METADATA_URI": "AIACT_METADATA_URI"},
    )
    return _with_object_storage(task)


def _with_object_storage(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """S3 endpoint from the ConfigMap and credentials from a Secret, as environment only."""
    kubernetes.use_config_map_as_env(
        task,
        config_map_name=CONFIG_MAP,
        config_map_key_to_env={"AIACT_S3_ENDPOINT": "AIACT_S3_ENDPOINT"},
    )
    kubernetes.use_secret_as_env(
        task,
        secret_name=S3_SECRET,
        secret_key_to_env={"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"},
    )
    return task


def _verdict(
    gate: dsl.PipelineTask, name: str, report: str, run_id: str, metadata_uri: str
) -> dsl.PipelineTask:
    """The verdict task of a gate: the gate's task always completes with its evidence (so the
    KFP UI shows it); this task fails the run when the gate's verdict is a breach, and the next
    stage consumes its output, so it cannot start before the gate passed."""
    task = gate_verdict(
        gate=name, report=gate.outputs[report], run_id=run_id, metadata_uri=metadata_uri
    )
    task.set_display_name(f"{name.replace('_', '-')}-verdict")
    return _configure(task)


def build_pipeline(resources: TrainingResources | None = None) -> Callable[..., Any]:
    """The pipeline, with the training task's cluster resources fixed to `resources`."""
    training_resources = resources or TrainingResources()

    @dsl.pipeline(name=PIPELINE_NAME, description="EU AI Act compliance-grade training pipeline")
    def compliance_pipeline(
        source_uri: str,
        use_case_uri: str = "",
        data_card_uri: str = "",
        gate_policy: dict = {},  # noqa: B006 (a KFP parameter default, never mutated)
        hyperparameters: dict = DEFAULT_HYPERPARAMETERS,
        seed: int = 42,
        model_name: str = "",
        training_device: str = "auto",
        environment: str = "",
        baseline_dataset_uri: str = "",
        metadata_uri: str = "",
        code_commit: str = "",
        pipeline_spec_sha256: str = "",
        approval_backend: str = "kubernetes://",
        requested_by: str = "",
        approver_group: str = "aiact-approvers",
        demo_approver: str = "",
        approval_timeout_s: float = 86400.0,
        deployment_strategy: str = "canary",
        canary_percent: int = 10,
        ledger_uri: str = "",
        submission_id: str = "",
    ):
        """Data preparation -> features -> training -> evaluation -> registration -> integration
        testing -> human approval -> deployment; each gate halts the run when it fails."""
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        data = _configure(
            data_preparation(
                source_uri=source_uri,
                data_card_uri=data_card_uri,
                use_case_uri=use_case_uri,
                gate_policy=gate_policy,
                run_id=run_id,
                metadata_uri=metadata_uri,
                code_commit=code_commit,
                pipeline_spec_sha256=pipeline_spec_sha256,
                environment=environment,
                baseline_dataset_uri=baseline_dataset_uri,
                submission_id=submission_id,
            )
        )
        data_gate = _verdict(data, "data_preparation", "validation_report", run_id, metadata_uri)
        features = _configure(
            feature_engineering(
                dataset=data.outputs["dataset"],
                data_verdict=data_gate.outputs["verdict"],
                use_case_uri=use_case_uri,
                gate_policy=gate_policy,
                seed=seed,
                run_id=run_id,
                metadata_uri=metadata_uri,
            )
        )
        feature_gate = _verdict(
            features, "feature_engineering", "feature_report", run_id, metadata_uri
        )
        train = _configure(
            training(
                feature_set=features.outputs["feature_set"],
                transform=features.outputs["transform"],
                feature_verdict=feature_gate.outputs["verdict"],
                hyperparameters=hyperparameters,
                seed=seed,
                model_name=model_name,
                use_case_uri=use_case_uri,
                device=training_device,
                run_id=run_id,
                metadata_uri=metadata_uri,
            )
        )
        training_resources.apply(train)
        evaluate = _configure(
            evaluation(
                model=train.outputs["model"],
                feature_set=features.outputs["feature_set"],
                gate_policy=gate_policy,
                use_case_uri=use_case_uri,
                run_id=run_id,
                metadata_uri=metadata_uri,
            )
        )
        evaluation_gate = _verdict(
            evaluate, "evaluation", "evaluation_report", run_id, metadata_uri
        )
        register = _configure(
            registration(
                model=train.outputs["model"],
                evaluation_report=evaluate.outputs["evaluation_report"],
                evaluation_verdict=evaluation_gate.outputs["verdict"],
                dataset=data.outputs["dataset"],
                run_id=run_id,
                metadata_uri=metadata_uri,
            )
        )
        integrate = _configure(
            integration_testing(
                model=train.outputs["model"],
                registration=register.outputs["registration"],
                feature_set=features.outputs["feature_set"],
                gate_policy=gate_policy,
                use_case_uri=use_case_uri,
                run_id=run_id,
                metadata_uri=metadata_uri,
            )
        )
        integration_gate = _verdict(
            integrate, "integration_testing", "integration_report", run_id, metadata_uri
        )
        approve = _configure(
            approval(
                model=train.outputs["model"],
                evaluation_report=evaluate.outputs["evaluation_report"],
                integration_report=integrate.outputs["integration_report"],
                integration_verdict=integration_gate.outputs["verdict"],
                model_name=model_name,
                approval_backend=approval_backend,
                requested_by=requested_by,
                approver_group=approver_group,
                demo_approver=demo_approver,
                timeout_s=approval_timeout_s,
                run_id=run_id,
                metadata_uri=metadata_uri,
            )
        )
        _configure(
            deployment(
                model=train.outputs["model"],
                approval=approve.outputs["approval"],
                strategy=deployment_strategy,
                canary_percent=canary_percent,
                ledger_uri=ledger_uri,
                run_id=run_id,
                metadata_uri=metadata_uri,
            )
        )

    return compliance_pipeline


compliance_pipeline = build_pipeline()
