"""Drift statistics: population stability index (PSI) and the two-sample Kolmogorov-Smirnov
statistic, per feature and for model scores, against a reference sample."""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp

PSI_BINS = 10
# Floor on a bin's share, so an empty bin contributes a large but finite term.
PSI_FLOOR = 1e-4


def _shares(values: np.ndarray, edges: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=n_bins)
    return np.maximum(counts / max(len(values), 1), PSI_FLOOR)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of `current` against `reference`.

    A column with at most `bins` distinct reference values (one-hot, small vocabularies) is
    compared value by value; a continuous one on the reference's decile (quantile) bins.
    """
    distinct = np.unique(reference)
    if len(distinct) <= bins:
        # Bin boundaries half-way between the reference values.
        edges = (distinct[1:] + distinct[:-1]) / 2
    else:
        edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1))[1:-1])
    n_bins = len(edges) + 1
    expected = _shares(reference, edges, n_bins)
    actual = _shares(current, edges, n_bins)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (largest gap between the two CDFs)."""
    return float(ks_2samp(reference, current, method="asymp").statistic)


def feature_drift(
    reference: np.ndarray, current: np.ndarray, names: list[str]
) -> dict[str, dict[str, float]]:
    """PSI and KS statistic of each column of `current` against the same column of
    `reference`."""
    if reference.shape[1] != current.shape[1] or current.shape[1] != len(names):
        raise ValueError(
            f"drift needs matching columns: reference {reference.shape[1]}, "
            f"current {current.shape[1]}, names {len(names)}"
        )
    return {
        name: {
            "psi": psi(reference[:, i], current[:, i]),
            "ks": ks_statistic(reference[:, i], current[:, i]),
        }
        for i, name in enumerate(names)
    }


def worst(drift: dict[str, dict[str, float]], statistic: str) -> tuple[str, float]:
    """The feature with the largest value of `statistic`, and that value."""
    name = max(drift, key=lambda n: drift[n][statistic])
    return name, drift[name][statistic]


def score_drift(reference: np.ndarray, current: np.ndarray) -> dict[str, float]:
    """PSI and KS statistic between two score distributions."""
    return {"psi": psi(reference, current), "ks": ks_statistic(reference, current)}
