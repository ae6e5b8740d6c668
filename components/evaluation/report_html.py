"""The evaluation report's plots for the KFP UI and reviewers (aiact.plots, inline SVG): the
full ROC curve, the confusion matrix, the reliability curve with its bin counts, per-group
fairness rates against the policy's limits, and drift (PSI) against its limits."""

from __future__ import annotations

import math
from typing import Any

from aiact import plots
from aiact.plots import Limit
from components.evaluation.core import DEFAULT_FAIRNESS, EvaluationOutcome

# The classes of the holdout's labels 0 and 1, as the KFP UI's confusion matrix names them.
CLASS_LABELS = ("reject", "approve")
GROUP_METRICS = {
    "selection_rate": "selection rate",
    "true_positive_rate": "true positive rate",
    "false_positive_rate": "false positive rate",
}


def _operating_point(confusion: list[list[int]]) -> tuple[float, float] | None:
    """(false positive rate, true positive rate) of the decisions in a 2x2 confusion matrix."""
    [[tn, fp], [fn, tp]] = confusion
    if tn + fp == 0 or tp + fn == 0:
        return None
    return fp / (tn + fp), tp / (tp + fn)


def fairness_limits(groups: dict[str, dict[str, float]], limits: dict[str, Any]) -> list[Limit]:
    """The policy's fairness limits drawn on the per-group rates: every group's bar must stay
    on the right side of its series' line for the attribute's check to pass.

    demographic parity difference <= d: every selection rate >= highest - d; ratio >= r: every
    selection rate >= r * highest; equalized odds difference <= e: every true positive rate
    >= highest - e and every false positive rate <= lowest + e."""
    selection = [g["selection_rate"] for g in groups.values()]
    tpr = [g["true_positive_rate"] for g in groups.values()]
    fpr = [g["false_positive_rate"] for g in groups.values()]
    if not all(math.isfinite(v) for v in [*selection, *tpr, *fpr]):
        return []
    dp = float(limits["max_demographic_parity_difference"])
    ratio = float(limits["min_demographic_parity_ratio"])
    eo = float(limits["max_equalized_odds_difference"])
    return [
        Limit(
            max(selection) - dp,
            f"selection-rate floor (parity difference <= {dp:g})",
            GROUP_METRICS["selection_rate"],
        ),
        Limit(
            max(selection) * ratio,
            f"selection-rate floor (parity ratio >= {ratio:g})",
            GROUP_METRICS["selection_rate"],
        ),
        Limit(
            max(tpr) - eo,
            f"TPR floor (equalized odds <= {eo:g})",
            GROUP_METRICS["true_positive_rate"],
        ),
        Limit(
            min(fpr) + eo,
            f"FPR ceiling (equalized odds <= {eo:g})",
            GROUP_METRICS["false_positive_rate"],
        ),
    ]


def _fairness_figure(attribute: str, result: dict[str, Any], limits: dict[str, Any] | None) -> str:
    groups = result["by_group"]
    names = list(groups)
    sizes = ", ".join(f"{g}={int(groups[g]['count'])}" for g in names)
    insufficient = result.get("insufficient_data") or []
    caption = f"Per-group rates by {attribute} (group sizes: {sizes})"
    if limits is None:
        caption += "; no fairness limits declared"
    elif insufficient:
        caption += (
            f"; lines: policy limits, not gated (insufficient data: {', '.join(insufficient)})"
        )
    else:
        caption += "; lines: the policy's limits, in the colour of the rate they bound"
    return plots.grouped_bars(
        [f"{attribute}={g}" for g in names],
        {label: [groups[g][metric] for g in names] for metric, label in GROUP_METRICS.items()},
        caption,
        limits=fairness_limits(groups, limits) if limits is not None else [],
        value_label="rate",
        group_label=attribute,
    )


def _drift_figures(drift: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    feature_limit = float(limits["max_feature_psi"])
    references = [r for r, d in drift.items() if isinstance(d, dict) and "features" in d]
    if not references:
        return []
    names = sorted(
        drift[references[0]]["features"], key=lambda n: -drift[references[0]]["features"][n]["psi"]
    )
    figures = [
        plots.grouped_bars(
            names,
            {r: [drift[r]["features"][n]["psi"] for n in names] for r in references},
            "Feature drift (PSI) of the holdout against "
            + " and ".join(references)
            + f"; dashed: limit max_feature_psi {feature_limit:g}",
            limits=[Limit(feature_limit, "max_feature_psi")],
            value_label="population stability index (PSI)",
            horizontal=True,
        )
    ]
    against = [r for r in drift if isinstance(drift[r], dict) and "predictions" in drift[r]]
    prediction_limits = [Limit(float(limits["max_prediction_psi"]), "max_prediction_psi")]
    if "baseline" in against:
        prediction_limits.append(
            Limit(float(limits["max_prediction_psi_to_baseline"]), "max_prediction_psi_to_baseline")
        )
    figures.append(
        plots.grouped_bars(
            against,
            {"prediction PSI": [drift[r]["predictions"]["psi"] for r in against]},
            "Prediction drift (PSI of the model's scores) against each reference; lines: limits",
            limits=prediction_limits,
            value_label="population stability index (PSI)",
            group_label="reference",
        )
    )
    return figures


def figures(outcome: EvaluationOutcome, thresholds: dict[str, Any]) -> list[str]:
    """Inline SVG figures of the evaluation: ROC, confusion matrix, reliability curve,
    per-group fairness (one per protected attribute), feature and prediction drift."""
    evidence = outcome.evidence
    perf = evidence["performance"]
    threshold = evidence["decision_threshold"]
    rows = evidence["holdout_rows"]
    calib = evidence["calibration"]
    result = [
        plots.roc_curve(
            outcome.roc["fpr"],
            outcome.roc["tpr"],
            perf["roc_auc"],
            f"ROC curve of the holdout ({rows} rows), ROC AUC {perf['roc_auc']:.4f}",
            operating_point=_operating_point(outcome.confusion),
            operating_label=f"decision threshold {threshold:g}",
        ),
        plots.confusion_matrix(
            outcome.confusion,
            CLASS_LABELS,
            f"Confusion matrix of the holdout at decision threshold {threshold:g} "
            f"(accuracy {perf['accuracy']:.4f})",
        ),
        plots.reliability_curve(
            calib["reliability_curve"],
            f"Reliability curve ({calib['bins']} equal-width score bins; dashed: perfect "
            f"calibration; bars: samples per bin), ECE {calib['expected_calibration_error']:.4f}",
        ),
    ]
    declared = thresholds["fairness"]
    for attribute, fairness in evidence["fairness"].items():
        limits = declared.get(attribute, declared.get(DEFAULT_FAIRNESS))
        result.append(
            _fairness_figure(attribute, fairness, limits if isinstance(limits, dict) else None)
        )
    result += _drift_figures(evidence["drift"], thresholds["drift"])
    return result
