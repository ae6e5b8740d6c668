"""KFP declaration of the pre-deployment approval stage."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Model, Output

from components.images import CONTROL_IMAGE


@dsl.component(base_image=CONTROL_IMAGE, install_kfp_package=False)
def approval(
    model: Input[Model],
    evaluation_report: Input[Artifact],
    integration_report: Input[Artifact],
    integration_verdict: Input[Artifact],
    model_name: str,
    approval_backend: str,
    requested_by: str,
    approver_group: str,
    demo_approver: str,
    timeout_s: float,
    run_id: str,
    metadata_uri: str,
    approval: Output[Artifact],
    review_page: Output[HTML],
):
    """Pause the run until a human approves or rejects deployment (or the request expires);
    record who decided, when and why. Fails on rejection or expiry.

    Review page: before it raises the request, the stage renders one self-contained HTML page
    for the approvers (model card; every gate's verdict with its evidence; per-group fairness
    with confusion matrices and confidence intervals; ROC and calibration plots; comparison with
    the production model; integration tests; the gate policy's hash and where it is stricter
    than the platform floor; the acknowledgements required; the exact approve and reject
    commands). The request (ModelApproval spec.reviewPage) names its URI and SHA-256. It is this
    task's `review_page` output: the KFP UI's artifact viewer shows it once the task has ended,
    and while the request is pending it is already at that output's object store path (the
    stage uploads it itself), from where `aiact approvals --review NAME --out DIR` fetches it
    and refuses a copy whose hash differs from the request's.

    Args:
        model: The model to approve.
        evaluation_report: Its evaluation report, shown to the approvers.
        integration_report: Its integration test report, shown to the approvers.
        integration_verdict: The integration gate's verdict (its verdict task's output):
            approval is requested only after the integration gate passed.
        model_name: Registry name of the model.
        approval_backend: local:/dir or kubernetes://NAMESPACE (empty: the platform's).
        requested_by: Who requests the approval (the submitter's Kubernetes user name).
        approver_group: The group whose members may decide.
        demo_approver: Record a named demo approval (development only; empty: wait for humans).
        timeout_s: Seconds before the request expires.
        run_id: The pipeline run (KFP's job id) every record of this stage is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        approval: The approval record (JSON): decisions, approvers, times and reasons.
        review_page: The approval review page (HTML) the approvers read; its URI and SHA-256
            are fields of the approval request.
    """
    from aiact.fastexit import exit_fast_after_outputs, imports_with_gc_paused

    with imports_with_gc_paused():  # the stage's libraries load without GC passes
        from pathlib import Path

        from aiact.stage import run_info
        from components.approval.executor import run_approval

    exit_fast_after_outputs()  # skip the slow teardown once KFP wrote the outputs

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
        integration_verdict_path=Path(integration_verdict.path),
        integration_verdict_uri=integration_verdict.uri,
        requested_by=requested_by,
        approver_group=approver_group,
        demo_approver=demo_approver,
        timeout_s=timeout_s,
        approval_path=Path(approval.path),
        approval_uri=approval.uri,
        review_page_path=Path(review_page.path),
        review_page_uri=review_page.uri,
    )
    approval.metadata.update(metadata)
