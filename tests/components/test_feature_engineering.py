"""Feature gate: deterministic stratified split, transform fitted on train only, ranges."""

from __future__ import annotations

import numpy as np

from aiact.refdata import generate_credit_data
from aiact.specs import load_feature_spec
from components.feature_engineering.core import engineer_features, split_frame


def test_split_is_deterministic_stratified_and_disjoint() -> None:
    frame = generate_credit_data(4000, seed=5)
    spec = load_feature_spec("credit")
    first, second = split_frame(frame, spec, seed=1), split_frame(frame, spec, seed=1)
    for name in first:
        assert first[name].equals(second[name])
    assert sum(len(p) for p in first.values()) == len(frame)
    rates = [p["creditworthy"].mean() for p in first.values()]
    assert max(rates) - min(rates) < 0.02
    female = [(p["sex"] == "female").mean() for p in first.values()]
    assert max(female) - min(female) < 0.02


def test_transform_is_fitted_on_training_split_only(policy: dict) -> None:
    frame = generate_credit_data(4000, seed=5)
    gate, transform, splits = engineer_features(
        frame, load_feature_spec("credit"), policy["features"], seed=1
    )
    assert gate.passed and transform is not None
    train_age = splits["train"].raw["age"].astype(float)
    assert transform.numeric["age"].mean == round(float(train_age.mean()), 10)
    assert np.isfinite(splits["test"].features).all()
    assert splits["train"].features.shape[1] == len(transform.feature_names)


def test_out_of_range_feature_fails_naming_column(policy: dict) -> None:
    frame = generate_credit_data(4000, seed=5)
    frame.loc[:9, "debt_to_income"] = 9.9
    gate, _, _ = engineer_features(frame, load_feature_spec("credit"), policy["features"], seed=1)
    assert [c.name for c in gate.breaches] == ["out_of_range_rate[debt_to_income]"]


def test_missing_declared_column_fails_before_fitting(policy: dict) -> None:
    frame = generate_credit_data(1000, seed=5).drop(columns=["income"])
    gate, transform, splits = engineer_features(
        frame, load_feature_spec("credit"), policy["features"], seed=1
    )
    assert not gate.passed and transform is None and splits == {}
    assert "income" in gate.breaches[0].detail
