"""The versioned feature set on disk: per split, the model matrix, labels, protected attributes
and raw rows (for serving tests). `.npy` and CSV only, so the bytes are deterministic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aiact.evidence import write_atomic

if TYPE_CHECKING:  # pandas is imported where frames are read (training reads none)
    import pandas as pd

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class LabelledMatrix:
    """One split's model matrix and labels: all that training reads."""

    features: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class FeatureSplit(LabelledMatrix):
    """One split: raw rows, model matrix, labels and protected attributes."""

    raw: pd.DataFrame
    groups: pd.DataFrame


def save_feature_set(directory: Path, splits: dict[str, FeatureSplit], names: list[str]) -> None:
    """Write every split and the feature names."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "feature_names.json", json.dumps(names, indent=1) + "\n")
    for name, split in splits.items():
        target = directory / name
        target.mkdir(exist_ok=True)
        np.save(target / "features.npy", split.features, allow_pickle=False)
        np.save(target / "labels.npy", split.labels, allow_pickle=False)
        split.groups.to_csv(target / "groups.csv", index=False)
        split.raw.to_csv(target / "raw.csv", index=False)


def _require_feature_set(directory: Path) -> None:
    if not (directory / "feature_names.json").is_file():
        raise FileNotFoundError(f"{directory} is not a feature set (no feature_names.json)")


def load_matrices(directory: Path) -> dict[str, LabelledMatrix]:
    """Read only the model matrices and labels of a feature set (no raw rows or groups, so no
    pandas: a training process does not pay for importing it)."""
    _require_feature_set(directory)
    return {
        name: LabelledMatrix(
            features=np.load(directory / name / "features.npy", allow_pickle=False),
            labels=np.load(directory / name / "labels.npy", allow_pickle=False),
        )
        for name in SPLITS
    }


def load_feature_set(directory: Path) -> dict[str, FeatureSplit]:
    """Read a feature set written by save_feature_set."""
    import pandas as pd

    _require_feature_set(directory)
    return {
        name: FeatureSplit(
            raw=pd.read_csv(directory / name / "raw.csv"),
            features=np.load(directory / name / "features.npy", allow_pickle=False),
            labels=np.load(directory / name / "labels.npy", allow_pickle=False),
            groups=pd.read_csv(directory / name / "groups.csv", dtype=str),
        )
        for name in SPLITS
    }


def feature_names(directory: Path) -> list[str]:
    """The model input names of a feature set."""
    names: list[str] = json.loads((directory / "feature_names.json").read_text())
    return names
