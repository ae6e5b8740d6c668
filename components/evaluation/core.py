"""Evaluation gate: holdout performance, fairness by every protected attribute (fairlearn), and
a same-run logistic-regression baseline the candidate must not fall behind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from aiact.featureset import FeatureSplit
from aiact.policy import Check, GateResult, at_least, at_most, must_hold

GATE = "evaluation"


@dataclass(frozen=True)
class EvaluationOutcome:
    """Gate verdict, structured evidence, and the curves the KFP UI draws."""

    gate: GateResult
    evidence: dict[str, Any]
    confusion: list[list[int]]
    roc: dict[str, list[float]]


def performance(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Classification metrics on the holdout."""
    predicted = (scores >= threshold).astype(int)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "roc_auc": float(roc_auc_score(labels, scores)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
    }


def fairness(labels: np.ndarray, predicted: np.ndarray, sensitive: np.ndarray) -> dict[str, Any]:
    """Fairlearn's group metrics for one protected attribute."""
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
            "count": lambda y_true, y_pred: len(y_true),
        },
        y_true=labels,
        y_pred=predicted,
        sensitive_features=sensitive,
    )
    return {
        "demographic_parity_difference": float(
            demographic_parity_difference(labels, predicted, sensitive_features=sensitive)
        ),
        "equalized_odds_difference": float(
            equalized_odds_difference(labels, predicted, sensitive_features=sensitive)
        ),
        "by_group": {
            str(group): {k: float(v) for k, v in row.items()}
            for group, row in frame.by_group.to_dict(orient="index").items()
        },
    }


def _widest_rate_gap(attribute: str, groups: dict[str, dict[str, float]]) -> str:
    """Which error rate differs most between groups, and between which groups."""
    gaps = []
    for rate in ("true_positive_rate", "false_positive_rate"):
        low = min(groups, key=lambda g: groups[g][rate])
        high = max(groups, key=lambda g: groups[g][rate])
        gaps.append((groups[high][rate] - groups[low][rate], rate, low, high))
    _, rate, low, high = max(gaps)
    return (
        f"widest {rate} gap: {attribute}={high} {groups[high][rate]:.3f} "
        f"vs {attribute}={low} {groups[low][rate]:.3f}"
    )


def baseline_accuracy(train: FeatureSplit, test: FeatureSplit) -> float:
    """Holdout accuracy of a logistic regression trained on the same features."""
    baseline = LogisticRegression(max_iter=1000, random_state=0)
    baseline.fit(train.features, train.labels)
    return float(accuracy_score(test.labels, baseline.predict(test.features)))


def evaluate(
    scores: np.ndarray,
    train: FeatureSplit,
    test: FeatureSplit,
    threshold: float,
    thresholds: dict[str, Any],
) -> EvaluationOutcome:
    """Every evaluation check, with the evidence behind it."""
    labels = test.labels
    predicted = (scores >= threshold).astype(int)
    perf = performance(labels, scores, threshold)
    checks: list[Check] = [
        at_least("accuracy", round(perf["accuracy"], 6), thresholds["min_accuracy"]),
        at_least("roc_auc", round(perf["roc_auc"], 6), thresholds["min_roc_auc"]),
    ]
    base = baseline_accuracy(train, test)
    checks.append(
        at_most(
            "accuracy_gap_to_baseline",
            round(base - perf["accuracy"], 6),
            thresholds["max_accuracy_gap_to_baseline"],
            f"logistic-regression baseline accuracy {base:.4f}",
        )
    )
    by_attribute = {}
    declared = thresholds["fairness"]
    for attribute in test.groups.columns:
        result = fairness(labels, predicted, test.groups[attribute].to_numpy())
        by_attribute[attribute] = result
        if attribute not in declared:
            checks.append(
                must_hold(
                    f"fairness_declared[{attribute}]", False, "no fairness threshold declared"
                )
            )
            continue
        groups = result["by_group"]
        lowest = min(groups, key=lambda g: groups[g]["selection_rate"])
        checks.append(
            at_most(
                f"demographic_parity_difference[{attribute}]",
                round(result["demographic_parity_difference"], 6),
                declared[attribute]["max_demographic_parity_difference"],
                f"lowest selection rate: {attribute}={lowest}",
            )
        )
        checks.append(
            at_most(
                f"equalized_odds_difference[{attribute}]",
                round(result["equalized_odds_difference"], 6),
                declared[attribute]["max_equalized_odds_difference"],
                _widest_rate_gap(attribute, groups),
            )
        )
    fpr, tpr, cut = roc_curve(labels, scores)
    step = max(1, len(fpr) // 50)
    evidence = {
        "performance": perf,
        "baseline": {"model": "logistic_regression", "accuracy": base},
        "fairness": by_attribute,
        "holdout_rows": len(labels),
        "decision_threshold": threshold,
    }
    return EvaluationOutcome(
        gate=GateResult(GATE, tuple(checks)),
        evidence=evidence,
        confusion=confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        roc={
            "fpr": fpr[::step].tolist(),
            "tpr": tpr[::step].tolist(),
            "thresholds": np.clip(cut[::step], 0.0, 1.0).tolist(),
        },
    )
