"""Evaluation gate: holdout performance, fairness by every protected attribute (fairlearn),
robustness, calibration, drift against the training split, the production model's reference
data and a same-run logistic-regression baseline; every metric against a declared threshold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
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

from aiact.evidence import ACKNOWLEDGE, NOTES
from aiact.featureset import FeatureSplit
from aiact.platform import DEVELOPMENT, PRODUCTION
from aiact.policy import Check, GateResult, at_least, at_most, must_hold
from components.evaluation.calibration import calibration
from components.evaluation.drift import feature_drift, score_drift, worst
from components.evaluation.fairness_statistics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    DEFAULT_MIN_GROUP_SIZE,
    INSUFFICIENT,
    METRICS,
    bootstrap_intervals,
    group_statistics,
    interval_text,
)
from components.evaluation.robustness import FeatureBlock, robustness

GATE = "evaluation"
# The reviewer's note when there is no production model to compare the candidate with.
NO_PRODUCTION_NOTE = (
    "no production model of this name and use case yet: drift against production not assessed"
)
Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ProductionReference:
    """The production model's reference data: its feature set's test split through the
    candidate's transform, and the production model's own scores on it."""

    model_version: str
    feature_set_uri: str
    features: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class NoProductionReference:
    """Why there is nothing to compare with: no production model (first deployment), or one
    whose reference data cannot be read (`model_found`)."""

    reason: str
    model_found: bool = False


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


def fairness(
    labels: np.ndarray,
    predicted: np.ndarray,
    sensitive: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """Fairlearn's group metrics for one protected attribute, with their statistics.

    Args:
        labels: True labels of the holdout (0/1).
        predicted: The model's decisions (0/1).
        sensitive: The protected attribute's value of each row.
        scores: The model's probabilities, for per-group ROC AUC (None: no AUC).
        resamples: Bootstrap resamples of the confidence intervals.
        seed: Seed of the bootstrap.
        confidence: Coverage of the confidence intervals.

    Returns:
        The three metrics (fairlearn's point estimates), `by_group` (fairlearn's per-group
        rates and count, plus accuracy, ROC AUC, positives and negatives), `group_sizes`, and
        `confidence_intervals` (fairness_statistics.bootstrap_intervals).
    """
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
    statistics = group_statistics(labels, predicted, sensitive, scores)
    by_group: dict[str, dict[str, Any]] = {
        str(group): {k: float(v) for k, v in row.items()}
        for group, row in frame.by_group.to_dict(orient="index").items()
    }
    for group, row in by_group.items():
        row.update(
            {k: statistics[group][k] for k in ("accuracy", "roc_auc", "positives", "negatives")}
        )
    return {
        "demographic_parity_difference": float(
            demographic_parity_difference(labels, predicted, sensitive_features=sensitive)
        ),
        "demographic_parity_ratio": float(
            demographic_parity_ratio(labels, predicted, sensitive_features=sensitive)
        ),
        "equalized_odds_difference": float(
            equalized_odds_difference(labels, predicted, sensitive_features=sensitive)
        ),
        "by_group": by_group,
        "group_sizes": {group: row["rows"] for group, row in statistics.items()},
        "confidence_intervals": bootstrap_intervals(
            labels, predicted, sensitive, resamples=resamples, seed=seed, confidence=confidence
        ),
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


def baseline_scores(train: FeatureSplit, test: FeatureSplit) -> np.ndarray:
    """Holdout probabilities of a logistic regression trained on the same features."""
    baseline = LogisticRegression(max_iter=1000, random_state=0)
    baseline.fit(train.features, train.labels)
    scores: np.ndarray = baseline.predict_proba(test.features)[:, 1]
    return scores


def _r(value: float) -> float:
    return round(float(value), 6)


def _performance_checks(
    perf: dict[str, float], base: dict[str, float], thresholds: dict[str, Any]
) -> list[Check]:
    checks = [
        at_least(name, _r(perf[name]), thresholds[f"min_{name}"])
        for name in ("accuracy", "roc_auc", "f1", "precision", "recall")
    ]
    for name in ("accuracy", "roc_auc"):
        checks.append(
            at_most(
                f"{name}_gap_to_baseline",
                _r(base[name] - perf[name]),
                thresholds[f"max_{name}_gap_to_baseline"],
                f"logistic-regression baseline {name} {base[name]:.4f}",
            )
        )
    return checks


# The fairness limits for protected attributes the policy does not name.
DEFAULT_FAIRNESS = "default"


def _fairness_limits(declared: dict[str, Any], attribute: str) -> dict[str, Any] | None:
    """The attribute's own limits, else the policy's `default` block, else None."""
    limits = declared.get(attribute, declared.get(DEFAULT_FAIRNESS))
    return limits if isinstance(limits, dict) else None


def _insufficient_checks(
    attribute: str,
    result: dict[str, Any],
    limits: dict[str, Any],
    small: dict[str, int],
    min_size: int,
    environment: str,
) -> list[Check]:
    """A group below fairness_min_group_size: the metric checks report "insufficient data"
    instead of a number. `insufficient_data[attribute]` passes outside production; in
    production it passes only as a finding every approver must acknowledge explicitly (the
    approval stage lists it on the request; an approval without it is refused and deployment
    re-checks it), so shrinking a group is never a silent way around the fairness gate."""
    groups = ", ".join(f"{attribute}={g} has {n} rows" for g, n in small.items())
    intervals = result["confidence_intervals"]
    confidence = intervals["confidence"]
    checks = []
    for name, comparison, key in (
        ("demographic_parity_difference", "<=", "max_demographic_parity_difference"),
        ("demographic_parity_ratio", ">=", "min_demographic_parity_ratio"),
        ("equalized_odds_difference", "<=", "max_equalized_odds_difference"),
    ):
        detail = (
            f"{INSUFFICIENT}: {groups} (< fairness_min_group_size {min_size}); "
            f"point estimate {result[name]:.4f}, {interval_text(intervals[name], confidence)}, "
            "not gated"
        )
        checks.append(
            Check(f"{name}[{attribute}]", INSUFFICIENT, limits[key], comparison, True, detail)
        )
    production = environment == PRODUCTION
    name = f"insufficient_data[{attribute}]"
    verdict = (
        f"{ACKNOWLEDGE}: fairness cannot be established for this group; "
        f"aiact approve ... --acknowledge '{name}'"
        if production
        else f"passes outside production ({environment}); in production every approver must "
        "acknowledge it"
    )
    checks.append(Check(name, min(small.values()), min_size, ">=", True, f"{groups}: {verdict}"))
    return checks


def _fairness_checks(
    labels: np.ndarray,
    scores: np.ndarray,
    predicted: np.ndarray,
    test: FeatureSplit,
    thresholds: dict[str, Any],
    environment: str,
) -> tuple[list[Check], dict[str, Any]]:
    """Fairness checks per protected attribute, against the evaluation policy section."""
    declared = thresholds["fairness"]
    min_size = int(thresholds.get("fairness_min_group_size", DEFAULT_MIN_GROUP_SIZE))
    checks: list[Check] = []
    by_attribute = {}
    for attribute in test.groups.columns:
        result = fairness(labels, predicted, test.groups[attribute].to_numpy(), scores)
        small = {g: n for g, n in result["group_sizes"].items() if n < min_size}
        result["min_group_size"] = min_size
        result["insufficient_data"] = sorted(small)
        by_attribute[attribute] = result
        limits = _fairness_limits(declared, attribute)
        if limits is None:
            checks.append(
                must_hold(
                    f"fairness_declared[{attribute}]", False, "no fairness threshold declared"
                )
            )
            continue
        if small:
            checks += _insufficient_checks(attribute, result, limits, small, min_size, environment)
            continue
        groups = result["by_group"]
        intervals = result["confidence_intervals"]
        ci = {name: interval_text(intervals[name], intervals["confidence"]) for name in METRICS}
        lowest = min(groups, key=lambda g: groups[g]["selection_rate"])
        selection = f"lowest selection rate: {attribute}={lowest}"
        checks += [
            at_most(
                f"demographic_parity_difference[{attribute}]",
                _r(result["demographic_parity_difference"]),
                limits["max_demographic_parity_difference"],
                f"{selection}; {ci['demographic_parity_difference']}",
            ),
            at_least(
                f"demographic_parity_ratio[{attribute}]",
                _r(result["demographic_parity_ratio"]),
                limits["min_demographic_parity_ratio"],
                f"{selection}; {ci['demographic_parity_ratio']}",
            ),
            at_most(
                f"equalized_odds_difference[{attribute}]",
                _r(result["equalized_odds_difference"]),
                limits["max_equalized_odds_difference"],
                f"{_widest_rate_gap(attribute, groups)}; {ci['equalized_odds_difference']}",
            ),
        ]
    return checks, by_attribute


def _robustness_checks(result: dict[str, Any], limits: dict[str, Any]) -> list[Check]:
    return [
        at_most(
            f"{metric}_drop[{perturbation}]",
            _r(result[perturbation][f"{metric}_drop"]),
            limits[f"max_{metric}_drop"],
            f"{metric} {result['clean'][metric]:.4f} clean, "
            f"{result[perturbation][metric]:.4f} under {perturbation}",
        )
        for perturbation in ("gaussian_noise", "missing_features")
        for metric in ("accuracy", "roc_auc")
    ]


def _drift_checks(
    reference: str, features: dict[str, dict[str, float]], scores: dict[str, float], limits: Any
) -> list[Check]:
    name, value = worst(features, "psi")
    return [
        at_most(
            f"max_feature_psi[{reference}]",
            _r(value),
            limits["max_feature_psi"],
            f"most drifted feature: {name}",
        ),
        at_most(f"prediction_psi[{reference}]", _r(scores["psi"]), limits["max_prediction_psi"]),
    ]


def _drift(
    model: Scorer,
    scores: np.ndarray,
    base_scores: np.ndarray,
    train: FeatureSplit,
    test: FeatureSplit,
    names: list[str],
    production: ProductionReference | NoProductionReference,
    limits: dict[str, Any],
    notes: list[str],
) -> tuple[list[Check], dict[str, Any]]:
    """Drift of the holdout against the training split and the production model's reference
    data, and of the candidate's predictions against the baseline's. With no production model
    (and none required) drift against production is not assessed: said in `notes`, no check."""
    evidence: dict[str, Any] = {}
    checks: list[Check] = []
    references: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "train_split": (train.features, model(train.features))
    }
    if isinstance(production, ProductionReference):
        references["production"] = (production.features, production.scores)
        checks.append(
            must_hold(
                "production_reference",
                True,
                f"production model {production.model_version}, reference "
                f"{production.feature_set_uri}",
            )
        )
        evidence["production_model"] = {
            "assessed": True,
            "version": production.model_version,
            "feature_set_uri": production.feature_set_uri,
            "rows": len(production.features),
        }
    elif production.model_found:
        # A production model exists but its reference data cannot be used: always a breach.
        checks.append(must_hold("production_reference", False, production.reason))
        evidence["production_model"] = {"assessed": False, "status": production.reason}
    elif limits["require_production_reference"]:
        checks.append(
            must_hold(
                "production_reference",
                False,
                f"{production.reason}; the policy requires one "
                "(evaluation.drift.require_production_reference)",
            )
        )
        evidence["production_model"] = {"assessed": False, "status": production.reason}
    else:
        # Nothing to compare with: a note for the reviewer, not a check that would read as if
        # a production reference had been found and passed.
        notes.append(f"{NO_PRODUCTION_NOTE}; {production.reason}")
        evidence["production_model"] = {
            "assessed": False,
            "status": NO_PRODUCTION_NOTE,
            "reason": production.reason,
        }
    for reference, (ref_features, ref_scores) in references.items():
        by_feature = feature_drift(ref_features, test.features, names)
        predictions = score_drift(ref_scores, scores)
        evidence[reference] = {"features": by_feature, "predictions": predictions}
        checks += _drift_checks(reference, by_feature, predictions, limits)
    to_baseline = score_drift(base_scores, scores)
    evidence["baseline"] = {"predictions": to_baseline}
    checks.append(
        at_most(
            "prediction_psi[baseline]",
            _r(to_baseline["psi"]),
            limits["max_prediction_psi_to_baseline"],
            "candidate vs logistic-regression baseline scores on the holdout",
        )
    )
    return checks, evidence


def evaluate(
    model: Scorer,
    train: FeatureSplit,
    test: FeatureSplit,
    threshold: float,
    thresholds: dict[str, Any],
    *,
    feature_names: list[str],
    blocks: list[FeatureBlock],
    production: ProductionReference | NoProductionReference,
    environment: str = DEVELOPMENT,
) -> EvaluationOutcome:
    """Every evaluation check, with the evidence behind it.

    `environment` is the run's (aiact.platform.ENVIRONMENTS): in production a protected group
    smaller than `fairness_min_group_size` fails the gate (`insufficient_data[attribute]`);
    elsewhere it is recorded and passes.
    """
    labels = test.labels
    scores = model(test.features)
    predicted = (scores >= threshold).astype(int)
    perf = performance(labels, scores, threshold)
    base_scores = baseline_scores(train, test)
    base = performance(labels, base_scores, 0.5)
    checks = _performance_checks(perf, base, thresholds)
    fairness_checks, by_attribute = _fairness_checks(
        labels, scores, predicted, test, thresholds, environment
    )
    robust = robustness(
        model, test.features, labels, blocks, threshold, thresholds["robustness"]["perturbation"]
    )
    calib = calibration(labels, scores)
    limits = thresholds["calibration"]
    notes: list[str] = []
    drift_checks, drift = _drift(
        model,
        scores,
        base_scores,
        train,
        test,
        feature_names,
        production,
        thresholds["drift"],
        notes,
    )
    checks += [
        *fairness_checks,
        *_robustness_checks(robust, thresholds["robustness"]),
        at_most(
            "expected_calibration_error",
            _r(calib["expected_calibration_error"]),
            limits["max_expected_calibration_error"],
            f"{calib['bins']} equal-width bins",
        ),
        at_most("brier_score", _r(calib["brier_score"]), limits["max_brier_score"]),
        *drift_checks,
    ]
    fpr, tpr, cut = roc_curve(labels, scores, drop_intermediate=True)
    # sklearn's curve runs from (0, 0) to (1, 1); only collinear points are dropped, so the
    # trapezoid area under it is roc_auc_score. Its first threshold is +inf (nothing predicted
    # positive); KFP's log_roc_curve needs finite floats, so it becomes the next float above
    # the highest score, which predicts nothing positive all the same.
    cut = np.where(np.isinf(cut), np.nextafter(float(scores.max()), np.inf), cut)
    evidence = {
        "performance": perf,
        "baseline": {"model": "logistic_regression", **base},
        "fairness": by_attribute,
        "robustness": robust,
        "calibration": calib,
        "drift": drift,
        "holdout_rows": len(labels),
        "decision_threshold": threshold,
    }
    if notes:
        evidence[NOTES] = notes
    return EvaluationOutcome(
        gate=GateResult(GATE, tuple(checks)),
        evidence=evidence,
        confusion=confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        roc={"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": cut.tolist()},
    )
