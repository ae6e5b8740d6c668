"""KFP declaration of the registration stage."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.images import CONTROL_IMAGE


@dsl.component(base_image=CONTROL_IMAGE, install_kfp_package=False)
def registration(
    model: Input[Model],
    evaluation_report: Input[Artifact],
    dataset: Input[Dataset],
    run_id: str,
    metadata_uri: str,
    registration: Output[Artifact],
):
    """Promote the model to `staging` with its evaluation report, dataset version, code commit
    and run id attached; refused unless the evaluation of this very model passed.

    Args:
        model: The model trained in this run.
        evaluation_report: Its passing evaluation report from this run.
        dataset: The dataset version it was trained on.
        run_id: The pipeline run (KFP's job id) every record of this stage is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        registration: The registration record (JSON) naming the model, report and dataset
            digests.
    """
    from pathlib import Path

    from aiact.stage import run_info
    from components.registration.executor import run_registration

    record = run_registration(
        run=run_info(run_id),
        metadata_uri=metadata_uri,
        model_dir=Path(model.path),
        model_uri=model.uri,
        evaluation_report_path=Path(evaluation_report.path),
        evaluation_report_uri=evaluation_report.uri,
        dataset_dir=Path(dataset.path),
        dataset_uri=dataset.uri,
        registration_path=Path(registration.path),
        registration_uri=registration.uri,
    )
    registration.metadata.update(record)
