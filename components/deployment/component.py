"""KFP declaration of the deployment stage."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model, Output

from components.images import CONTROL_IMAGE


@dsl.component(base_image=CONTROL_IMAGE, install_kfp_package=False)
def deployment(
    model: Input[Model],
    approval: Input[Artifact],
    strategy: str,
    canary_percent: int,
    ledger_uri: str,
    run_id: str,
    metadata_uri: str,
    deployment: Output[Artifact],
    deployment_summary: Output[Markdown],
):
    """Roll out the approved model (canary, shadow or full) and append the rollout to the
    immutable deployment ledger; refused without an approving decision for this model.

    Args:
        model: The approved model.
        approval: Its approval record from this run.
        strategy: canary, shadow or full.
        canary_percent: Traffic share of a canary rollout, in percent.
        ledger_uri: The write-once deployment ledger, file:// or s3:// (empty: the platform's).
        run_id: The pipeline run (KFP's job id) every record of this stage is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        deployment: The deployment record (JSON), as written to the ledger.
        deployment_summary: What was rolled out and its ledger entry, for the run page.
    """
    from aiact.fastexit import exit_fast_after_outputs, imports_with_gc_paused

    with imports_with_gc_paused():  # the stage's libraries load without GC passes
        from pathlib import Path

        from aiact.stage import run_info
        from components.deployment.executor import run_deployment

    exit_fast_after_outputs()  # skip the slow teardown once KFP wrote the outputs

    metadata = run_deployment(
        run=run_info(run_id),
        metadata_uri=metadata_uri,
        model_dir=Path(model.path),
        model_uri=model.uri,
        approval_path=Path(approval.path),
        approval_uri=approval.uri,
        strategy=strategy,
        canary_percent=canary_percent,
        ledger_uri=ledger_uri,
        deployment_path=Path(deployment.path),
        deployment_uri=deployment.uri,
        summary_path=Path(deployment_summary.path),
    )
    deployment.metadata.update(metadata)
