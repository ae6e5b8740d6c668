"""The model package: weights, architecture and the fitted transform in one directory, so
evaluation and serving apply exactly the transform training used. Weights load with
`weights_only=True` (no arbitrary pickle)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from aiact.evidence import write_atomic
from aiact.model_manifest import MANIFEST, read_manifest
from aiact.transform import FittedTransform

if TYPE_CHECKING:
    import pandas as pd

WEIGHTS = "weights.pt"
TRANSFORM = "transform.json"


class TabularMLP(nn.Module):
    """A feed-forward binary classifier over the transformed feature matrix."""

    def __init__(self, n_inputs: int, hidden_units: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for units in hidden_units:
            layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(dropout)]
            width = units
        layers.append(nn.Linear(width, 1))
        self.network = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits, one per row."""
        logits: torch.Tensor = self.network(features).squeeze(-1)
        return logits


@dataclass
class ModelPackage:
    """A loaded model ready to score raw records or feature matrices."""

    model: TabularMLP
    transform: FittedTransform
    manifest: dict[str, Any]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probability of the favourable class for each row of a feature matrix."""
        self.model.eval()
        with torch.no_grad():
            logits = self.model(torch.as_tensor(features, dtype=torch.float32))
        return torch.sigmoid(logits).numpy().astype(np.float64)

    def predict_records(self, records: pd.DataFrame) -> np.ndarray:
        """Probabilities for raw records, through the fitted transform."""
        return self.predict_proba(self.transform.apply(records))

    @property
    def threshold(self) -> float:
        """Decision threshold on the probability."""
        return float(self.manifest["threshold"])


def save_model_package(
    directory: Path, model: TabularMLP, transform: FittedTransform, manifest: dict[str, Any]
) -> None:
    """Write weights (deterministic bytes for equal weights), manifest and transform."""
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    (directory / WEIGHTS).write_bytes(buffer.getvalue())
    write_atomic(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    transform.save(directory / TRANSFORM)


def load_model_package(directory: Path) -> ModelPackage:
    """Load a package written by save_model_package."""
    manifest = read_manifest(directory)
    architecture = manifest["architecture"]
    model = TabularMLP(
        architecture["n_inputs"], tuple(architecture["hidden_units"]), architecture["dropout"]
    )
    state = torch.load(io.BytesIO((directory / WEIGHTS).read_bytes()), weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return ModelPackage(model, FittedTransform.load(directory / TRANSFORM), manifest)
