"""Data preparation executor: fetch the source, run the quality gate, write the versioned
dataset, record everything in MLMD. Knows nothing of KFP."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from aiact import lineage
from aiact.evidence import (
    build_report,
    not_produced,
    page_type,
    write_report,
    write_summary,
)
from aiact.hashing import sha256_bytes, sha256_json, sha256_path
from aiact.lineage import PropertyValue, RunInfo
from aiact.policy import section
from aiact.stage import stage_execution
from aiact.storage import fetch, fetch_tree, store_version
from aiact.usecase import load_use_case, record_of, resolve_policy
from components.data_preparation import core

STAGE = "data_preparation"
DATA_FILE = "data.csv"
REQUIRED_CARD_FIELDS = (
    "name",
    "owner",
    "origin",
    "licence",
    "collection_date",
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


def _card_properties(card: dict[str, Any]) -> dict[str, PropertyValue]:
    """The data card fields recorded on its MLMD artefact."""
    keys = ("name", "version", "owner", "origin", "licence", "collection_date", "intended_use")
    return {key: str(card[key]) for key in keys if card.get(key)}


def run_data_preparation(
    *,
    run: RunInfo,
    metadata_uri: str,
    source_uri: str,
    data_card_uri: str,
    use_case_uri: str,
    policy: dict[str, Any],
    dataset_dir: Path,
    dataset_uri: str,
    report_path: Path,
    report_uri: str,
    report_html_path: Path,
    baseline_dataset_uri: str = "",
    summary_path: Path | None = None,
    halt: bool = True,
    report_html_uri: str = "",
) -> dict[str, PropertyValue]:
    """Run the stage; returns the dataset's metadata (only its verdict on a breach).

    The execution completes either way, recording the report and the verdict (`summary_path`:
    a Markdown summary for the KFP run page); on a breach no dataset is produced. `halt` then
    raises GateFailed after recording (in-process callers); in the pipeline the gate's verdict
    task halts the run instead, so this task still publishes its evidence.

    `baseline_dataset_uri` (a dataset this stage produced before, e.g. the training data of the
    serving model; a path, s3:// or minio://) adds the drift checks; it must have passed this
    gate itself. `use_case_uri` ('' = the bundled credit example) names the use case folder;
    `data_card_uri` ('' = the use case's data_card.yaml) and `policy` ({} = the use case's
    policy.yaml) override its files."""
    with (
        stage_execution(STAGE, run, metadata_uri) as stage,
        tempfile.TemporaryDirectory() as scratch,
    ):
        use_case = load_use_case(use_case_uri, Path(scratch) / "use_case")
        stage.inputs.append(record_of(use_case))
        stage.properties["use_case"] = use_case.name
        policy = resolve_policy(policy, use_case)
        thresholds = section(policy, "data_quality")
        declared = core.declared_of(use_case)
        policy_digest = stage.read_policy(policy)
        source = fetch(source_uri, Path(scratch))
        if not data_card_uri:
            data_card_uri = use_case.file_uri("data_card.yaml")
            card_path = use_case.data_card_path
        else:
            card_path = fetch(data_card_uri, Path(scratch))
        raw = stage.read(lineage.RAW_DATASET, source, source_uri, "source", upstream=False)
        stage.properties["input_version"] = lineage.version_of(raw.content_sha256)
        card = read_data_card(card_path)
        card_record = stage.read(
            lineage.DATA_CARD,
            card_path,
            data_card_uri,
            "data_card",
            upstream=False,
            properties=_card_properties(card),
        )
        baseline = None
        if baseline_dataset_uri:
            baseline_dir = fetch_tree(baseline_dataset_uri, Path(scratch) / "baseline")
            stage.read(lineage.DATASET, baseline_dir, baseline_dataset_uri, "baseline")
            baseline = baseline_dir / DATA_FILE
        if (
            reused := stage.reuse(
                {
                    "source_uri": source_uri,
                    "data_card_uri": data_card_uri,
                    "use_case_uri": use_case_uri,
                    "baseline_dataset_uri": baseline_dataset_uri,
                },
                {
                    "dataset": dataset_dir,
                    "validation_report": report_path,
                    "validation_report_html": report_html_path,
                    "validation_summary": summary_path,
                },
                halt=halt,
            )
        ) is not None:
            return reused
        schema_text = use_case.schema_path.read_text()
        schema_path = Path(scratch) / "schema.pbtxt"
        schema_path.write_text(schema_text)
        source_section: dict[str, Any] = {
            "uri": source_uri,
            **{f"data_card.{k}": v for k, v in _card_properties(card).items()},
            "schema_sha256": sha256_bytes(schema_text.encode()),
            "use_case": use_case.name,
            "use_case_sha256": use_case.sha256,
            "use_case_uri": use_case.uri,
        }
        try:
            # In memory, or on Beam above data_quality.engine.beam_above_bytes (core.Engine).
            gate_run = core.gate_file(
                source,
                schema_path,
                thresholds,
                declared=declared,
                missing_values=use_case.missing_values,
                baseline=baseline,
                source_name=source.name,
            )
            frame = core.frame_of(gate_run, source, schema_path, use_case.missing_values)
        except core.DataSourceError as exc:
            gate = core.source_failure(source.name, exc)
            sections: dict[str, Any] = {"source": source_section}
        else:
            outcome = gate_run.outcome
            gate = outcome.gate
            before = core.statistics_digest(frame)
            stage.record_statistics("before", before)
            sections = {"source": source_section, **outcome.evidence}
            sections["statistics_before"] = before
        report = build_report("Data quality report", gate, sections, policy_sha256=policy_digest)
        write_report(report_path, report_html_path, report)
        stage.wrote(
            lineage.DATA_VALIDATION_REPORT,
            report_path,
            report_uri,
            "validation_report",
            {"passed": gate.passed},
        )
        stage.wrote(
            page_type(lineage.DATA_VALIDATION_REPORT),
            report_html_path,
            report_html_uri or str(report_html_path),
            "validation_report_html",
        )
        stage.record_verdict(gate)
        write_summary(summary_path, report)
        if not gate.passed:
            not_produced(dataset_dir, gate)
            result: dict[str, PropertyValue] = {"verdict": gate.verdict}
        else:
            prepared = core.prepare(frame, declared)
            after = core.statistics_digest(prepared)
            stage.record_statistics("after", after)
            dataset_dir.mkdir(parents=True, exist_ok=True)
            prepared.to_csv(dataset_dir / DATA_FILE, index=False, lineterminator="\n")
            shutil.copyfile(card_path, dataset_dir / "data_card.yaml")
            shutil.copyfile(schema_path, dataset_dir / "schema.pbtxt")
            digest = sha256_path(dataset_dir)
            version = lineage.version_of(digest)
            stored = store_version(dataset_dir, version)
            metadata: dict[str, PropertyValue] = {
                "rows": len(prepared),
                "columns": len(prepared.columns),
                "dropped_duplicates": len(frame) - len(prepared),
                "dropped_columns": ",".join(core.split_undeclared(frame, declared)[1]),
                "use_case": use_case.name,
                "use_case_sha256": use_case.sha256,
                "data_card": str(card["name"]),
                "data_card_sha256": card_record.content_sha256,
                "schema_sha256": str(source_section["schema_sha256"]),
                "source_uri": source_uri,
                "statistics_sha256": sha256_json(after),
            }
            if stored:
                metadata["stored_uri"] = stored
            stage.wrote(
                lineage.DATASET,
                dataset_dir,
                dataset_uri,
                "dataset",
                metadata,
                content_sha256=digest,
            )
            stage.properties["output_version"] = version
            result = {**metadata, "version": version}
    if halt:
        gate.raise_if_failed()
    return result
