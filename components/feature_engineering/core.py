"""Feature engineering: a deterministic stratified split, a transform fitted on the training
split only, and the gate that holds every produced feature to its declared range and schema."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from aiact.featureset import SPLITS, FeatureSplit
from aiact.policy import Check, GateResult, at_least, at_most, must_hold
from aiact.specs import FeatureSpec
from aiact.transform import FittedTransform, fit_transform
from components.feature_engineering.split import stratified_split

GATE = "feature_spec"


def strata(frame: pd.DataFrame, spec: FeatureSpec, min_size: int = 20) -> pd.Series:
    """Stratum of each row: label and every protected attribute. Rows of a combination with
    fewer than `min_size` rows are pooled by label; a pool still that small joins the largest
    stratum of its label (a split needs several members of each stratum)."""
    label = frame[spec.label].astype(str)
    full = label.copy()
    for column in spec.protected_attributes:
        full = full + "|" + frame[column].astype(str)
    keys = full.where(full.map(full.value_counts()) >= min_size, label)
    for value, count in keys.value_counts().items():
        if count < min_size and value in set(label):
            largest = full[(label == value) & (keys != value)].value_counts()
            if len(largest):
                keys = keys.where(keys != value, largest.index[0])
    return keys


DEFAULT_FRACTIONS = {"train": 0.7, "validation": 0.15, "test": 0.15}


def split_frame(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    seed: int,
    fractions: dict[str, float] | None = None,
) -> dict[str, pd.DataFrame]:
    """Train/validation/test split by the policy's fractions (default 70/15/15), deterministic
    for a seed, stratified by label and protected groups."""
    fractions = fractions or DEFAULT_FRACTIONS
    stratum = strata(frame, spec)
    holdout = fractions["validation"] + fractions["test"]
    # Positional indexing, as scikit-learn's train_test_split (whose selection
    # stratified_split reproduces exactly, without its ~1.3 s import) indexes a frame.
    train_at, rest_at = stratified_split(stratum, holdout, seed)
    train, rest = frame.iloc[train_at], frame.iloc[rest_at]
    validation_at, test_at = stratified_split(
        stratum.iloc[rest_at], fractions["test"] / holdout, seed
    )
    validation, test = rest.iloc[validation_at], rest.iloc[test_at]
    return {
        name: part.sort_index().reset_index(drop=True)
        for name, part in zip(SPLITS, (train, validation, test), strict=True)
    }


def schema_checks(frame: pd.DataFrame, spec: FeatureSpec) -> list[Check]:
    """The input schema must match the specification: every declared column present."""
    required = (*spec.input_columns, spec.label, *spec.protected_attributes)
    missing = [c for c in required if c not in frame.columns]
    return [must_hold("schema_matches_spec", not missing, f"missing columns: {missing}")]


def declared_feature_names(spec: FeatureSpec) -> list[str]:
    """The model inputs the specification declares, in order (one-hot columns as name=value)."""
    names = [f.name for f in spec.numeric]
    for categorical in spec.categorical:
        names += [f"{categorical.name}={value}" for value in categorical.vocabulary]
    return names


def range_checks(frame: pd.DataFrame, spec: FeatureSpec, limit: float) -> list[Check]:
    """Share of each feature's values outside its declared range or vocabulary."""
    checks = []
    for feature in spec.numeric:
        values = pd.to_numeric(frame[feature.name], errors="coerce")
        present = values.notna()
        outside = present & ((values < feature.low) | (values > feature.high))
        rate = float(outside.sum() / max(int(present.sum()), 1))
        checks.append(
            at_most(
                f"out_of_range_rate[{feature.name}]",
                round(rate, 6),
                limit,
                f"declared range [{feature.low:g}, {feature.high:g}]",
            )
        )
    for categorical in spec.categorical:
        values = frame[categorical.name].dropna()
        rate = float((~values.isin(categorical.vocabulary)).mean()) if len(values) else 0.0
        checks.append(
            at_most(
                f"out_of_vocabulary_rate[{categorical.name}]",
                round(rate, 6),
                limit,
                f"declared vocabulary {list(categorical.vocabulary)}",
            )
        )
    return checks


def engineer_features(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    thresholds: dict[str, Any],
    seed: int,
    fractions: dict[str, float] | None = None,
) -> tuple[GateResult, FittedTransform | None, dict[str, FeatureSplit]]:
    """Run the feature gate; the transform and splits only when the schema holds."""
    checks = schema_checks(frame, spec)
    if not checks[0].passed:
        return GateResult(GATE, tuple(checks)), None, {}
    checks += range_checks(frame, spec, thresholds["max_out_of_range_rate"])
    parts = split_frame(frame, spec, seed, fractions)
    transform = fit_transform(parts["train"], spec)
    splits = {}
    for name, part in parts.items():
        checks.append(at_least(f"split_rows[{name}]", len(part), thresholds["min_split_rows"]))
        matrix = transform.apply(part)
        splits[name] = FeatureSplit(
            raw=part,
            features=matrix,
            labels=part[spec.label].to_numpy(dtype=np.int64),
            groups=part[list(spec.protected_attributes)].astype(str),
        )
    finite = all(bool(np.isfinite(s.features).all()) for s in splits.values())
    checks.append(must_hold("features_finite", finite, "every transformed value is finite"))
    declared = declared_feature_names(spec)
    checks.append(
        must_hold(
            "feature_names_match_spec",
            transform.feature_names == declared,
            f"produced {len(transform.feature_names)} features, declared {len(declared)}",
        )
    )
    width = {s.features.shape[1] for s in splits.values()}
    checks.append(
        must_hold(
            "feature_width_matches_spec",
            width == {len(declared)},
            f"matrix widths {sorted(width)} vs {len(declared)} declared features",
        )
    )
    return GateResult(GATE, tuple(checks)), transform, splits
