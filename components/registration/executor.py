"""Registration executor: check the evidence, write the registration, move the model's stage
from `experimental` to `staging` in MLMD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.evidence import write_json
from aiact.lineage import RunInfo
from aiact.stage import stage_execution
from components.registration import core
from components.registration.card import model_card_of, write_model_card

STAGE = "registration"


def run_registration(
    *,
    run: RunInfo,
    metadata_uri: str,
    model_dir: Path,
    model_uri: str,
    evaluation_report_path: Path,
    evaluation_report_uri: str,
    dataset_dir: Path,
    dataset_uri: str,
    registration_path: Path,
    registration_uri: str,
    evaluation_verdict_path: Path,
    evaluation_verdict_uri: str,
    model_card_path: Path | None = None,
    model_card_uri: str = "",
    model_card_html_path: Path | None = None,
    model_card_html_uri: str = "",
) -> dict[str, Any]:
    """Run the stage; returns the registration record. `evaluation_verdict_path` is the
    evaluation gate's verdict, which must be this run's passed verdict on that report.

    The model card (JSON, `model_card_path`) and its HTML page (`model_card_html_path`) are
    written beside the registration record unless given; their URIs default to their paths."""
    with stage_execution(STAGE, run, metadata_uri) as stage:
        model = stage.read(lineage.MODEL, model_dir, model_uri, "model")
        report = stage.read(
            lineage.EVALUATION_REPORT,
            evaluation_report_path,
            evaluation_report_uri,
            "evaluation_report",
        )
        dataset = stage.read(lineage.DATASET, dataset_dir, dataset_uri, "dataset")
        verdict = stage.read_verdict("evaluation", evaluation_verdict_path, evaluation_verdict_uri)
        custody = stage.verify_upstream(
            through="evaluation",
            model=model.content_sha256,
            dataset=dataset.content_sha256,
            evaluation_report=report.content_sha256,
            **verdict,
        )
        context = lineage.properties_of(stage.lineage.run_context(run.run_id))
        manifest = json.loads((model_dir / "model.json").read_text())
        evaluation = json.loads(evaluation_report_path.read_text())
        card_path = model_card_path or registration_path.with_name("model_card.json")
        html_path = model_card_html_path or registration_path.with_name("model_card.html")
        card = write_model_card(
            stage,
            model_card_of(
                stage,
                custody,
                model_sha256=model.content_sha256,
                manifest=manifest,
                dataset_dir=dataset_dir,
                dataset_sha256=dataset.content_sha256,
                evaluation_report=evaluation,
                evaluation_report_uri=evaluation_report_uri,
                evaluation_report_sha256=report.content_sha256,
                code_commit=str(context.get("code_commit", "")),
            ),
            json_path=card_path,
            json_uri=model_card_uri or str(card_path),
            html_path=html_path,
            html_uri=model_card_html_uri or str(html_path),
        )
        record = core.registration_record(
            model_name=manifest["model_name"],
            model_sha256=model.content_sha256,
            evaluation_report=evaluation,
            evaluation_report_uri=evaluation_report_uri,
            evaluation_report_sha256=report.content_sha256,
            dataset_sha256=dataset.content_sha256,
            feature_set_sha256=custody.digest("training", "feature_set"),
            code_commit=str(context.get("code_commit", "")),
            run_id=run.run_id,
            model_card_sha256=card.content_sha256,
        )
        write_json(registration_path, record)
        stage.wrote(
            lineage.MODEL_REGISTRATION,
            registration_path,
            registration_uri,
            "registration",
            {k: v for k, v in record.items() if isinstance(v, str)},
        )
        stored = stage.lineage.require_artifact(lineage.MODEL, model.content_sha256)
        # The model artefact is content-addressed, so an identical model retrained in a later
        # run is this same artefact: never demote a model that is already in production.
        if lineage.properties_of(stored).get("stage") != "production":
            stage.lineage.update_artifact(stored.id, {"stage": "staging"})
        return record
