"""Stage 4: holdout performance and fairness against declared thresholds."""
