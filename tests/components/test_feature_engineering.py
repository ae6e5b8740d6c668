"""Feature gate: deterministic stratified split, transform fitted on train only, ranges."""

from __future__ import annotations

import numpy as np

from aiact.refdata import generate_credit_data
from aiact.specs import load_feature_spec
from aiact.usecase import split_fractions
from components.feature_engineering.core import (
    declared_feature_names,
    engineer_features,
    split_frame,
    strata,
)


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


def test_split_is_stratified_by_every_protected_attribute() -> None:
    frame = generate_credit_data(4000, seed=5)
    parts = split_frame(frame, load_feature_spec("credit"), seed=1)
    for band in ("18-25", "61+"):
        shares = [(p["age_band"] == band).mean() for p in parts.values()]
        assert max(shares) - min(shares) < 0.01, band


def test_rare_strata_fall_back_to_the_label() -> None:
    frame = generate_credit_data(2000, seed=5)
    frame.loc[:4, "age_band"] = "99+"  # five rows: too few to stratify on
    keys = strata(frame, load_feature_spec("credit"))
    assert not keys[:5].str.contains("99+", regex=False).any()
    assert (keys[:5].str[0] == frame.loc[:4, "creditworthy"].astype(str)).all()
    assert keys[5:].str.count("\\|").eq(2).mean() > 0.95
    parts = split_frame(frame, load_feature_spec("credit"), seed=1)
    assert sum(len(p) for p in parts.values()) == len(frame)


def test_feature_names_must_match_the_spec(policy: dict) -> None:
    spec = load_feature_spec("credit")
    gate, transform, _ = engineer_features(
        generate_credit_data(2000, seed=5), spec, policy["features"], seed=1
    )
    assert transform is not None and transform.feature_names == declared_feature_names(spec)
    assert "feature_names_match_spec" in {c.name for c in gate.checks if c.passed}


def test_default_policy_splits_a_thousand_rows_and_halts_below_its_minimum(policy: dict) -> None:
    spec = load_feature_spec("credit")
    fractions = split_fractions(policy)
    gate, _, splits = engineer_features(
        generate_credit_data(1000, seed=5), spec, policy["features"], 1, fractions
    )
    assert gate.passed, [c.describe() for c in gate.breaches]
    assert {name: len(s.raw) for name, s in splits.items()} == {
        "train": 700,
        "validation": 150,
        "test": 150,
    }
    small, _, _ = engineer_features(
        generate_credit_data(600, seed=5), spec, policy["features"], 1, fractions
    )
    assert {c.name for c in small.breaches} == {"split_rows[validation]", "split_rows[test]"}


def test_split_fractions_come_from_the_policy() -> None:
    frame = generate_credit_data(2000, seed=5)
    parts = split_frame(
        frame, load_feature_spec("credit"), 1, {"train": 0.5, "validation": 0.2, "test": 0.3}
    )
    assert {name: len(p) for name, p in parts.items()} == {
        "train": 1000,
        "validation": 400,
        "test": 600,
    }
