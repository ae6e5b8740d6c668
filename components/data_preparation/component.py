"""KFP declaration of the data preparation stage (thin wrapper over the executor)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Output

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
):
    """Check the source's quality with TFDV against the declared schema and policy; emit a
    content-versioned dataset. With `baseline_dataset_uri` (an earlier validated dataset) it also
    checks drift. Fails (halting the pipeline) when the data quality gate fails."""
    from pathlib import Path

    from aiact.stage import run_info
    from components.data_preparation.executor import run_data_preparation

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
        baseline_dataset_uri=baseline_dataset_uri,
    )
    dataset.metadata.update(metadata)
