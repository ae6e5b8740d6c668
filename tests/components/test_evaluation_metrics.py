"""Drift, calibration and robustness metrics against independent computations."""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp
from sklearn.calibration import calibration_curve

from aiact.featureset import FeatureSplit
from aiact.transform import FittedTransform
from components.evaluation.calibration import calibration
from components.evaluation.drift import feature_drift, psi
from components.evaluation.robustness import feature_blocks, with_missing


def test_psi_is_zero_for_equal_samples_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=5000)
    assert psi(reference, reference) == 0.0
    assert psi(reference, rng.normal(size=5000)) < 0.02
    assert psi(reference, rng.normal(1.0, size=5000)) > 0.5
    # A one-hot column is compared value by value: 10% -> 50% ones.
    ones = (np.arange(1000) < 100).astype(float)
    expected = 0.4 * np.log(0.5 / 0.1) + -0.4 * np.log(0.5 / 0.9)
    assert np.isclose(psi(ones, (np.arange(1000) < 500).astype(float)), expected)


def test_feature_drift_ks_is_scipys() -> None:
    rng = np.random.default_rng(1)
    reference, current = rng.normal(size=(400, 2)), rng.normal(0.3, size=(300, 2))
    drift = feature_drift(reference, current, ["a", "b"])
    assert np.isclose(drift["b"]["ks"], ks_2samp(reference[:, 1], current[:, 1]).statistic)


def test_reliability_curve_matches_sklearn_and_ece_weights_bins() -> None:
    rng = np.random.default_rng(2)
    scores = rng.uniform(size=2000)
    labels = (rng.uniform(size=2000) < scores).astype(int)
    result = calibration(labels, scores)
    observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="uniform")
    curve = result["reliability_curve"]
    assert np.allclose([b["observed_rate"] for b in curve], observed)
    assert np.allclose([b["mean_score"] for b in curve], predicted)
    assert result["expected_calibration_error"] < 0.05
    assert calibration(labels, np.clip(scores + 0.3, 0, 1))["expected_calibration_error"] > 0.2


def test_missing_features_take_the_transforms_imputed_values(
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
) -> None:
    transform, splits = clean_features
    raw = splits["test"].raw.head(5).copy()
    raw[transform.raw_columns] = np.nan
    blocks = feature_blocks(transform)
    masked = with_missing(splits["test"].features[:5], blocks, 1.0, seed=0)
    assert np.allclose(masked, transform.apply(raw), atol=1e-6)
