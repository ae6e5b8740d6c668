"""KFP declaration of the registration stage."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Model, Output

from components.images import CONTROL_IMAGE


@dsl.component(base_image=CONTROL_IMAGE, install_kfp_package=False)
def registration(
    model: Input[Model],
    evaluation_report: Input[Artifact],
    evaluation_verdict: Input[Artifact],
    dataset: Input[Dataset],
    run_id: str,
    metadata_uri: str,
    registration: Output[Artifact],
    model_card: Output[Artifact],
    model_card_html: Output[HTML],
):
    """Promote the model to `staging` with its evaluation report, dataset version, code commit
    and run id attached; refused unless the evaluation of this very model passed. Writes the
    model's card (Annex IV) as a registered artefact, JSON and HTML, recorded in ML Metadata
    (`aiact.ModelCard`) with its content hash, which the registration record cites.

    Args:
        model: The model trained in this run.
        evaluation_report: Its passing evaluation report from this run.
        evaluation_verdict: The evaluation gate's verdict (its verdict task's output):
            registration starts only after the evaluation gate passed.
        dataset: The dataset version it was trained on.
        run_id: The pipeline run (KFP's job id) every record of this stage is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        registration: The registration record (JSON) naming the model, report and dataset
            digests.
        model_card: The model card (JSON; Annex IV): intended purpose, users, affected persons
            and limitations from the use case, training data and data card, evaluation and
            fairness results, human oversight, model identity.
        model_card_html: The model card as an HTML page (shown in the KFP UI).
    """
    from aiact.fastexit import exit_fast_after_outputs, imports_with_gc_paused

    with imports_with_gc_paused():  # the stage's libraries load without GC passes
        from pathlib import Path

        from aiact.stage import run_info
        from components.registration.executor import run_registration

    exit_fast_after_outputs()  # skip the slow teardown once KFP wrote the outputs

    record = run_registration(
        run=run_info(run_id),
        metadata_uri=metadata_uri,
        model_dir=Path(model.path),
        model_uri=model.uri,
        evaluation_report_path=Path(evaluation_report.path),
        evaluation_report_uri=evaluation_report.uri,
        evaluation_verdict_path=Path(evaluation_verdict.path),
        evaluation_verdict_uri=evaluation_verdict.uri,
        dataset_dir=Path(dataset.path),
        dataset_uri=dataset.uri,
        registration_path=Path(registration.path),
        registration_uri=registration.uri,
        model_card_path=Path(model_card.path),
        model_card_uri=model_card.uri,
        model_card_html_path=Path(model_card_html.path),
        model_card_html_uri=model_card_html.uri,
    )
    registration.metadata.update(record)
    model_card.metadata.update({"sha256": record["model_card_sha256"]})
