"""KFP declaration of the integration testing stage."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.images import EVALUATION_IMAGE


@dsl.component(base_image=EVALUATION_IMAGE, install_kfp_package=False)
def integration_testing(
    model: Input[Model],
    registration: Input[Artifact],
    feature_set: Input[Dataset],
    gate_policy: dict,
    use_case_uri: str,
    run_id: str,
    metadata_uri: str,
    integration_report: Output[Artifact],
):
    """Serve the staged model in its own process and run contract, regression and end-to-end
    tests against it; fails (halting the pipeline) when any test fails.

    Args:
        model: The model registered in this run.
        registration: Its registration record.
        feature_set: The feature set whose test split provides the requests.
        gate_policy: The declared gate thresholds (empty: the use case's policy.yaml).
        use_case_uri: The run's use case folder, path or s3:// (empty: the bundled credit
            example).
        run_id: The pipeline run (KFP's job id) every record of this stage is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        integration_report: The integration test report (JSON) with the gate verdict.
    """
    from pathlib import Path

    from aiact.stage import run_info
    from components.integration_testing.executor import run_integration_testing

    metadata = run_integration_testing(
        run=run_info(run_id),
        metadata_uri=metadata_uri,
        model_dir=Path(model.path),
        model_uri=model.uri,
        registration_path=Path(registration.path),
        registration_uri=registration.uri,
        feature_set_dir=Path(feature_set.path),
        feature_set_uri=feature_set.uri,
        policy=gate_policy,
        use_case_uri=use_case_uri,
        report_path=Path(integration_report.path),
        report_uri=integration_report.uri,
    )
    integration_report.metadata.update(metadata)
