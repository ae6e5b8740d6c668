"""Robustness: holdout performance when numeric features carry Gaussian noise and when
features go missing (replaced by what the fitted transform imputes), and the drop from clean."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

from aiact.transform import FittedTransform

Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FeatureBlock:
    """The model columns one raw feature occupies, and their values when it is missing."""

    name: str
    columns: tuple[int, ...]
    missing_values: tuple[float, ...]
    numeric: bool


def feature_blocks(transform: FittedTransform) -> list[FeatureBlock]:
    """Column blocks of a fitted transform: a missing numeric feature is imputed with the fitted
    median (standardised); a missing category encodes as all zeros."""
    blocks = []
    for i, (name, p) in enumerate(transform.numeric.items()):
        median = float(np.log1p(max(p.median, 0.0))) if p.log else p.median
        blocks.append(FeatureBlock(name, (i,), ((median - p.mean) / p.std,), True))
    start = len(transform.numeric)
    for name, vocabulary in transform.categorical.items():
        columns = tuple(range(start, start + len(vocabulary)))
        blocks.append(FeatureBlock(name, columns, (0.0,) * len(columns), False))
        start += len(vocabulary)
    return blocks


def with_noise(
    features: np.ndarray, blocks: list[FeatureBlock], sigma: float, seed: int
) -> np.ndarray:
    """Numeric columns plus Gaussian noise of `sigma` (in standard deviations)."""
    noisy = features.copy()
    columns = [b.columns[0] for b in blocks if b.numeric]
    rng = np.random.default_rng(seed)
    noisy[:, columns] += rng.normal(0.0, sigma, size=(len(features), len(columns)))
    return noisy


def with_missing(
    features: np.ndarray, blocks: list[FeatureBlock], rate: float, seed: int
) -> np.ndarray:
    """Each raw feature of each row missing with probability `rate`, imputed as in serving."""
    masked = features.copy()
    rng = np.random.default_rng(seed)
    for block in blocks:
        rows = rng.random(len(features)) < rate
        masked[np.ix_(rows, np.array(block.columns))] = block.missing_values
    return masked


def robustness(
    score: Scorer,
    features: np.ndarray,
    labels: np.ndarray,
    blocks: list[FeatureBlock],
    threshold: float,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Accuracy and ROC AUC clean, under noise and under missing features, with the drops."""

    def measure(matrix: np.ndarray) -> dict[str, float]:
        scores = score(matrix)
        return {
            "accuracy": float(accuracy_score(labels, (scores >= threshold).astype(int))),
            "roc_auc": float(roc_auc_score(labels, scores)),
        }

    seed = int(settings["seed"])
    clean = measure(features)
    perturbed = {
        "gaussian_noise": measure(
            with_noise(features, blocks, float(settings["noise_sigma"]), seed)
        ),
        "missing_features": measure(
            with_missing(features, blocks, float(settings["missing_rate"]), seed)
        ),
    }
    return {
        "settings": dict(settings),
        "clean": clean,
        **{
            name: {**values, **{f"{k}_drop": clean[k] - values[k] for k in clean}}
            for name, values in perturbed.items()
        },
    }
