"""KFP declaration of the evaluation stage."""

from kfp import dsl
from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from components.images import EVALUATION_IMAGE


@dsl.component(base_image=EVALUATION_IMAGE, install_kfp_package=False)
def evaluation(
    model: Input[Model],
    feature_set: Input[Dataset],
    gate_policy: dict,
    use_case_uri: str,
    run_id: str,
    metadata_uri: str,
    evaluation_report: Output[Artifact],
    evaluation_report_html: Output[HTML],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    evaluation_summary: Output[Markdown],
):
    """Holdout performance, fairness, robustness, calibration and drift (against the training
    split, the production model's reference data from MLMD and the same-run baseline) against
    declared thresholds. Completes with its evidence and verdict whatever the verdict, so the
    KFP UI shows its metrics, confusion matrix, ROC curve and report when the gate fails; its
    verdict task (gate_verdict) halts the run on a breach.

    Args:
        model: The model trained in this run.
        feature_set: The feature set it was trained on (its test split is the holdout).
        gate_policy: The declared gate thresholds (empty: the use case's policy.yaml).
        use_case_uri: The run's use case folder, path or s3:// (empty: the bundled credit
            example).
        run_id: The pipeline run (KFP's job id) every record of this stage is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        evaluation_report: The evaluation report (JSON) with the gate verdict.
        evaluation_report_html: The same report with its plots, for the KFP UI.
        metrics: Performance and gate figures as KFP metrics.
        classification_metrics: Confusion matrix and ROC curve of the holdout.
        evaluation_summary: The verdict and every breached check, for the run page.
    """
    from aiact.fastexit import exit_fast_after_outputs, imports_with_gc_paused

    with imports_with_gc_paused():  # the stage's libraries load without GC passes
        from pathlib import Path

        from aiact.stage import run_info
        from components.evaluation.executor import run_evaluation

    exit_fast_after_outputs()  # skip the slow teardown once KFP wrote the outputs

    outcome = run_evaluation(
        run=run_info(run_id),
        metadata_uri=metadata_uri,
        model_dir=Path(model.path),
        model_uri=model.uri,
        feature_set_dir=Path(feature_set.path),
        feature_set_uri=feature_set.uri,
        policy=gate_policy,
        use_case_uri=use_case_uri,
        report_path=Path(evaluation_report.path),
        report_uri=evaluation_report.uri,
        report_html_path=Path(evaluation_report_html.path),
        report_html_uri=evaluation_report_html.uri,
        summary_path=Path(evaluation_summary.path),
        halt=False,
    )
    for name, value in outcome.evidence["performance"].items():
        metrics.log_metric(name, round(value, 6))
    for check in outcome.gate.checks:
        if isinstance(check.value, int | float) and check.name not in metrics.metadata:
            metrics.log_metric(check.name, check.value)
    classification_metrics.log_confusion_matrix(["reject", "approve"], outcome.confusion)
    classification_metrics.log_roc_curve(
        outcome.roc["fpr"], outcome.roc["tpr"], outcome.roc["thresholds"]
    )
