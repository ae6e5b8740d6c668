"""Tests of the synthetic credit-scoring reference data generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aiact import refdata
from aiact.refdata import (
    CATEGORICAL_COLUMNS,
    COLUMNS,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    PROTECTED_ATTRIBUTES,
    data_card,
    generate_credit_data,
    write_reference_dataset,
)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    """A clean frame shared by the read-only tests."""
    return generate_credit_data(20_000, seed=7)


def _parity_gap(frame: pd.DataFrame) -> float:
    """Male minus female positive rate of the label."""
    rates = frame.groupby("sex")[LABEL_COLUMN].mean()
    return float(rates["male"] - rates["female"])


def test_constants_describe_the_columns() -> None:
    assert COLUMNS[-1] == LABEL_COLUMN == "creditworthy"
    assert PROTECTED_ATTRIBUTES == ("sex", "age_band")
    assert set(NUMERIC_COLUMNS).isdisjoint(CATEGORICAL_COLUMNS)
    assert sorted(NUMERIC_COLUMNS + CATEGORICAL_COLUMNS, key=COLUMNS.index) == list(COLUMNS[:-1])
    assert [c for c in COLUMNS if c in NUMERIC_COLUMNS] == list(NUMERIC_COLUMNS)
    assert [c for c in COLUMNS if c in CATEGORICAL_COLUMNS] == list(CATEGORICAL_COLUMNS)


def test_same_arguments_give_identical_frames() -> None:
    kwargs = {"label_bias": 0.3, "drift": 0.5, "corruption": 0.2, "female_share": 0.4}
    first = generate_credit_data(3000, seed=11, **kwargs)
    second = generate_credit_data(3000, seed=11, **kwargs)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert first.to_csv(index=False) == second.to_csv(index=False)


def test_different_seeds_differ() -> None:
    first = generate_credit_data(1000, seed=1)
    second = generate_credit_data(1000, seed=2)
    assert not first.equals(second)
    assert (first["income"] != second["income"]).mean() > 0.9


def test_knobs_do_not_reshuffle_unrelated_columns() -> None:
    clean = generate_credit_data(2000, seed=3)
    biased = generate_credit_data(2000, seed=3, label_bias=0.5)
    pd.testing.assert_frame_equal(
        clean.drop(columns=LABEL_COLUMN), biased.drop(columns=LABEL_COLUMN)
    )
    flipped = clean[LABEL_COLUMN] != biased[LABEL_COLUMN]
    assert flipped.any()
    assert (clean.loc[flipped, "sex"] == "female").all()
    assert (biased.loc[flipped, LABEL_COLUMN] == 0).all()


def test_clean_columns_and_dtypes(clean: pd.DataFrame) -> None:
    assert list(clean.columns) == list(COLUMNS)
    assert isinstance(clean.index, pd.RangeIndex)
    assert (clean.index == np.arange(len(clean))).all()
    assert len(clean) == 20_000
    for column in (*refdata.INTEGER_COLUMNS, LABEL_COLUMN):
        assert clean[column].dtype == np.int64, column
    for column in ("income", "savings_balance", "loan_amount", "debt_to_income"):
        assert clean[column].dtype == np.float64, column
    for column in CATEGORICAL_COLUMNS:
        assert clean[column].dtype == object, column
        assert clean[column].map(type).eq(str).all(), column


def test_clean_values_are_in_range(clean: pd.DataFrame) -> None:
    assert not clean.isna().any().any()
    assert not clean.duplicated().any()
    for column, (low, high) in refdata.RANGES.items():
        assert clean[column].between(low, high).all(), column
    assert (clean["income"] > 0).all()
    for column, values in refdata.CATEGORIES.items():
        assert set(clean[column]) == set(values), column
    assert set(clean["loan_term_months"]) == {12, 24, 36, 48, 60, 72}
    assert set(clean[LABEL_COLUMN]) == {0, 1}
    assert (clean["employment_years"] <= clean["age"] - 16).all()
    assert (clean["credit_history_months"] <= (clean["age"] - 18) * 12).all()
    for column in ("income", "savings_balance", "loan_amount"):
        assert (clean[column].round(2) == clean[column]).all(), column


def test_clean_data_looks_realistic(clean: pd.DataFrame) -> None:
    assert 0.6 <= clean[LABEL_COLUMN].mean() <= 0.7
    assert abs((clean["sex"] == "female").mean() - 0.5) < 0.02
    assert clean["age_band"].value_counts(normalize=True).min() > 0.05
    assert 25_000 < clean["income"].median() < 60_000
    unemployed = clean["employment_type"] == "unemployed"
    assert (clean.loc[unemployed, "employment_years"] == 0).all()
    assert clean.loc[unemployed, "income"].median() < clean.loc[~unemployed, "income"].median()
    assert (clean.loc[clean["age"] < 45, "employment_type"] != "retired").all()


def test_age_band_matches_age(clean: pd.DataFrame) -> None:
    expected = pd.cut(
        clean["age"], bins=[17, 25, 40, 60, 80], labels=["18-25", "26-40", "41-60", "61+"]
    ).astype(str)
    assert (clean["age_band"] == expected).all()


def test_female_share_knob() -> None:
    frame = generate_credit_data(10_000, seed=5, female_share=0.3)
    assert abs((frame["sex"] == "female").mean() - 0.3) < 0.02


def test_only_the_housing_proxy_depends_on_sex() -> None:
    all_female = generate_credit_data(5000, seed=6, female_share=1.0)
    all_male = generate_credit_data(5000, seed=6, female_share=0.0)
    assert (all_female["sex"] == "female").all() and (all_male["sex"] == "male").all()
    pd.testing.assert_frame_equal(
        all_female.drop(columns=["sex", "housing"]), all_male.drop(columns=["sex", "housing"])
    )
    own_female = (all_female["housing"] == "own").mean()
    own_male = (all_male["housing"] == "own").mean()
    assert own_male > 2 * own_female


def test_label_bias_opens_a_parity_gap(clean: pd.DataFrame) -> None:
    assert abs(_parity_gap(clean)) < 0.02
    for seed in range(3):
        assert abs(_parity_gap(generate_credit_data(5000, seed=seed))) < 0.05
    biased = generate_credit_data(20_000, seed=7, label_bias=0.4)
    assert _parity_gap(biased) > 0.2
    male = biased["sex"] == "male"
    assert biased.loc[male, LABEL_COLUMN].mean() == clean.loc[male, LABEL_COLUMN].mean()


def test_drift_shifts_covariates(clean: pd.DataFrame) -> None:
    drifted = generate_credit_data(20_000, seed=7, drift=1.0)
    assert drifted["income"].mean() < 0.75 * clean["income"].mean()
    assert drifted["debt_to_income"].mean() > clean["debt_to_income"].mean() + 0.1
    assert drifted["age"].mean() > clean["age"].mean() + 3
    assert drifted["num_late_payments"].mean() > clean["num_late_payments"].mean()
    half = generate_credit_data(20_000, seed=7, drift=0.5)
    assert drifted["income"].mean() < half["income"].mean() < clean["income"].mean()
    assert not drifted.isna().any().any()
    for column, (low, high) in refdata.RANGES.items():
        assert drifted[column].between(low, high).all(), column


def test_corruption_injects_every_defect_kind() -> None:
    rows = 2000
    frame = generate_credit_data(rows, seed=9, corruption=0.2)
    per_kind = int(0.2 * rows / 4)
    assert len(frame) == rows + per_kind
    assert isinstance(frame.index, pd.RangeIndex)
    assert (frame.index == np.arange(len(frame))).all()

    nulls = frame.isna().sum()
    assert (nulls > 0).sum() >= 4
    assert frame["housing"].isna().any() and frame["income"].isna().any()

    assert frame["income"].dtype == object and frame["age"].dtype == object
    tokens = {"n/a", "unknown"}
    assert frame["income"].isin(tokens).any() and frame["age"].isin(tokens).any()

    income = pd.to_numeric(frame["income"], errors="coerce")
    age = pd.to_numeric(frame["age"], errors="coerce")
    assert (income < 0).any()
    assert (age == 150).any()
    assert (frame["debt_to_income"] == 9.9).any()

    duplicated = frame.duplicated()
    assert duplicated.iloc[rows:].all()
    assert not duplicated.iloc[:rows].any()


def test_clean_rows_survive_corruption() -> None:
    clean = generate_credit_data(1000, seed=4)
    corrupted = generate_credit_data(1000, seed=4, corruption=0.2).iloc[:1000]
    untouched = corrupted.eq(clean).all(axis=1)
    assert untouched.sum() == 1000 - 3 * 50


def test_logistic_regression_learns_the_label() -> None:
    frame = generate_credit_data(5000, seed=21)
    features = pd.get_dummies(frame.drop(columns=LABEL_COLUMN), dtype=float)
    label = frame[LABEL_COLUMN]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(features.iloc[:4000], label.iloc[:4000])
    scores = model.predict_proba(features.iloc[4000:])[:, 1]
    assert roc_auc_score(label.iloc[4000:], scores) > 0.75


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"rows": 0}, "rows"),
        ({"rows": -5}, "rows"),
        ({"rows": 2.5}, "rows"),
        ({"rows": 10, "seed": -1}, "seed"),
        ({"rows": 10, "label_bias": 1.5}, "label_bias"),
        ({"rows": 10, "drift": -0.1}, "drift"),
        ({"rows": 10, "corruption": float("nan")}, "corruption"),
        ({"rows": 10, "female_share": 2}, "female_share"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, float], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        generate_credit_data(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=argument):
        data_card(**kwargs)  # type: ignore[arg-type]


def test_write_is_byte_identical_and_card_round_trips(tmp_path: Path) -> None:
    knobs = {"label_bias": 0.2, "corruption": 0.1}
    first = write_reference_dataset(tmp_path / "a", rows=500, seed=3, **knobs)
    second = write_reference_dataset(tmp_path / "b", rows=500, seed=3, **knobs)
    assert first.data_path.name == "credit_applications.csv"
    assert first.data_card_path.name == "data_card.yaml"
    assert first.data_path.read_bytes() == second.data_path.read_bytes()
    assert first.data_card_path.read_bytes() == second.data_card_path.read_bytes()

    again = write_reference_dataset(tmp_path / "a", rows=500, seed=3, **knobs)
    assert again == first
    assert again.data_path.read_bytes() == second.data_path.read_bytes()

    written = pd.read_csv(first.data_path)
    assert list(written.columns) == list(COLUMNS)
    assert len(written) == data_card(500, 3, **knobs)["row_count"]

    card = yaml.safe_load(first.data_card_path.read_text(encoding="utf-8"))
    assert card == data_card(500, 3, **knobs)
    assert card["name"] == "credit-applications-reference"
    assert card["licence"] == "CC0-1.0"
    assert card["protected_attributes"] == ["sex", "age_band"]
    assert card["label"]["column"] == LABEL_COLUMN
    params = card["generator"]["parameters"]
    assert params == {
        "rows": 500,
        "seed": 3,
        "label_bias": 0.2,
        "drift": 0.0,
        "corruption": 0.1,
        "female_share": 0.5,
    }
    regenerated = generate_credit_data(**params)
    assert regenerated.to_csv(index=False, lineterminator="\n").encode() == (
        first.data_path.read_bytes()
    )


def test_clean_csv_round_trips(tmp_path: Path) -> None:
    dataset = write_reference_dataset(tmp_path, rows=300, seed=8)
    written = pd.read_csv(dataset.data_path)
    pd.testing.assert_frame_equal(written, generate_credit_data(300, seed=8), check_exact=True)


def test_data_card_mentions_injected_knobs() -> None:
    assert len(data_card(100)["known_limitations"]) == 3
    card = data_card(100, label_bias=0.4, drift=0.2, corruption=0.1)
    text = " ".join(card["known_limitations"])
    assert "bias" in text and "drift" in text and "defects" in text
    assert [c["name"] for c in card["columns"]] == list(COLUMNS[:-1])
    assert card["collection_date"] == "2026-01-01"
