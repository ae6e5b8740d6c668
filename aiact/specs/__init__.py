"""The declared model inputs of a use case (read from its usecase.yaml, aiact.usecase)."""

from __future__ import annotations

from dataclasses import dataclass


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


def spec_text(use_case: str, filename: str) -> str:
    """The text of one file of the bundled use case (`credit`); other use cases are folders
    loaded with aiact.usecase.load_use_case."""
    from aiact.usecase import BUNDLED_USE_CASE

    if use_case != BUNDLED_USE_CASE.name:
        raise ValueError(f"unknown bundled use case {use_case!r}: load it with load_use_case")
    return (BUNDLED_USE_CASE / filename).read_text()


def load_feature_spec(use_case: str = "credit") -> FeatureSpec:
    """The feature specification of the bundled use case (`credit`)."""
    from aiact.usecase import BUNDLED_USE_CASE, load_use_case

    if use_case != BUNDLED_USE_CASE.name:
        raise ValueError(f"unknown bundled use case {use_case!r}: load it with load_use_case")
    return load_use_case("", BUNDLED_USE_CASE).spec
