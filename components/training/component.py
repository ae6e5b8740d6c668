"""KFP declaration of the training stage (the pipeline adds its GPU request)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.images import TRAINING_IMAGE


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def training(
    feature_set: Input[Dataset],
    transform: Input[Artifact],
    feature_verdict: Input[Artifact],
    hyperparameters: dict,
    seed: int,
    model_name: str,
    use_case_uri: str,
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
    `experimental`.

    Args:
        feature_set: The feature set engineered in this run.
        transform: The transform fitted with it.
        feature_verdict: The feature gate's verdict (its verdict task's output): training
            starts only after the feature gate passed.
        hyperparameters: Documented hyperparameters (hashed into the lineage).
        seed: Random seed; training is deterministic on CPU.
        model_name: Registry name of the model; empty takes the use case's model_name.
        use_case_uri: The run's use case folder, path or s3:// (empty: the bundled credit
            example).
        device: auto, cpu or cuda.
        run_id: The pipeline run (KFP's job id) every record of this stage is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        model: The trained model (weights and model card), recorded as `experimental`.
        training_report: The training report (JSON): hyperparameters, seed, duration,
            resources, loss curves.
        training_report_html: The same report with its loss curves, for the KFP UI.
        training_metrics: Best epoch, losses, duration and peak memory as KFP metrics.
    """
    from aiact.fastexit import exit_fast_after_outputs, imports_with_gc_paused

    with imports_with_gc_paused():  # the stage's libraries load without GC passes
        from pathlib import Path

        from aiact.stage import run_info
        from components.training.executor import run_training

    exit_fast_after_outputs()  # skip the slow teardown once KFP wrote the outputs

    metadata = run_training(
        run=run_info(run_id),
        metadata_uri=metadata_uri,
        feature_set_dir=Path(feature_set.path),
        feature_set_uri=feature_set.uri,
        transform_path=Path(transform.path),
        transform_uri=transform.uri,
        feature_verdict_path=Path(feature_verdict.path),
        feature_verdict_uri=feature_verdict.uri,
        hyperparameters=hyperparameters,
        seed=seed,
        model_name=model_name,
        use_case_uri=use_case_uri,
        device=device,
        model_dir=Path(model.path),
        model_uri=model.uri,
        report_path=Path(training_report.path),
        report_uri=training_report.uri,
        report_html_path=Path(training_report_html.path),
        report_html_uri=training_report_html.uri,
    )
    model.metadata.update(metadata)
    for key in ("best_epoch", "val_loss", "train_loss", "duration_s", "peak_rss_mb"):
        training_metrics.log_metric(key, metadata[key])
