"""Feature engineering executor: read the validated dataset, run the feature gate, write the
feature set and the fitted transform, record lineage (with statistics digests before and after)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from aiact import lineage
from aiact.evidence import build_report, write_report
from aiact.featureset import save_feature_set
from aiact.lineage import PropertyValue, RunInfo
from aiact.policy import section
from aiact.specs import load_feature_spec
from aiact.stage import stage_execution
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
    use_case: str,
    policy: dict[str, Any],
    seed: int,
    feature_set_dir: Path,
    feature_set_uri: str,
    transform_path: Path,
    transform_uri: str,
    report_path: Path,
    report_uri: str,
    report_html_path: Path | None = None,
) -> dict[str, PropertyValue]:
    """Run the stage; returns the feature set's metadata. Raises GateFailed on a breach."""
    spec = load_feature_spec(use_case)
    with stage_execution(STAGE, run, metadata_uri) as stage:
        policy_digest = stage.read_policy(policy)
        read = stage.read(lineage.DATASET, dataset_dir, dataset_uri, "dataset")
        stage.properties["input_version"] = lineage.version_of(read.content_sha256)
        stage.verify_upstream(
            through="data_preparation", dataset=read.content_sha256, policy=policy_digest
        )
        frame = pd.read_csv(dataset_dir / DATA_FILE)
        before = statistics_digest(frame)
        stage.record_statistics("before", before)
        gate, transform, splits = core.engineer_features(
            frame, spec, section(policy, "features"), seed
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
        gate.raise_if_failed()
        assert transform is not None
        transform_path.parent.mkdir(parents=True, exist_ok=True)
        transform.save(transform_path)
        save_feature_set(feature_set_dir, splits, transform.feature_names)
        stage.wrote(lineage.FEATURE_TRANSFORM, transform_path, transform_uri, "transform")
        metadata: dict[str, PropertyValue] = {
            "features": len(transform.feature_names),
            "seed": seed,
            **{f"rows_{name}": len(s.raw) for name, s in splits.items()},
        }
        record = stage.wrote(
            lineage.FEATURE_SET, feature_set_dir, feature_set_uri, "feature_set", metadata
        )
        version = lineage.version_of(record.content_sha256)
        stage.properties["output_version"] = version
        return {**metadata, "version": version}
