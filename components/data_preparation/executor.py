"""Data preparation executor: fetch the source, run the quality gate, write the versioned
dataset, record everything in MLMD. Knows nothing of KFP."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from aiact import lineage
from aiact.evidence import build_report, write_report
from aiact.lineage import PropertyValue, RunInfo
from aiact.policy import section
from aiact.specs import load_feature_spec, spec_text
from aiact.stage import stage_execution
from aiact.storage import fetch
from components.data_preparation import core

STAGE = "data_preparation"
DATA_FILE = "data.csv"
REQUIRED_CARD_FIELDS = (
    "name",
    "owner",
    "origin",
    "licence",
    "intended_use",
    "protected_attributes",
)


def read_data_card(path: Path) -> dict[str, Any]:
    """Load a data card and check it documents what Art. 10 asks for."""
    try:
        card = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise core.DataSourceError(f"data card {path.name} is not valid YAML: {exc}") from exc
    if not isinstance(card, dict):
        raise core.DataSourceError(f"data card {path.name} must be a mapping")
    missing = [name for name in REQUIRED_CARD_FIELDS if not card.get(name)]
    if missing:
        raise core.DataSourceError(f"data card {path.name} lacks required fields: {missing}")
    return card


def run_data_preparation(
    *,
    run: RunInfo,
    metadata_uri: str,
    source_uri: str,
    data_card_uri: str,
    use_case: str,
    policy: dict[str, Any],
    dataset_dir: Path,
    dataset_uri: str,
    report_path: Path,
    report_uri: str,
    report_html_path: Path,
) -> dict[str, PropertyValue]:
    """Run the stage; returns the dataset's metadata. Raises GateFailed on a breach."""
    spec = load_feature_spec(use_case)
    with (
        stage_execution(STAGE, run, metadata_uri) as stage,
        tempfile.TemporaryDirectory() as scratch,
    ):
        policy_digest = stage.read_policy(policy)
        source = fetch(source_uri, Path(scratch))
        card_path = fetch(data_card_uri, Path(scratch))
        stage.read(lineage.RAW_DATASET, source, source_uri, "source", upstream=False)
        card = read_data_card(card_path)
        stage.read(
            lineage.DATA_CARD,
            card_path,
            data_card_uri,
            "data_card",
            upstream=False,
            properties={"name": str(card["name"]), "owner": str(card["owner"])},
        )
        frame = core.read_table(source)
        schema_path = Path(scratch) / "schema.pbtxt"
        schema_path.write_text(spec_text(use_case, "schema.pbtxt"))
        outcome = core.evaluate_source(
            frame,
            schema_path,
            section(policy, "data_quality"),
            label=spec.label,
            protected_attributes=spec.protected_attributes,
        )
        report = build_report(
            "Data quality report",
            outcome.gate,
            {"source": {"uri": source_uri, "data_card": card["name"]}, **outcome.evidence},
            policy_sha256=policy_digest,
        )
        write_report(report_path, report_html_path, report)
        stage.wrote(
            lineage.DATA_VALIDATION_REPORT,
            report_path,
            report_uri,
            "validation_report",
            {"passed": outcome.gate.passed},
        )
        outcome.gate.raise_if_failed()

        prepared = core.prepare(frame)
        dataset_dir.mkdir(parents=True, exist_ok=True)
        prepared.to_csv(dataset_dir / DATA_FILE, index=False)
        shutil.copyfile(card_path, dataset_dir / "data_card.yaml")
        shutil.copyfile(schema_path, dataset_dir / "schema.pbtxt")
        metadata: dict[str, PropertyValue] = {
            "rows": len(prepared),
            "columns": len(prepared.columns),
            "dropped_duplicates": len(frame) - len(prepared),
            "data_card": str(card["name"]),
        }
        record = stage.wrote(lineage.DATASET, dataset_dir, dataset_uri, "dataset", metadata)
        return {**metadata, "version": lineage.version_of(record.content_sha256)}
