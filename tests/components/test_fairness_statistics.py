"""Statistical honesty of the fairness gate: group sizes, per-group accuracy and AUC, seeded
bootstrap intervals around fairlearn's point estimates, and "insufficient data" for a group
too small to gate on (recorded outside production, a breach in production)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
)
from sklearn.metrics import roc_auc_score

from aiact.evidence import ACKNOWLEDGE, acknowledgements_required
from aiact.featureset import FeatureSplit
from aiact.model_package import ModelPackage
from aiact.transform import FittedTransform
from components.evaluation.core import EvaluationOutcome, NoProductionReference, evaluate, fairness
from components.evaluation.fairness_statistics import METRICS, bootstrap_intervals
from components.evaluation.reference import NO_PRODUCTION_MODEL
from components.evaluation.robustness import feature_blocks

FAIRLEARN = {
    "demographic_parity_difference": demographic_parity_difference,
    "demographic_parity_ratio": demographic_parity_ratio,
    "equalized_odds_difference": equalized_odds_difference,
}


def _sample(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, decisions, scores and groups where group b is selected less often."""
    rng = np.random.default_rng(seed)
    groups = np.where(rng.uniform(size=rows) < 0.4, "b", "a")
    labels = (rng.uniform(size=rows) < 0.6).astype(int)
    scores = np.clip(0.35 * labels + rng.uniform(size=rows) * 0.65 - 0.15 * (groups == "b"), 0, 1)
    return labels, (scores >= 0.4).astype(int), scores, groups


def test_group_sizes_accuracy_and_auc_match_a_direct_computation() -> None:
    labels, predicted, scores, groups = _sample(600)
    groups[:5] = "c"
    labels[:5] = 1  # group c holds one class only: no AUC
    result = fairness(labels, predicted, groups, scores)
    for group in ("a", "b", "c"):
        rows = groups == group
        assert result["group_sizes"][group] == rows.sum()
        row = result["by_group"][group]
        assert row["count"] == rows.sum()
        assert row["accuracy"] == pytest.approx((labels[rows] == predicted[rows]).mean())
        assert row["positives"] == labels[rows].sum()
    for group in ("a", "b"):
        rows = groups == group
        assert result["by_group"][group]["roc_auc"] == pytest.approx(
            roc_auc_score(labels[rows], scores[rows])
        )
    assert result["by_group"]["c"]["roc_auc"] is None
    # The point estimates stay fairlearn's own.
    for name, function in FAIRLEARN.items():
        assert result[name] == function(labels, predicted, sensitive_features=groups)


def test_interval_contains_the_estimate_and_narrows_with_more_data() -> None:
    widths = {}
    for rows in (400, 4000):
        labels, predicted, _, groups = _sample(rows, seed=rows)
        intervals = bootstrap_intervals(labels, predicted, groups)
        widths[rows] = {}
        for name in METRICS:
            interval = intervals[name]
            expected = FAIRLEARN[name](labels, predicted, sensitive_features=groups)
            assert interval["estimate"] == pytest.approx(expected)
            assert interval["low"] < interval["estimate"] < interval["high"], (name, interval)
            assert not interval["widened"]
            widths[rows][name] = interval["high"] - interval["low"]
    for name in METRICS:
        # Ten times the rows: about a third of the width.
        assert widths[4000][name] < 0.5 * widths[400][name], (name, widths)


def test_same_seed_same_interval_and_the_seed_is_recorded() -> None:
    labels, predicted, scores, groups = _sample(750)
    first = fairness(labels, predicted, groups, scores)["confidence_intervals"]
    again = fairness(labels, predicted, groups, scores)["confidence_intervals"]
    other = bootstrap_intervals(labels, predicted, groups, seed=1)
    assert first == again
    assert (first["seed"], first["resamples"], first["confidence"]) == (0, 1000, 0.95)
    assert other["seed"] == 1
    assert other["equalized_odds_difference"] != first["equalized_odds_difference"]


def _with_small_group(split: FeatureSplit, attribute: str, group: str, keep: int) -> FeatureSplit:
    """The split with only `keep` rows of one group."""
    members = np.flatnonzero(split.groups[attribute].to_numpy() == group)
    drop = np.zeros(len(split.labels), dtype=bool)
    drop[members[keep:]] = True
    return FeatureSplit(
        raw=split.raw[~drop].reset_index(drop=True),
        features=split.features[~drop],
        labels=split.labels[~drop],
        groups=split.groups[~drop].reset_index(drop=True),
    )


def _evaluate(
    package: ModelPackage,
    transform: FittedTransform,
    splits: dict[str, FeatureSplit],
    test: FeatureSplit,
    thresholds: dict,
    **kwargs: str,
) -> EvaluationOutcome:
    return evaluate(
        package.predict_proba,
        splits["train"],
        test,
        0.5,
        thresholds,
        feature_names=transform.feature_names,
        blocks=feature_blocks(transform),
        production=NoProductionReference(NO_PRODUCTION_MODEL),
        **kwargs,
    )


def test_a_group_of_ten_rows_is_insufficient_data_needing_acknowledgement_in_production(
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    _, package = clean_package
    transform, splits = clean_features
    test = _with_small_group(splits["test"], "age_band", "61+", 10)
    thresholds = policy["evaluation"]
    assert thresholds["fairness_min_group_size"] == 30

    development = _evaluate(package, transform, splits, test, thresholds)
    checks = {c.name: c for c in development.gate.checks}
    ratio = checks["demographic_parity_ratio[age_band]"]
    assert ratio.passed and ratio.value == "insufficient data"
    assert ratio.detail.startswith("insufficient data: age_band=61+ has 10 rows")
    assert "fairness_min_group_size 30" in ratio.detail
    assert checks["insufficient_data[age_band]"].passed
    assert "in production every approver must acknowledge" in (
        checks["insufficient_data[age_band]"].detail
    )
    assert acknowledgements_required(_report(development)) == ()
    # The other attribute is still gated on numbers, and nothing is hidden from the evidence.
    assert isinstance(checks["demographic_parity_ratio[sex]"].value, float)
    assert "insufficient_data[sex]" not in checks
    evidence = development.evidence["fairness"]["age_band"]
    assert evidence["group_sizes"]["61+"] == 10
    assert evidence["insufficient_data"] == ["61+"]
    assert isinstance(evidence["demographic_parity_ratio"], float)

    # In production the finding passes only as one every approver must acknowledge: the
    # approval stage puts it on the request, whose approvals are refused without it.
    production = _evaluate(package, transform, splits, test, thresholds, environment="production")
    [finding] = [c for c in production.gate.checks if c.name == "insufficient_data[age_band]"]
    assert finding.value == 10 and finding.limit == 30 and ACKNOWLEDGE in finding.detail
    assert acknowledgements_required(_report(production)) == ("insufficient_data[age_band]",)

    # The whole holdout has enough rows in every group: no insufficient-data check at all.
    full = _evaluate(
        package, transform, splits, splits["test"], thresholds, environment="production"
    )
    assert not [c for c in full.gate.checks if c.name.startswith("insufficient_data")]
    assert full.gate.passed, [c.describe() for c in full.gate.breaches]


def _report(outcome: object) -> dict:
    from aiact.evidence import build_report

    return build_report("evaluation", outcome.gate, {})  # type: ignore[attr-defined]


def test_fairness_limits_default_block_and_min_group_size_default(
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    _, package = clean_package
    transform, splits = clean_features
    thresholds = copy.deepcopy(policy["evaluation"])
    del thresholds["fairness_min_group_size"]  # absent: 30
    thresholds["fairness"]["default"] = thresholds["fairness"].pop("age_band")
    test = _with_small_group(splits["test"], "age_band", "61+", 29)
    outcome = _evaluate(package, transform, splits, test, thresholds)
    checks = {c.name: c for c in outcome.gate.checks}
    # age_band takes the `default` limits, and 29 rows are below the default minimum of 30.
    assert "fairness_declared[age_band]" not in checks
    assert checks["demographic_parity_difference[age_band]"].value == "insufficient data"
    assert checks["demographic_parity_difference[age_band]"].limit == 0.4
    assert checks["insufficient_data[age_band]"].value == 29
    assert isinstance(checks["demographic_parity_difference[sex]"].value, float)
    assert outcome.evidence["fairness"]["age_band"]["min_group_size"] == 30
    # Without a `default` block an attribute without limits is refused, as before.
    del thresholds["fairness"]["default"]
    outcome = _evaluate(package, transform, splits, splits["test"], thresholds)
    assert "fairness_declared[age_band]" in {c.name for c in outcome.gate.breaches}
