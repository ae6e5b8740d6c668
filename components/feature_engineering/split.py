"""Stratified shuffle split, index-for-index identical to scikit-learn's
``train_test_split(X, test_size=<float>, random_state=<int>, stratify=y)``.

Why reimplemented: the feature-engineering stage runs as its own KFP task process, and
importing ``sklearn.model_selection`` costs about 1.3 s of start-up for every such process,
for a function of a few dozen lines. This module follows scikit-learn 1.7's
``_validate_shuffle_split``, ``StratifiedShuffleSplit._iter_indices`` (with ``n_splits=1``)
and ``sklearn.utils.extmath._approximate_mode`` line by line, drawing from
``np.random.RandomState(seed)`` in the same order, so it selects the same rows in the same
order. ``tests/components/test_feature_split.py`` proves the identity against scikit-learn
itself over many seeds, sizes and strata.

Derived from scikit-learn (https://scikit-learn.org), Copyright (c) 2007-2024 The
scikit-learn developers, licensed under the BSD-3-Clause license.
"""

from __future__ import annotations

from math import ceil

import numpy as np
import numpy.typing as npt
import pandas as pd


def shuffle_split_sizes(n_samples: int, test_size: float) -> tuple[int, int]:
    """(n_train, n_test) for a float test fraction, as scikit-learn's
    ``_validate_shuffle_split``: ``n_test = ceil(test_size * n)``, the rest is train."""
    if isinstance(test_size, bool) or not isinstance(test_size, (float, np.floating)):
        raise ValueError(f"test_size={test_size!r} must be a float fraction in the (0, 1) range")
    if test_size <= 0 or test_size >= 1:
        raise ValueError(
            f"test_size={test_size} should be either positive and smaller than the number "
            f"of samples {n_samples} or a float in the (0, 1) range"
        )
    n_test = ceil(test_size * n_samples)
    n_train = n_samples - n_test
    if n_train == 0:
        raise ValueError(
            f"With n_samples={n_samples}, test_size={test_size} and train_size=None, the "
            "resulting train set will be empty. Adjust any of the aforementioned parameters."
        )
    return n_train, n_test


def approximate_mode(
    class_counts: npt.NDArray[np.int64], n_draws: int, rng: np.random.RandomState
) -> npt.NDArray[np.int64]:
    """Approximate mode of the multivariate hypergeometric (scikit-learn's
    ``_approximate_mode``): per-class draws summing to ``n_draws``, ties broken by ``rng``."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        values = np.sort(np.unique(remainder))[::-1]
        for value in values:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def stratified_split(
    stratify: npt.ArrayLike | pd.Series,
    test_size: float,
    seed: int,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Positions (train, test) of a stratified shuffle split of ``len(stratify)`` rows:
    exactly the positions ``train_test_split(X, test_size=test_size, random_state=seed,
    stratify=stratify)`` selects, in the same order. Index a frame with ``frame.iloc[...]``.

    Raises ValueError, as scikit-learn does, when a stratum has a single member or when the
    train or test size is smaller than the number of strata."""
    y = stratify.to_numpy() if isinstance(stratify, pd.Series) else np.asarray(stratify)
    if y.ndim != 1:
        raise ValueError(f"stratify must be one-dimensional, got shape {y.shape}")
    if bool(pd.isna(y).any()):  # scikit-learn's check_array rejects a missing label too
        raise ValueError("Input y contains NaN.")
    n_samples = y.shape[0]
    n_train, n_test = shuffle_split_sizes(n_samples, test_size)

    classes, y_indices = np.unique(y, return_inverse=True)
    n_classes = classes.shape[0]
    class_counts = np.bincount(y_indices)
    if np.min(class_counts) < 2:
        raise ValueError(
            "The least populated class in y has only 1 member, which is too few. The minimum "
            "number of groups for any class cannot be less than 2."
        )
    if n_train < n_classes:
        raise ValueError(
            f"The train_size = {n_train} should be greater or equal to the number of "
            f"classes = {n_classes}"
        )
    if n_test < n_classes:
        raise ValueError(
            f"The test_size = {n_test} should be greater or equal to the number of "
            f"classes = {n_classes}"
        )

    class_indices = np.split(np.argsort(y_indices, kind="mergesort"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = approximate_mode(class_counts, n_train, rng)
    class_counts_remaining = class_counts - n_i
    t_i = approximate_mode(class_counts_remaining, n_test, rng)

    train: list[np.intp] = []
    test: list[np.intp] = []
    for i in range(n_classes):
        permutation = rng.permutation(class_counts[i])
        perm_indices_class_i = class_indices[i].take(permutation, mode="clip")
        train.extend(perm_indices_class_i[: n_i[i]])
        test.extend(perm_indices_class_i[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)
