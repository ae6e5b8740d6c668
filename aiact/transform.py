"""The fitted feature transform: fitted once on the training split, applied identically in
training, evaluation and serving. Stored as plain JSON (no pickle), so it is portable and
reviewable."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aiact.evidence import write_atomic
from aiact.specs import FeatureSpec

if TYPE_CHECKING:  # pandas is imported where frames are transformed (training loads none)
    import pandas as pd


@dataclass(frozen=True)
class NumericParams:
    """Imputation and scaling fitted for one numeric feature."""

    median: float
    mean: float
    std: float
    log: bool


@dataclass(frozen=True)
class FittedTransform:
    """Everything needed to turn raw records into the model's input matrix."""

    numeric: dict[str, NumericParams]
    categorical: dict[str, list[str]]

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's input columns, in order."""
        names = list(self.numeric)
        for column, vocabulary in self.categorical.items():
            names.extend(f"{column}={value}" for value in vocabulary)
        return names

    @property
    def raw_columns(self) -> list[str]:
        """Raw columns a record must carry."""
        return [*self.numeric, *self.categorical]

    def apply(self, frame: pd.DataFrame) -> np.ndarray:
        """Transform raw rows into a float32 matrix; missing numerics get the fitted median,
        unknown or missing categories encode as all zeros."""
        import pandas as pd

        missing = [c for c in self.raw_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"records lack required columns: {', '.join(missing)}")
        blocks = []
        for column, params in self.numeric.items():
            values = pd.to_numeric(frame[column], errors="raise").astype("float64")
            values = values.fillna(params.median).to_numpy()
            if params.log:
                values = np.log1p(np.clip(values, 0.0, None))
            blocks.append(((values - params.mean) / params.std)[:, None])
        for column, vocabulary in self.categorical.items():
            values = frame[column].astype("object").to_numpy()
            blocks.append(np.stack([values == v for v in vocabulary], axis=1).astype("float64"))
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "numeric": {name: asdict(p) for name, p in self.numeric.items()},
            "categorical": self.categorical,
            "feature_names": self.feature_names,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FittedTransform:
        """Inverse of to_dict. Column order comes from `feature_names` (the JSON mappings are
        stored with sorted keys, which would otherwise reorder the model's inputs)."""
        order = [name.split("=", 1)[0] for name in raw["feature_names"]]
        columns = list(dict.fromkeys(order))
        if set(columns) != set(raw["numeric"]) | set(raw["categorical"]):
            raise ValueError("transform feature_names disagree with its numeric/categorical keys")
        return cls(
            numeric={n: NumericParams(**raw["numeric"][n]) for n in columns if n in raw["numeric"]},
            categorical={
                n: list(raw["categorical"][n]) for n in columns if n in raw["categorical"]
            },
        )

    def save(self, path: Path) -> None:
        """Write as sorted, indented JSON (stable bytes for the same fit)."""
        write_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> FittedTransform:
        """Read a transform written by save()."""
        return cls.from_dict(json.loads(path.read_text()))


def fit_transform(train: pd.DataFrame, spec: FeatureSpec) -> FittedTransform:
    """Fit imputation and scaling on the training split only."""
    import pandas as pd

    numeric = {}
    for feature in spec.numeric:
        values = pd.to_numeric(train[feature.name], errors="raise").astype("float64")
        median = float(values.median())
        filled = values.fillna(median).to_numpy()
        log = feature.transform == "log_standardize"
        if log:
            filled = np.log1p(np.clip(filled, 0.0, None))
        std = float(filled.std())
        numeric[feature.name] = NumericParams(
            median=round(median, 10),
            mean=round(float(filled.mean()), 10),
            std=round(std if std > 0 else 1.0, 10),
            log=log,
        )
    categorical = {feature.name: list(feature.vocabulary) for feature in spec.categorical}
    return FittedTransform(numeric=numeric, categorical=categorical)
