"""Fixtures for stage tests: a small engineered feature set and a model trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiact.featureset import FeatureSplit
from aiact.model_package import ModelPackage, load_model_package, save_model_package
from aiact.policy import load_policy
from aiact.refdata import generate_credit_data
from aiact.specs import load_feature_spec
from aiact.transform import FittedTransform
from components.feature_engineering.core import engineer_features
from components.training.core import Hyperparameters, select_device, train_model


def build_features(
    rows: int = 4000, **knobs: float
) -> tuple[FittedTransform, dict[str, FeatureSplit]]:
    """Reference data through the feature gate."""
    frame = generate_credit_data(rows, seed=11, **knobs)
    gate, transform, splits = engineer_features(
        frame, load_feature_spec("credit"), load_policy()["features"], seed=1
    )
    assert gate.passed and transform is not None
    return transform, splits


def train_package(
    directory: Path, transform: FittedTransform, splits: dict[str, FeatureSplit], seed: int = 0
) -> ModelPackage:
    """Train a small model and write/load its package."""
    params = Hyperparameters(max_epochs=15)
    result = train_model(splits["train"], splits["validation"], params, seed, select_device("cpu"))
    manifest = {
        "model_name": "credit-scoring",
        "architecture": {
            "n_inputs": splits["train"].features.shape[1],
            "hidden_units": list(params.hidden_units),
            "dropout": params.dropout,
        },
        "threshold": 0.5,
    }
    save_model_package(directory, result.model, transform, manifest)
    return load_model_package(directory)


@pytest.fixture(scope="session")
def clean_features() -> tuple[FittedTransform, dict[str, FeatureSplit]]:
    return build_features()


@pytest.fixture(scope="session")
def clean_package(
    tmp_path_factory: pytest.TempPathFactory,
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
) -> tuple[Path, ModelPackage]:
    directory = tmp_path_factory.mktemp("model") / "model"
    return directory, train_package(directory, *clean_features)
