"""Declared data and feature specifications, one folder per use case."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True)
class NumericFeature:
    """A numeric input with its documented range and transform."""

    name: str
    low: float
    high: float
    transform: str


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical input with its documented vocabulary (one-hot encoded)."""

    name: str
    vocabulary: tuple[str, ...]


@dataclass(frozen=True)
class FeatureSpec:
    """The declared model inputs of one use case."""

    label: str
    protected_attributes: tuple[str, ...]
    numeric: tuple[NumericFeature, ...]
    categorical: tuple[CategoricalFeature, ...]

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Raw columns the model reads, in a fixed order."""
        return tuple(f.name for f in self.numeric) + tuple(f.name for f in self.categorical)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FeatureSpec:
        """Parse the YAML form, failing on any malformed entry."""
        numeric = []
        for name, entry in raw["numeric"].items():
            low, high = entry["range"]
            if entry["transform"] not in ("standardize", "log_standardize"):
                raise ValueError(f"feature {name}: unknown transform {entry['transform']!r}")
            numeric.append(NumericFeature(name, float(low), float(high), entry["transform"]))
        categorical = [
            CategoricalFeature(name, tuple(str(v) for v in entry["vocabulary"]))
            for name, entry in raw["categorical"].items()
        ]
        return cls(
            label=raw["label"],
            protected_attributes=tuple(raw["protected_attributes"]),
            numeric=tuple(numeric),
            categorical=tuple(categorical),
        )


def spec_text(use_case: str, filename: str) -> str:
    """The text of one declared specification file of a use case."""
    folder = resources.files("aiact.specs").joinpath(use_case)
    if not folder.is_dir():
        raise ValueError(f"unknown use case {use_case!r}: no folder aiact/specs/{use_case}")
    return folder.joinpath(filename).read_text()


def load_feature_spec(use_case: str) -> FeatureSpec:
    """The feature specification of a use case."""
    return FeatureSpec.from_dict(yaml.safe_load(spec_text(use_case, "features.yaml")))
