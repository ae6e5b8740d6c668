"""KFP declaration of the integration testing stage."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Model, Output

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
    server_log: Output[Artifact],
    integration_report_html: Output[HTML],
    integration_summary: Output[Markdown],
    integration_namespace: str = "",
):
    """Serve the staged model with KServe's ModelServer (Open Inference Protocol v2) and test
    readiness, input contract, 4xx rejection of bad requests, served-vs-evaluated predictions
    and p95 latency. Completes with its evidence and verdict whatever the verdict (so the KFP UI
    shows the report); its verdict task (gate_verdict) halts the run when a test failed.

    Locally the server is a process on 127.0.0.1 from the KServe environment (`.venv-serving`,
    or AIACT_SERVING_PYTHON), started with the stage so that its libraries load while the
    model's chain of custody is verified, and told which model to serve only once custody
    holds; in a pod it is an InferenceService (the aiact-serving image, the
    registered model's URI as storage) in the integration namespace, deleted afterwards. Every
    wait has a timeout; a server that does not come up or stops answering fails the gate.

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
        server_log: The model server's log (stdout and stderr; on a cluster the
            InferenceService as created, its last status and the predictor's log).
        integration_report_html: The same report, for reading in the KFP UI.
        integration_summary: The verdict and every failed test, for the run page.
        integration_namespace: Namespace of the integration InferenceService on a cluster
            (empty: the pipeline pod's own namespace).
    """
    from aiact.fastexit import exit_fast_after_outputs, imports_with_gc_paused

    with imports_with_gc_paused():  # the stage's libraries load without GC passes
        from pathlib import Path

        from aiact.stage import run_info
        from components.integration_testing.core import ServingOptions
        from components.integration_testing.executor import run_integration_testing

    exit_fast_after_outputs()  # skip the slow teardown once KFP wrote the outputs

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
        server_log_path=Path(server_log.path),
        server_log_uri=server_log.uri,
        serving=ServingOptions(namespace=integration_namespace),
        report_html_path=Path(integration_report_html.path),
        report_html_uri=integration_report_html.uri,
        summary_path=Path(integration_summary.path),
        halt=False,
    )
    integration_report.metadata.update(metadata)
