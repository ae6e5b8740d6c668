"""Reproducible training: same seed, same weights (byte-identical packages); the stage records
convergence, hyperparameters and environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aiact.featureset import FeatureSplit
from aiact.hashing import sha256_json, sha256_path
from aiact.lineage import RunInfo
from aiact.transform import FittedTransform
from components.training.core import Hyperparameters, select_device, train_model
from components.training.executor import run_training
from components.training.report_html import render_training_html
from tests.browser import visible_text
from tests.chain import Chain
from tests.components.conftest import train_package


def test_same_seed_gives_identical_weights(
    tmp_path: Path, clean_features: tuple[FittedTransform, dict[str, FeatureSplit]]
) -> None:
    first = train_package(tmp_path / "a", *clean_features, seed=3)
    second = train_package(tmp_path / "b", *clean_features, seed=3)
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert sha256_path(tmp_path / "a") == sha256_path(tmp_path / "b")
    other = train_package(tmp_path / "c", *clean_features, seed=4)
    assert sha256_path(tmp_path / "c") != sha256_path(tmp_path / "a")
    assert not torch.equal(
        other.model.state_dict()["network.0.weight"], first.model.state_dict()["network.0.weight"]
    )


def test_training_records_convergence_and_environment(
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
) -> None:
    _, splits = clean_features
    result = train_model(
        splits["train"],
        splits["validation"],
        Hyperparameters(max_epochs=40, patience=3),
        0,
        select_device("auto"),
    )
    assert result.history[0]["val_loss"] > result.history[result.best_epoch - 1]["val_loss"]
    assert result.environment["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert result.environment["torch_version"] == torch.__version__
    assert 1 <= result.best_epoch <= len(result.history) <= 40


def test_hyperparameters_are_validated() -> None:
    params = Hyperparameters.from_dict({"hidden_units": [8.0], "max_epochs": 5.0, "dropout": 0})
    assert params.hidden_units == (8,) and params.max_epochs == 5 and params.dropout == 0.0
    with pytest.raises(ValueError, match="unknown hyperparameters \\['epochs'\\]"):
        Hyperparameters.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="max_epochs must be a whole number"):
        Hyperparameters.from_dict({"max_epochs": 2.5})
    with (
        pytest.raises(RuntimeError, match="CUDA requested")
        if not torch.cuda.is_available()
        else pytest.raises(AssertionError)
    ):
        select_device("cuda")
        raise AssertionError


def test_stage_records_loss_curves_hyperparameters_and_environment(
    tmp_path: Path,
    sqlite_uri: str,
    run: RunInfo,
) -> None:
    chain = Chain(tmp_path / "chain", sqlite_uri, run.run_id)
    chain.prepare()
    feature_dir, transform_path = chain.engineer(), chain.paths["transform"]
    report_path, html_path = tmp_path / "training_report.json", tmp_path / "training.html"
    metadata = run_training(
        run=run,
        metadata_uri=sqlite_uri,
        feature_set_dir=feature_dir,
        feature_set_uri=str(feature_dir),
        transform_path=transform_path,
        transform_uri=str(transform_path),
        hyperparameters={"max_epochs": 4.0, "hidden_units": [8.0]},
        seed=5,
        model_name="credit-scoring",
        device="cpu",
        model_dir=tmp_path / "model",
        model_uri=str(tmp_path / "model"),
        report_path=report_path,
        report_uri=str(report_path),
        report_html_path=html_path,
        feature_verdict_path=chain.paths["feature_engineering_verdict"],
        feature_verdict_uri=str(chain.paths["feature_engineering_verdict"]),
    )
    report = json.loads(report_path.read_text())
    assert [row["epoch"] for row in report["history"]] == [1, 2, 3, 4]
    assert report["hyperparameters_sha256"] == sha256_json(report["hyperparameters"])
    assert metadata["hyperparameters_sha256"] == report["hyperparameters_sha256"]
    assert metadata["stage"] == "experimental" and metadata["seed"] == 5
    environment = report["environment"]
    assert environment["device"] == "cpu" and environment["torch_version"] == torch.__version__
    assert environment["peak_rss_mb"] > 0 and report["duration_s"] > 0
    html = html_path.read_text()
    assert html.count("<svg") == 1
    assert f"<figcaption>Loss per epoch (best epoch {report['best_epoch']} of 4," in html
    assert f"best epoch {report['best_epoch']}</text>" in html


def test_training_report_html_shows_loss_curves_with_ticks_and_the_best_epoch(
    tmp_path: Path,
) -> None:
    train = [0.69, 0.55, 0.48, 0.45, 0.44, 0.43]
    val = [0.67, 0.56, 0.5012, 0.4987, 0.503, 0.51]
    report = {
        "best_epoch": 4,
        "epochs_run": 6,
        "history": [
            {"epoch": i + 1, "train_loss": t, "val_loss": v}
            for i, (t, v) in enumerate(zip(train, val, strict=True))
        ],
    }
    page = tmp_path / "training.html"
    page.write_text(render_training_html(report))
    text = visible_text(page)
    assert "Training report" in text and "Gate" not in text
    assert "1 2 3 4 5 6 epoch" in text  # integer epoch ticks, then the axis label
    assert "binary cross-entropy" in text
    assert "best epoch 4" in text and "validation loss 0.4987" in text
    assert "train loss" in text and "validation loss" in text
    assert "Loss per epoch (best epoch 4 of 6," in text
