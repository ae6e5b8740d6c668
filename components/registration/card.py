"""The model card registration writes: gathered from the records the chain of custody has just
verified (the use case data preparation read, the dataset and its data card, the evaluation
report, the gate policy) and the platform's approval settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from aiact import lineage
from aiact.custody import Custody
from aiact.evidence import acknowledgements_required, write_atomic, write_json
from aiact.hashing import sha256_path
from aiact.lineage import ArtifactRecord, PropertyValue
from aiact.model_card import MODEL_CARD, MODEL_CARD_PAGE, build_model_card, render_html
from aiact.stage import StageContext
from aiact.usecase import DECLARATION, parse_declaration
from components.approval.core import required_approvals

DATA_CARD_FILE = "data_card.yaml"


def _declaration(stage: StageContext, custody: Custody) -> tuple[str, str, dict[str, Any] | None]:
    """Name, content hash and `intended_use` of the use case data preparation read."""
    artifact = custody.links["data_preparation"].inputs.get("use_case")
    if artifact is None:
        return "", "", None
    folder = stage.verifier.local_path(artifact)
    declaration = parse_declaration(yaml.safe_load((folder / DECLARATION).read_text()))
    intended = declaration.intended_use
    return declaration.name, artifact.name, intended.model_dump() if intended else None


def _data_card(
    stage: StageContext, custody: Custody, dataset_dir: Path
) -> tuple[dict[str, Any], str]:
    """The data card of the training data (the copy inside the dataset, else the one data
    preparation read) and its content hash."""
    path = dataset_dir / DATA_CARD_FILE
    if not path.is_file():
        artifact = custody.links["data_preparation"].inputs.get("data_card")
        if artifact is None:
            return {}, ""
        path = stage.verifier.local_path(artifact)
    card = yaml.safe_load(path.read_text())
    return (card if isinstance(card, dict) else {}), sha256_path(path)


def model_card_of(
    stage: StageContext,
    custody: Custody,
    *,
    model_sha256: str,
    manifest: dict[str, Any],
    dataset_dir: Path,
    dataset_sha256: str,
    evaluation_report: dict[str, Any],
    evaluation_report_uri: str,
    evaluation_report_sha256: str,
    code_commit: str,
) -> dict[str, Any]:
    """The model card of the model being registered."""
    use_case, use_case_sha256, intended = _declaration(stage, custody)
    data_card, data_card_sha256 = _data_card(stage, custody, dataset_dir)
    dataset = lineage.properties_of(stage.lineage.require_artifact(lineage.DATASET, dataset_sha256))
    platform = stage.platform
    environment = stage.run.environment
    rows, columns = dataset.get("rows"), dataset.get("columns")
    return build_model_card(
        model_name=str(manifest["model_name"]),
        model_sha256=model_sha256,
        manifest=manifest,
        code_commit=code_commit,
        run_id=stage.run.run_id,
        environment=environment,
        use_case=use_case or str(dataset.get("use_case", "")),
        use_case_sha256=use_case_sha256,
        intended_use=intended,
        data_card=data_card,
        data_card_sha256=data_card_sha256,
        dataset_sha256=dataset_sha256,
        dataset_rows=int(rows) if isinstance(rows, int | float) else None,
        dataset_columns=int(columns) if isinstance(columns, int | float) else None,
        evaluation_report=evaluation_report,
        evaluation_report_uri=evaluation_report_uri,
        evaluation_report_sha256=evaluation_report_sha256,
        required_approvals=required_approvals(
            environment, platform.required_approvals if platform else 0
        ),
        approver_group=platform.approver_group if platform else "",
        acknowledgements_required=acknowledgements_required(evaluation_report),
        approval_timeout_s=platform.max_approval_timeout_s if platform else None,
    )


def write_model_card(
    stage: StageContext,
    card: dict[str, Any],
    *,
    json_path: Path,
    json_uri: str,
    html_path: Path,
    html_uri: str,
) -> ArtifactRecord:
    """Write the card (JSON) and its HTML page; record both as outputs of the stage. Returns
    the card's record (its content hash is the card's identity)."""
    write_json(json_path, card)
    write_atomic(html_path, render_html(card))
    model = card["model"]
    properties: dict[str, PropertyValue] = {
        "model_name": str(model["name"]),
        "model_sha256": str(model["sha256"]),
        "schema": str(card["schema"]),
        "intended_use_declared": bool(card["intended_use"]["declared"]),
        "required_approvals": int(card["human_oversight"]["required_approvals"]),
        "limitations": json.dumps([item["text"] for item in card["limitations"]])[:4000],
    }
    record = stage.wrote(MODEL_CARD, json_path, json_uri, "model_card", properties)
    stage.wrote(
        MODEL_CARD_PAGE,
        html_path,
        html_uri,
        "model_card_html",
        {"model_card_sha256": record.content_sha256, "model_sha256": str(model["sha256"])},
    )
    return record
