"""The evaluation report's plots for the KFP UI: reliability curve, per-group fairness metrics
and feature drift, as inline SVG."""

from __future__ import annotations

from typing import Any

from aiact.svg import bar_chart, line_chart

GROUP_METRICS = ("selection_rate", "true_positive_rate", "false_positive_rate")


def figures(evidence: dict[str, Any], thresholds: dict[str, Any]) -> list[str]:
    """Inline SVG figures drawn from the evaluation evidence."""
    curve = evidence["calibration"]["reliability_curve"]
    plots = [
        line_chart(
            "Reliability curve (observed approval rate per score bin; dashed: perfect)",
            {"model": [(b["mean_score"], b["observed_rate"]) for b in curve]},
            "mean predicted probability",
            "observed rate",
            diagonal=True,
        )
    ]
    for attribute, result in evidence["fairness"].items():
        groups = result["by_group"]
        plots.append(
            bar_chart(
                f"Per-group metrics by {attribute} (group sizes: "
                + ", ".join(f"{g}={int(v['count'])}" for g, v in groups.items())
                + ")",
                list(groups),
                {metric: [groups[g][metric] for g in groups] for metric in GROUP_METRICS},
            )
        )
    limit = float(thresholds["drift"]["max_feature_psi"])
    for reference, drift in evidence["drift"].items():
        if "features" not in drift:
            continue
        names = sorted(drift["features"], key=lambda n: -drift["features"][n]["psi"])
        plots.append(
            bar_chart(
                f"Feature drift (PSI) of the holdout against {reference}; red: limit {limit:g}",
                names,
                {"psi": [drift["features"][n]["psi"] for n in names]},
                limit=limit,
            )
        )
    return plots
