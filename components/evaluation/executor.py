"""Evaluation executor: score the holdout with the packaged model, run the evaluation gate,
write the structured report (recorded in MLMD even when the gate fails)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.evidence import build_report, write_report
from aiact.featureset import load_feature_set
from aiact.lineage import RunInfo
from aiact.model_package import load_model_package
from aiact.policy import section
from aiact.stage import stage_execution
from components.evaluation import core

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
) -> core.EvaluationOutcome:
    """Run the stage; returns the outcome for the KFP UI. Raises GateFailed on a breach."""
    with stage_execution(STAGE, run, metadata_uri) as stage:
        policy_digest = stage.read_policy(policy)
        model_record = stage.read(lineage.MODEL, model_dir, model_uri, "model")
        stage.read(lineage.FEATURE_SET, feature_set_dir, feature_set_uri, "feature_set")
        package = load_model_package(model_dir)
        splits = load_feature_set(feature_set_dir)
        scores = package.predict_proba(splits["test"].features)
        outcome = core.evaluate(
            scores,
            splits["train"],
            splits["test"],
            package.threshold,
            section(policy, "evaluation"),
        )
        report = build_report(
            "Model evaluation report",
            outcome.gate,
            {
                "model_sha256": model_record.content_sha256,
                **outcome.evidence,
                "confusion_matrix": outcome.confusion,
            },
            policy_sha256=policy_digest,
        )
        write_report(report_path, report_html_path, report)
        perf = outcome.evidence["performance"]
        stage.wrote(
            lineage.EVALUATION_REPORT,
            report_path,
            report_uri,
            "evaluation_report",
            {
                "passed": outcome.gate.passed,
                "accuracy": round(perf["accuracy"], 6),
                "roc_auc": round(perf["roc_auc"], 6),
            },
        )
        outcome.gate.raise_if_failed()
        return outcome
