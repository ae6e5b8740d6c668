"""KFP declaration of the training stage (the pipeline adds its GPU request)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.images import TRAINING_IMAGE


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def training(
    feature_set: Input[Dataset],
    transform: Input[Artifact],
    hyperparameters: dict,
    seed: int,
    model_name: str,
    device: str,
    run_id: str,
    metadata_uri: str,
    model: Output[Model],
    training_report: Output[Artifact],
    training_report_html: Output[HTML],
    training_metrics: Output[Metrics],
):
    """Train the candidate with documented hyperparameters and seed; record duration,
    resources and convergence (loss curves in the HTML report); register the model as
    `experimental`."""
    from pathlib import Path

    from aiact.stage import run_info
    from components.training.executor import run_training

    metadata = run_training(
        run=run_info(run_id),
        metadata_uri=metadata_uri,
        feature_set_dir=Path(feature_set.path),
        feature_set_uri=feature_set.uri,
        transform_path=Path(transform.path),
        transform_uri=transform.uri,
        hyperparameters=hyperparameters,
        seed=seed,
        model_name=model_name,
        device=device,
        model_dir=Path(model.path),
        model_uri=model.uri,
        report_path=Path(training_report.path),
        report_uri=training_report.uri,
        report_html_path=Path(training_report_html.path),
    )
    model.metadata.update(metadata)
    for key in ("best_epoch", "val_loss", "train_loss", "duration_s", "peak_rss_mb"):
        training_metrics.log_metric(key, metadata[key])
