"""Training executor: read the feature set, train, package the model with its transform,
record it in MLMD as an `experimental` candidate."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.evidence import page_type, write_atomic, write_json
from aiact.featureset import load_matrices
from aiact.hashing import sha256_json
from aiact.lineage import PropertyValue, RunInfo
from aiact.model_package import save_model_package
from aiact.stage import stage_execution
from aiact.transform import FittedTransform
from aiact.usecase import load_use_case, record_of
from components.training import core
from components.training.report_html import render_training_html

STAGE = "training"


def run_training(
    *,
    run: RunInfo,
    metadata_uri: str,
    feature_set_dir: Path,
    feature_set_uri: str,
    transform_path: Path,
    transform_uri: str,
    hyperparameters: dict[str, Any],
    seed: int,
    model_name: str,
    device: str,
    model_dir: Path,
    model_uri: str,
    report_path: Path,
    report_uri: str,
    feature_verdict_path: Path,
    feature_verdict_uri: str,
    report_html_path: Path | None = None,
    use_case_uri: str = "",
    report_html_uri: str = "",
) -> dict[str, PropertyValue]:
    """Run the stage; returns the model's metadata. An empty `model_name` takes the use
    case's (`use_case_uri`, '' = the bundled example; it must be the one data preparation
    read in this run). `feature_verdict_path` is the feature gate's verdict, which must be
    the passed verdict of this run's feature engineering."""
    with (
        stage_execution(STAGE, run, metadata_uri) as stage,
        tempfile.TemporaryDirectory() as scratch,
    ):
        use_case = load_use_case(use_case_uri, Path(scratch))
        stage.inputs.append(record_of(use_case))
        model_name = model_name or use_case.model_name
        features = stage.read(lineage.FEATURE_SET, feature_set_dir, feature_set_uri, "feature_set")
        fitted = stage.read(lineage.FEATURE_TRANSFORM, transform_path, transform_uri, "transform")
        verdict = stage.read_verdict(
            "feature_engineering", feature_verdict_path, feature_verdict_uri
        )
        custody = stage.verify_upstream(
            through="feature_engineering",
            feature_set=features.content_sha256,
            transform=fitted.content_sha256,
            **verdict,
        )
        stage.require_same(
            "use case",
            use_case.sha256,
            custody.digest("data_preparation", "use_case"),
            "data preparation read",
        )
        if (
            reused := stage.reuse(
                {
                    "hyperparameters": asdict(core.Hyperparameters.from_dict(hyperparameters)),
                    "seed": seed,
                    "model_name": model_name,
                    "device": str(core.select_device(device)),
                },
                {
                    "model": model_dir,
                    "training_report": report_path,
                    "training_report_html": report_html_path,
                },
            )
        ) is not None:
            return reused
        params = core.Hyperparameters.from_dict(hyperparameters)
        splits = load_matrices(feature_set_dir)
        transform = FittedTransform.load(transform_path)
        result = core.train_model(
            splits["train"], splits["validation"], params, seed, core.select_device(device)
        )
        manifest = {
            "model_name": model_name,
            "architecture": {
                "n_inputs": splits["train"].features.shape[1],
                "hidden_units": list(params.hidden_units),
                "dropout": params.dropout,
            },
            "feature_names": transform.feature_names,
            "hyperparameters": asdict(params),
            "seed": seed,
            "threshold": 0.5,
        }
        save_model_package(model_dir, result.model, transform, manifest)
        final = result.history[result.best_epoch - 1]
        params_sha256 = sha256_json(asdict(params))
        report = {
            "hyperparameters": asdict(params),
            "hyperparameters_sha256": params_sha256,
            "seed": seed,
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "stopped_early": result.stopped_early,
            "history": result.history,
            "environment": result.environment,
            "duration_s": result.duration_s,
        }
        write_json(report_path, report)
        if report_html_path is not None:
            write_atomic(report_html_path, render_training_html(report))
        stage.wrote(lineage.TRAINING_REPORT, report_path, report_uri, "training_report")
        if report_html_path is not None:
            stage.wrote(
                page_type(lineage.TRAINING_REPORT),
                report_html_path,
                report_html_uri or str(report_html_path),
                "training_report_html",
            )
        metadata: dict[str, PropertyValue] = {
            "model_name": model_name,
            "stage": "experimental",
            "seed": seed,
            "hyperparameters": json.dumps(asdict(params), sort_keys=True),
            "hyperparameters_sha256": params_sha256,
            "device": result.environment["device"],
            "best_epoch": result.best_epoch,
            "val_loss": round(final["val_loss"], 6),
        }
        stage.properties.update(
            device=result.environment["device"], training_duration_s=result.duration_s
        )
        record = stage.wrote(lineage.MODEL, model_dir, model_uri, "model", metadata)
        return {
            **metadata,
            "version": lineage.version_of(record.content_sha256),
            "train_loss": round(final["train_loss"], 6),
            "duration_s": result.duration_s,
            "peak_rss_mb": result.environment["peak_rss_mb"],
        }
