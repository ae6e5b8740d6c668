"""Stage 4: holdout performance, fairness, robustness, calibration and drift against declared
thresholds."""
