"""Evaluation gate: fairness numbers are fairlearn's, biased data fails the fairness gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from aiact.featureset import FeatureSplit
from aiact.model_package import ModelPackage
from aiact.transform import FittedTransform
from components.evaluation.core import evaluate
from tests.components.conftest import build_features, train_package


def test_clean_model_passes_and_matches_fairlearn(
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    _, package = clean_package
    _, splits = clean_features
    test = splits["test"]
    scores = package.predict_proba(test.features)
    outcome = evaluate(scores, splits["train"], test, 0.5, policy["evaluation"])
    assert outcome.gate.passed, [c.describe() for c in outcome.gate.breaches]
    predicted = (scores >= 0.5).astype(int)
    for attribute in ("sex", "age_band"):
        groups = test.groups[attribute].to_numpy()
        ours = outcome.evidence["fairness"][attribute]
        assert ours["demographic_parity_difference"] == demographic_parity_difference(
            test.labels, predicted, sensitive_features=groups
        )
        assert ours["equalized_odds_difference"] == equalized_odds_difference(
            test.labels, predicted, sensitive_features=groups
        )
    assert np.array(outcome.confusion).sum() == len(test.labels)


def test_label_bias_fails_fairness_gate_naming_metric_and_group(
    tmp_path: Path, policy: dict
) -> None:
    transform, splits = build_features(label_bias=0.5)
    package = train_package(tmp_path / "biased", transform, splits)
    scores = package.predict_proba(splits["test"].features)
    outcome = evaluate(scores, splits["train"], splits["test"], 0.5, policy["evaluation"])
    breaches = {c.name: c for c in outcome.gate.breaches}
    # Housing tenure is a proxy for sex in the reference data: trained on biased labels, the
    # model treats equally creditworthy women and men differently.
    assert "equalized_odds_difference[sex]" in breaches
    assert (
        "false_positive_rate gap: sex=female" in breaches["equalized_odds_difference[sex]"].detail
    )


def test_model_worse_than_baseline_fails(
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]], policy: dict
) -> None:
    _, splits = clean_features
    noise = np.random.default_rng(0).uniform(size=len(splits["test"].labels))
    outcome = evaluate(noise, splits["train"], splits["test"], 0.5, policy["evaluation"])
    breached = {c.name for c in outcome.gate.breaches}
    assert {"accuracy", "roc_auc", "accuracy_gap_to_baseline"} <= breached
