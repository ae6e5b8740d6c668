"""KFP declaration of the pre-deployment approval stage."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.images import CONTROL_IMAGE


@dsl.component(base_image=CONTROL_IMAGE, install_kfp_package=False)
def approval(
    model: Input[Model],
    evaluation_report: Input[Artifact],
    integration_report: Input[Artifact],
    model_name: str,
    approval_backend: str,
    requested_by: str,
    approver_group: str,
    demo_approver: str,
    timeout_s: float,
    run_id: str,
    metadata_uri: str,
    approval: Output[Artifact],
):
    """Pause the run until a human approves or rejects deployment (or the request expires);
    record who decided, when and why. Fails on rejection or expiry.

    Args:
        model: The model to approve.
        evaluation_report: Its evaluation report, shown to the approvers.
        integration_report: Its integration test report, shown to the approvers.
        model_name: Registry name of the model.
        approval_backend: local:/dir or kubernetes://NAMESPACE (empty: the platform's).
        requested_by: Who requests the approval (the submitter's Kubernetes user name).
        approver_group: The group whose members may decide.
        demo_approver: Record a named demo approval (development only; empty: wait for humans).
        timeout_s: Seconds before the request expires.
        run_id: The pipeline run (KFP's job id) every record of this stage is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        approval: The approval record (JSON): decisions, approvers, times and reasons.
    """
    from pathlib import Path

    from aiact.stage import run_info
    from components.approval.executor import run_approval

    metadata = run_approval(
        run=run_info(run_id),
        metadata_uri=metadata_uri,
        backend_uri=approval_backend,
        model_name=model_name,
        model_dir=Path(model.path),
        model_uri=model.uri,
        evaluation_report_path=Path(evaluation_report.path),
        evaluation_report_uri=evaluation_report.uri,
        integration_report_path=Path(integration_report.path),
        integration_report_uri=integration_report.uri,
        requested_by=requested_by,
        approver_group=approver_group,
        demo_approver=demo_approver,
        timeout_s=timeout_s,
        approval_path=Path(approval.path),
        approval_uri=approval.uri,
    )
    approval.metadata.update(metadata)
