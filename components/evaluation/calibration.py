"""Calibration of predicted probabilities: expected calibration error on fixed-width bins,
Brier score, and the reliability curve behind them."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss

CALIBRATION_BINS = 10


def reliability_curve(
    labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[dict[str, float]]:
    """Per fixed-width probability bin: its range, row count, mean score and observed rate
    (empty bins are omitted)."""
    index = np.minimum((scores * bins).astype(int), bins - 1)
    curve = []
    for b in range(bins):
        members = index == b
        if members.any():
            curve.append(
                {
                    "lower": b / bins,
                    "upper": (b + 1) / bins,
                    "count": int(members.sum()),
                    "mean_score": float(scores[members].mean()),
                    "observed_rate": float(labels[members].mean()),
                }
            )
    return curve


def calibration(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Expected calibration error (count-weighted |observed - predicted| over bins), Brier
    score and the reliability curve."""
    curve = reliability_curve(labels, scores)
    ece = sum(b["count"] * abs(b["observed_rate"] - b["mean_score"]) for b in curve) / len(labels)
    return {
        "expected_calibration_error": float(ece),
        "brier_score": float(brier_score_loss(labels, scores)),
        "bins": CALIBRATION_BINS,
        "reliability_curve": curve,
    }
