"""KFP declaration of the feature engineering stage."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Output

from components.images import DATA_IMAGE


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def feature_engineering(
    dataset: Input[Dataset],
    data_verdict: Input[Artifact],
    use_case_uri: str,
    gate_policy: dict,
    seed: int,
    run_id: str,
    metadata_uri: str,
    feature_set: Output[Dataset],
    transform: Output[Artifact],
    feature_report: Output[Artifact],
    feature_report_html: Output[HTML],
    feature_summary: Output[Markdown],
):
    """Split the validated dataset, fit the declared transform on the training split, and fail
    when any feature leaves its declared range or the schema differs from the specification
    (the task completes with its evidence; its verdict task halts the run on a breach).

    Args:
        dataset: The dataset validated by data preparation in this run.
        data_verdict: The data gate's verdict (its verdict task's output): this stage starts
            only after the data gate passed.
        use_case_uri: The run's use case folder, path or s3:// (empty: the bundled credit
            example).
        gate_policy: The declared gate thresholds (empty: the use case's policy.yaml).
        seed: Random seed of the stratified split.
        run_id: The pipeline run (KFP's job id) every record of this stage is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        feature_set: The train, validation and test splits, transformed.
        transform: The transform fitted on the training split (JSON).
        feature_report: The feature report (JSON) with the gate verdict and statistics digests.
        feature_report_html: The same report, for reading in the KFP UI.
        feature_summary: The verdict and every breached check, for the run page.
    """
    from aiact.fastexit import exit_fast_after_outputs, imports_with_gc_paused

    with imports_with_gc_paused():  # the stage's libraries load without GC passes
        from pathlib import Path

        from aiact.stage import run_info
        from components.feature_engineering.executor import run_feature_engineering

    exit_fast_after_outputs()  # skip the slow teardown once KFP wrote the outputs

    metadata = run_feature_engineering(
        run=run_info(run_id),
        metadata_uri=metadata_uri,
        dataset_dir=Path(dataset.path),
        dataset_uri=dataset.uri,
        use_case_uri=use_case_uri,
        policy=gate_policy,
        seed=seed,
        feature_set_dir=Path(feature_set.path),
        feature_set_uri=feature_set.uri,
        transform_path=Path(transform.path),
        transform_uri=transform.uri,
        report_path=Path(feature_report.path),
        report_uri=feature_report.uri,
        report_html_path=Path(feature_report_html.path),
        report_html_uri=feature_report_html.uri,
        data_verdict_path=Path(data_verdict.path),
        data_verdict_uri=data_verdict.uri,
        summary_path=Path(feature_summary.path),
        halt=False,
    )
    feature_set.metadata.update(metadata)
