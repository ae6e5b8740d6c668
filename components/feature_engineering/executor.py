"""Feature engineering executor: read the validated dataset, run the feature gate, write the
feature set and the fitted transform, record lineage (with statistics digests before and after)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from aiact import lineage
from aiact.evidence import (
    build_report,
    not_produced,
    page_type,
    write_report,
    write_summary,
)
from aiact.featureset import save_feature_set
from aiact.lineage import PropertyValue, RunInfo
from aiact.policy import section
from aiact.stage import stage_execution
from aiact.usecase import load_use_case, record_of, resolve_policy, split_fractions
from components.data_preparation.core import statistics_digest
from components.data_preparation.executor import DATA_FILE
from components.feature_engineering import core

STAGE = "feature_engineering"


def run_feature_engineering(
    *,
    run: RunInfo,
    metadata_uri: str,
    dataset_dir: Path,
    dataset_uri: str,
    use_case_uri: str,
    policy: dict[str, Any],
    seed: int,
    feature_set_dir: Path,
    feature_set_uri: str,
    transform_path: Path,
    transform_uri: str,
    report_path: Path,
    report_uri: str,
    data_verdict_path: Path,
    data_verdict_uri: str,
    report_html_path: Path | None = None,
    summary_path: Path | None = None,
    halt: bool = True,
    report_html_uri: str = "",
) -> dict[str, PropertyValue]:
    """Run the stage; returns the feature set's metadata (only its verdict on a breach).

    `data_verdict_path` is the data gate's verdict (its verdict task's output), which must be
    the passed verdict of this run's data preparation. The execution completes either way,
    recording report and verdict; on a breach no feature set or transform is produced, and
    `halt` raises GateFailed after recording (in the pipeline the verdict task halts).

    The use case (`use_case_uri`, '' = the bundled example) must be the one data preparation
    read in this run; `policy` ({} = the use case's policy.yaml) sets the split fractions."""
    with (
        stage_execution(STAGE, run, metadata_uri) as stage,
        tempfile.TemporaryDirectory() as scratch,
    ):
        use_case = load_use_case(use_case_uri, Path(scratch))
        stage.inputs.append(record_of(use_case))
        stage.properties["use_case"] = use_case.name
        spec = use_case.spec
        policy = resolve_policy(policy, use_case)
        policy_digest = stage.read_policy(policy)
        read = stage.read(lineage.DATASET, dataset_dir, dataset_uri, "dataset")
        stage.properties["input_version"] = lineage.version_of(read.content_sha256)
        verdict = stage.read_verdict("data_preparation", data_verdict_path, data_verdict_uri)
        custody = stage.verify_upstream(
            through="data_preparation",
            dataset=read.content_sha256,
            policy=policy_digest,
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
                {"seed": seed},
                {
                    "feature_set": feature_set_dir,
                    "transform": transform_path,
                    "feature_report": report_path,
                    "feature_report_html": report_html_path,
                    "feature_summary": summary_path,
                },
                halt=halt,
            )
        ) is not None:
            return reused
        frame = pd.read_csv(dataset_dir / DATA_FILE)
        before = statistics_digest(frame)
        stage.record_statistics("before", before)
        gate, transform, splits = core.engineer_features(
            frame, spec, section(policy, "features"), seed, split_fractions(policy)
        )
        sections: dict[str, Any] = {"statistics_before": before}
        if transform is not None:
            after = statistics_digest(
                pd.DataFrame(splits["train"].features, columns=transform.feature_names)
            )
            sections["statistics_after_train"] = after
            sections["split_rows"] = {name: len(s.raw) for name, s in splits.items()}
            stage.record_statistics("after", after)
        report = build_report(
            "Feature specification report", gate, sections, policy_sha256=policy_digest
        )
        write_report(report_path, report_html_path, report)
        stage.wrote(
            lineage.DATA_VALIDATION_REPORT,
            report_path,
            report_uri,
            "feature_report",
            {"passed": gate.passed},
        )
        if report_html_path is not None:
            stage.wrote(
                page_type(lineage.DATA_VALIDATION_REPORT),
                report_html_path,
                report_html_uri or str(report_html_path),
                "feature_report_html",
            )
        stage.record_verdict(gate)
        write_summary(summary_path, report)
        if not gate.passed:
            not_produced(feature_set_dir, gate)
            not_produced(transform_path, gate, directory=False)
            result: dict[str, PropertyValue] = {"verdict": gate.verdict}
        else:
            assert transform is not None
            transform_path.parent.mkdir(parents=True, exist_ok=True)
            transform.save(transform_path)
            save_feature_set(feature_set_dir, splits, transform.feature_names)
            stage.wrote(lineage.FEATURE_TRANSFORM, transform_path, transform_uri, "transform")
            metadata: dict[str, PropertyValue] = {
                "features": len(transform.feature_names),
                "seed": seed,
                "use_case": use_case.name,
                "use_case_sha256": use_case.sha256,
                **{f"rows_{name}": len(s.raw) for name, s in splits.items()},
            }
            record = stage.wrote(
                lineage.FEATURE_SET, feature_set_dir, feature_set_uri, "feature_set", metadata
            )
            version = lineage.version_of(record.content_sha256)
            stage.properties["output_version"] = version
            result = {**metadata, "version": version}
    if halt:
        gate.raise_if_failed()
    return result
