"""The scikit-learn-free stratified split selects exactly what scikit-learn's
train_test_split selects: same train and test positions, in the same order."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from aiact.featureset import SPLITS
from aiact.refdata import generate_credit_data
from aiact.specs import FeatureSpec, load_feature_spec
from components.feature_engineering.core import split_frame, strata
from components.feature_engineering.split import stratified_split

SEEDS = (0, 1, 7, 42, 2024)
TEST_SIZES = (0.3, 0.15 / 0.3, 0.2, 0.33, 0.15)
SIZES = (20, 57, 203, 1000, 4999)
N_CLASSES = (2, 3, 4, 5, 6)


def labels(n: int, n_classes: int, kind: str, balanced: bool) -> np.ndarray | pd.Series:
    """`n` labels of `n_classes` strata (geometric sizes unless `balanced`, every stratum at
    least 2), in shuffled order; as int array, str array, or object Series (as `strata`)."""
    rng = np.random.default_rng(n * 100 + n_classes * 10 + balanced)
    weights = np.ones(n_classes) if balanced else 0.5 ** np.arange(n_classes)
    counts = np.maximum(np.floor(weights / weights.sum() * n).astype(int), 2)
    counts[0] += n - counts.sum()
    codes = rng.permutation(np.repeat(np.arange(n_classes), counts))
    if kind == "int":
        return (codes * 7 - 3).astype(np.int64)
    names = np.array([f"{'yes' if c % 2 else 'no'}|group{c}" for c in range(n_classes)])
    return names[codes] if kind == "str" else pd.Series(names[codes], dtype=object)


def sklearn_split(y: np.ndarray | pd.Series, test_size: float, seed: int) -> tuple:
    train, test = train_test_split(
        np.arange(len(y)), test_size=test_size, random_state=seed, stratify=y
    )
    return train, test


@pytest.mark.parametrize("balanced", [False, True], ids=["unbalanced", "balanced"])
@pytest.mark.parametrize("kind", ["int", "str", "series"])
@pytest.mark.parametrize("n_classes", N_CLASSES)
@pytest.mark.parametrize("n", SIZES)
def test_split_is_identical_to_scikit_learn(
    n: int, n_classes: int, kind: str, balanced: bool
) -> None:
    y = labels(n, n_classes, kind, balanced)
    compared = 0
    for seed, test_size in itertools.product(SEEDS, TEST_SIZES):
        case = f"n={n} classes={n_classes} {kind} seed={seed} test_size={test_size}"
        try:
            expected = sklearn_split(y, test_size, seed)
        except ValueError as refused:  # too few rows for every stratum in both parts
            with pytest.raises(ValueError) as raised:
                stratified_split(y, test_size, seed)
            assert str(raised.value) == str(refused), case
            continue
        train, test = stratified_split(y, test_size, seed)
        np.testing.assert_array_equal(train, expected[0], err_msg=case)
        np.testing.assert_array_equal(test, expected[1], err_msg=case)
        compared += 1
    assert compared > 0 or n == 20


def test_most_cases_split_rather_than_refuse() -> None:
    """The identity test above is not vacuous: nearly every case produces a split."""
    cases = itertools.product(SIZES, N_CLASSES, SEEDS, TEST_SIZES)
    refused = 0
    for n, n_classes, seed, test_size in cases:
        try:
            sklearn_split(labels(n, n_classes, "int", False), test_size, seed)
        except ValueError:
            refused += 1
    assert refused < 0.1 * len(SIZES) * len(N_CLASSES) * len(SEEDS) * len(TEST_SIZES)


def test_comparison_sees_a_different_order() -> None:
    """A different seed gives different positions, so the comparison above can fail."""
    y = labels(1000, 4, "str", False)
    first, second = stratified_split(y, 0.3, 1), stratified_split(y, 0.3, 2)
    assert not np.array_equal(first[0], second[0])
    assert sorted(first[0]) != sorted(second[0])


def test_single_member_stratum_is_refused_like_scikit_learn() -> None:
    y = np.array(["a"] * 10 + ["b"] * 9 + ["c"])
    with pytest.raises(ValueError, match="only 1 member") as refused:
        train_test_split(np.arange(20), test_size=0.3, random_state=0, stratify=y)
    with pytest.raises(ValueError, match="only 1 member") as raised:
        stratified_split(y, 0.3, 0)
    assert str(raised.value) == str(refused.value)


@pytest.mark.parametrize("test_size", [0.1, 0.95])
def test_part_smaller_than_number_of_strata_is_refused_like_scikit_learn(
    test_size: float,
) -> None:
    y = np.repeat(np.arange(6), 4)
    with pytest.raises(ValueError, match="number of classes") as refused:
        train_test_split(np.arange(24), test_size=test_size, random_state=0, stratify=y)
    with pytest.raises(ValueError, match="number of classes") as raised:
        stratified_split(y, test_size, 0)
    assert str(raised.value) == str(refused.value)


@pytest.mark.parametrize("test_size", [0.0, 1.0, 3])
def test_test_size_outside_fraction_range_is_refused(test_size: float) -> None:
    with pytest.raises(ValueError, match="test_size"):
        stratified_split(np.repeat([0, 1], 10), test_size, 0)


def reference_split_frame(
    frame: pd.DataFrame, spec: FeatureSpec, seed: int, fractions: dict[str, float]
) -> dict[str, pd.DataFrame]:
    """split_frame as it was written with scikit-learn's train_test_split."""
    stratum = strata(frame, spec)
    holdout = fractions["validation"] + fractions["test"]
    train, rest = train_test_split(frame, test_size=holdout, random_state=seed, stratify=stratum)
    validation, test = train_test_split(
        rest,
        test_size=fractions["test"] / holdout,
        random_state=seed,
        stratify=stratum.loc[rest.index],
    )
    return {
        name: part.sort_index().reset_index(drop=True)
        for name, part in zip(SPLITS, (train, validation, test), strict=True)
    }


@pytest.mark.parametrize(
    "fractions",
    [
        {"train": 0.7, "validation": 0.15, "test": 0.15},
        {"train": 0.6, "validation": 0.2, "test": 0.2},
        {"train": 0.8, "validation": 0.05, "test": 0.15},
    ],
    ids=["70-15-15", "60-20-20", "80-5-15"],
)
@pytest.mark.parametrize("seed", [0, 1, 42])
@pytest.mark.parametrize("rows", [600, 4000])
@pytest.mark.parametrize("index", ["range", "shuffled"])
def test_split_frame_equals_scikit_learn_reference(
    fractions: dict[str, float], seed: int, rows: int, index: str
) -> None:
    frame = generate_credit_data(rows, seed=5)
    if index == "shuffled":  # labels unlike positions: the split must index by position
        frame.index = np.random.default_rng(3).permutation(rows) * 3 + 11
    spec = load_feature_spec("credit")
    parts = split_frame(frame, spec, seed, fractions)
    expected = reference_split_frame(frame, spec, seed, fractions)
    assert list(parts) == list(expected) == list(SPLITS)
    for name in SPLITS:
        pd.testing.assert_frame_equal(parts[name], expected[name], check_exact=True)
    assert sum(len(p) for p in parts.values()) == rows
