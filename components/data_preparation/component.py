"""KFP declaration of the data preparation stage (thin wrapper over the executor)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Output

from components.images import DATA_IMAGE


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def data_preparation(
    source_uri: str,
    data_card_uri: str,
    use_case_uri: str,
    gate_policy: dict,
    run_id: str,
    metadata_uri: str,
    code_commit: str,
    pipeline_spec_sha256: str,
    environment: str,
    baseline_dataset_uri: str,
    submission_id: str,
    dataset: Output[Dataset],
    validation_report: Output[Artifact],
    validation_report_html: Output[HTML],
    validation_summary: Output[Markdown],
):
    """Check the source's quality with TFDV against the declared schema and policy; emit a
    content-versioned dataset. With `baseline_dataset_uri` (an earlier validated dataset) it also
    checks drift. Completes with its evidence and verdict whatever the verdict (so the KFP UI
    shows them); its verdict task (gate_verdict) halts the run when the gate breached, and no
    dataset is produced then.

    Args:
        source_uri: The raw data, a CSV or Parquet path or s3:// URI.
        data_card_uri: Its data card (empty: the use case's data_card.yaml).
        use_case_uri: The run's use case folder, path or s3:// (empty: the bundled credit
            example).
        gate_policy: The declared gate thresholds (empty: the use case's policy.yaml).
        run_id: The pipeline run (KFP's job id) every record of this stage is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        code_commit: The source commit of the pipeline code (recorded in the lineage).
        pipeline_spec_sha256: The compiled spec's own hash (recorded in the lineage).
        environment: development, staging or production.
        baseline_dataset_uri: An earlier validated dataset to check drift against (empty: no
            drift check).
        submission_id: An identifier the submitter chose to find this run again (may be empty).
        dataset: The validated, content-versioned dataset.
        validation_report: The data validation report (JSON) with the gate verdict.
        validation_report_html: The same report, for reading in the KFP UI.
        validation_summary: The verdict and every breached check, for the run page.
    """
    from aiact.fastexit import exit_fast_after_outputs, imports_with_gc_paused

    with imports_with_gc_paused():  # the stage's libraries load without GC passes
        from pathlib import Path

        # TFDV (with tensorflow) is most of this stage's start-up: the gate's statistics and
        # anomalies come from it, so it loads here with the rest, not at its first use.
        import tensorflow_data_validation  # noqa: F401

        from aiact.stage import run_info
        from components.data_preparation.executor import run_data_preparation

    exit_fast_after_outputs()  # skip the slow teardown once KFP wrote the outputs

    metadata = run_data_preparation(
        run=run_info(run_id, code_commit, pipeline_spec_sha256, environment, submission_id),
        metadata_uri=metadata_uri,
        source_uri=source_uri,
        data_card_uri=data_card_uri,
        use_case_uri=use_case_uri,
        policy=gate_policy,
        dataset_dir=Path(dataset.path),
        dataset_uri=dataset.uri,
        report_path=Path(validation_report.path),
        report_uri=validation_report.uri,
        report_html_path=Path(validation_report_html.path),
        report_html_uri=validation_report_html.uri,
        baseline_dataset_uri=baseline_dataset_uri,
        summary_path=Path(validation_summary.path),
        halt=False,
    )
    dataset.metadata.update(metadata)
