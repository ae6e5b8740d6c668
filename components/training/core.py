"""Reproducible training of the tabular model: seeded, deterministic on CPU, CUDA when present
through the same code path, early stopping on validation loss, everything measured."""

from __future__ import annotations

import copy
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from aiact.featureset import LabelledMatrix
from aiact.model_package import TabularMLP


def _integral(name: str, value: Any) -> int:
    if float(value) != int(value):
        raise ValueError(f"hyperparameter {name} must be a whole number, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Hyperparameters:
    """Documented hyperparameters; unknown keys are refused."""

    hidden_units: tuple[int, ...] = (32, 16)
    dropout: float = 0.1
    learning_rate: float = 0.003
    weight_decay: float = 0.0001
    batch_size: int = 128
    max_epochs: int = 60
    patience: int = 6

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Hyperparameters:
        """Parse and validate hyperparameters from a pipeline parameter."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown hyperparameters {unknown}; known: {sorted(known)}")
        # Pipeline dict parameters travel as protobuf Structs: every number arrives as a float.
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "hidden_units":
                values[key] = tuple(_integral(key, u) for u in value)
            elif isinstance(getattr(cls, key), int):
                values[key] = _integral(key, value)
            else:
                values[key] = float(value)
        params = cls(**values)
        if params.max_epochs < 1 or params.batch_size < 1 or params.learning_rate <= 0:
            raise ValueError(f"invalid hyperparameters: {asdict(params)}")
        return params


@dataclass
class TrainingResult:
    """The trained model and what training measured."""

    model: TabularMLP
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    environment: dict[str, Any]
    duration_s: float


def select_device(requested: str = "auto") -> torch.device:
    """CUDA when available (or asked for), else CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA requested but no CUDA device is visible")
    return device


def seed_everything(seed: int) -> None:
    """Seed every generator and demand deterministic kernels (cuBLAS needs a fixed workspace)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    torch.use_deterministic_algorithms(True, warn_only=False)


def _loss(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float(nn.functional.binary_cross_entropy_with_logits(model(features), labels))


def train_model(
    train: LabelledMatrix,
    validation: LabelledMatrix,
    params: Hyperparameters,
    seed: int,
    device: torch.device,
) -> TrainingResult:
    """Train with mini-batch Adam and early stopping; returns the best-validation model."""
    seed_everything(seed)
    started = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    x_train = torch.as_tensor(train.features, dtype=torch.float32, device=device)
    y_train = torch.as_tensor(train.labels, dtype=torch.float32, device=device)
    x_val = torch.as_tensor(validation.features, dtype=torch.float32, device=device)
    y_val = torch.as_tensor(validation.labels, dtype=torch.float32, device=device)
    model = TabularMLP(x_train.shape[1], params.hidden_units, params.dropout).to(device)
    optimiser = torch.optim.Adam(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    shuffler = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_state, stale = float("inf"), 0, copy.deepcopy(model.state_dict()), 0
    for epoch in range(1, params.max_epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=shuffler).to(device)
        for start in range(0, len(order), params.batch_size):
            batch = order[start : start + params.batch_size]
            optimiser.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(
                model(x_train[batch]), y_train[batch]
            )
            loss.backward()
            optimiser.step()
        val_loss = _loss(model, x_val, y_val)
        history.append(
            {"epoch": epoch, "train_loss": _loss(model, x_train, y_train), "val_loss": val_loss}
        )
        if val_loss < best_loss - 1e-5:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= params.patience:
                break
    model.load_state_dict(best_state)
    model = model.cpu()
    duration = time.perf_counter() - started
    environment = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "",
        "python_version": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_cuda_memory_mb": (
            round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
            if device.type == "cuda"
            else 0.0
        ),
    }
    return TrainingResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        stopped_early=len(history) < params.max_epochs,
        environment=environment,
        duration_s=round(duration, 3),
    )
