"""Evaluation executor: score the holdout with the packaged model, find the production model's
reference data in MLMD, run the evaluation gate, write the structured report and its HTML view
(recorded in MLMD even when the gate fails)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.evidence import build_report, page_type, write_report, write_summary
from aiact.featureset import feature_names, load_feature_set
from aiact.lineage import RunInfo
from aiact.model_package import load_model_package
from aiact.policy import section
from aiact.stage import stage_execution
from aiact.usecase import load_use_case, record_of, resolve_policy
from components.evaluation import core
from components.evaluation.reference import production_reference
from components.evaluation.report_html import figures
from components.evaluation.robustness import feature_blocks

STAGE = "evaluation"


def run_evaluation(
    *,
    run: RunInfo,
    metadata_uri: str,
    model_dir: Path,
    model_uri: str,
    feature_set_dir: Path,
    feature_set_uri: str,
    policy: dict[str, Any],
    report_path: Path,
    report_uri: str,
    report_html_path: Path,
    use_case_uri: str = "",
    summary_path: Path | None = None,
    halt: bool = True,
    report_html_uri: str = "",
) -> core.EvaluationOutcome:
    """Run the stage; returns the outcome for the KFP UI, whatever the verdict.

    The execution completes either way, recording the report, its HTML view, `summary_path`
    (Markdown for the KFP run page) and the verdict; `halt` then raises GateFailed on a breach
    (in-process callers); in the pipeline the gate's verdict task halts the run instead, so
    the KFP UI shows this task's metrics even when the gate fails.

    The use case (`use_case_uri`, '' = the bundled example) must be the one data preparation
    read in this run; `policy` ({} = its policy.yaml) holds fairness limits for its declared
    protected attributes. Only a production model of the same name and use case is a
    reference."""
    with (
        stage_execution(STAGE, run, metadata_uri) as stage,
        tempfile.TemporaryDirectory() as scratch,
    ):
        use_case = load_use_case(use_case_uri, Path(scratch))
        stage.inputs.append(record_of(use_case))
        stage.properties["use_case"] = use_case.name
        policy = resolve_policy(policy, use_case)
        policy_digest = stage.read_policy(policy)
        model_record = stage.read(lineage.MODEL, model_dir, model_uri, "model")
        features = stage.read(lineage.FEATURE_SET, feature_set_dir, feature_set_uri, "feature_set")
        custody = stage.verify_upstream(
            through="training",
            model=model_record.content_sha256,
            feature_set=features.content_sha256,
            policy=policy_digest,
        )
        stage.require_same(
            "use case",
            use_case.sha256,
            custody.digest("data_preparation", "use_case"),
            "data preparation read",
        )
        package = load_model_package(model_dir)
        splits = load_feature_set(feature_set_dir)
        transform = package.transform
        if transform.feature_names != feature_names(feature_set_dir):
            raise ValueError("the model's transform does not produce the feature set's columns")
        production, reference_records = production_reference(
            stage.lineage, transform, str(package.manifest.get("model_name", "")), use_case.name
        )
        # A production model identical to the candidate is already an input (as `model`).
        known = {(r.type_name, r.content_sha256) for r in stage.inputs}
        stage.inputs += [
            r for r in reference_records if (r.type_name, r.content_sha256) not in known
        ]
        outcome = core.evaluate(
            package.predict_proba,
            splits["train"],
            splits["test"],
            package.threshold,
            section(policy, "evaluation"),
            feature_names=transform.feature_names,
            blocks=feature_blocks(transform),
            production=production,
            environment=stage.run.environment,
        )
        report = build_report(
            "Model evaluation report",
            outcome.gate,
            {
                "model_sha256": model_record.content_sha256,
                "feature_set_sha256": features.content_sha256,
                "dataset_sha256": custody.digest("data_preparation", "dataset"),
                **outcome.evidence,
                "confusion_matrix": outcome.confusion,
                # The full curve (as handed to the KFP UI), for the review page's ROC plot.
                "roc_curve": outcome.roc,
            },
            policy_sha256=policy_digest,
        )
        plots = figures(outcome, section(policy, "evaluation"))
        write_report(report_path, report_html_path, report, figures=plots)
        perf = outcome.evidence["performance"]
        calib = outcome.evidence["calibration"]
        stage.wrote(
            lineage.EVALUATION_REPORT,
            report_path,
            report_uri,
            "evaluation_report",
            {
                "passed": outcome.gate.passed,
                "accuracy": round(perf["accuracy"], 6),
                "roc_auc": round(perf["roc_auc"], 6),
                "expected_calibration_error": round(calib["expected_calibration_error"], 6),
                "breaches": ", ".join(c.name for c in outcome.gate.breaches),
            },
        )
        stage.wrote(
            page_type(lineage.EVALUATION_REPORT),
            report_html_path,
            report_html_uri or str(report_html_path),
            "evaluation_report_html",
        )
        stage.record_verdict(outcome.gate)
        write_summary(summary_path, report)
    if halt:
        outcome.gate.raise_if_failed()
    return outcome
