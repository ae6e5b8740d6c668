"""Data quality gate with real TFDV against the declared schema."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from aiact import lineage
from aiact.lineage import LineageStore, RunInfo
from aiact.policy import GateFailed
from aiact.refdata import generate_credit_data, write_reference_dataset
from aiact.specs import spec_text
from aiact.usecase import BUNDLED_USE_CASE, load_use_case
from components.data_preparation import core
from components.data_preparation.executor import run_data_preparation

PROTECTED = ("sex", "age_band")
CREDIT = load_use_case("", BUNDLED_USE_CASE)


@pytest.fixture(scope="module")
def schema_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "schema.pbtxt"
    path.write_text(spec_text("credit", "schema.pbtxt"))
    return path


def _gate(frame: pd.DataFrame, schema_path: Path, policy: dict) -> core.QualityOutcome:
    return core.evaluate_source(
        frame,
        schema_path,
        policy["data_quality"],
        declared=core.declared_of(CREDIT),
    )


def test_clean_data_passes(schema_path: Path, policy: dict) -> None:
    outcome = _gate(generate_credit_data(3000, seed=3), schema_path, policy)
    assert outcome.gate.passed, [c.describe() for c in outcome.gate.breaches]
    assert list(outcome.evidence["anomalies"]) == ["none"]
    names = {c.name for c in outcome.gate.checks}
    assert {"share[sex=female]", "share[creditworthy=0]", "label_leakage[income]"} <= names


def test_corrupted_data_fails_naming_columns_and_rules(schema_path: Path, policy: dict) -> None:
    outcome = _gate(generate_credit_data(3000, seed=3, corruption=0.2), schema_path, policy)
    breached = {c.name for c in outcome.gate.breaches}
    assert {"schema[income]", "schema[age]", "schema[debt_to_income]", "duplicate_rate"} <= breached
    assert {"income", "age", "debt_to_income"} <= set(outcome.evidence["anomalies"])


def test_missing_protected_attribute_fails(schema_path: Path, policy: dict) -> None:
    frame = generate_credit_data(3000, seed=3).drop(columns=["sex"])
    outcome = _gate(frame, schema_path, policy)
    assert "present[sex]" in {c.name for c in outcome.gate.breaches}


def test_unreadable_source_is_a_specific_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(core.DataSourceError, match=r"empty\.csv: cannot be read as a table"):
        core.read_table(empty)
    with pytest.raises(core.DataSourceError, match=r"unsupported format '\.xlsx'") as info:
        core.read_table(tmp_path / "data.xlsx")
    assert info.value.rule == "format"


def test_parquet_and_csv_sources_read_the_same(tmp_path: Path) -> None:
    frame = generate_credit_data(200, seed=3)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    frame.to_csv(tmp_path / "d.csv", index=False)
    parquet, csv = core.read_table(tmp_path / "d.parquet"), core.read_table(tmp_path / "d.csv")
    pd.testing.assert_frame_equal(parquet, csv)


def test_label_association_scores_leak_and_ignores_noise() -> None:
    label = pd.Series([0, 1] * 500)
    assert core.label_association(label.map({0: "no", 1: "yes"}), label) == 1.0
    assert core.label_association(pd.Series(range(1000)), label) == pytest.approx(0.5, abs=0.01)
    assert math.isnan(core.label_association(pd.Series(["x"] * 1000), label))  # constant


def test_executor_records_failed_gate_evidence(tmp_path: Path, policy: dict, run: RunInfo) -> None:
    data = write_reference_dataset(tmp_path / "src", rows=2000, seed=1, corruption=0.2)
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    with pytest.raises(GateFailed, match=r"gate 'data_quality' failed: .*schema\[income\]=false"):
        run_data_preparation(
            run=run,
            metadata_uri=uri,
            source_uri=str(data.data_path),
            data_card_uri=str(data.data_card_path),
            use_case_uri="",
            policy=policy,
            dataset_dir=tmp_path / "out/dataset",
            dataset_uri="out/dataset",
            report_path=tmp_path / "out/report.json",
            report_uri="out/report.json",
            report_html_path=tmp_path / "out/report.html",
        )
    store = LineageStore.connect(uri)
    [execution] = store.executions_of_run(run.run_id)
    # The evidence execution completes, its verdict the breach (the verdict task halts).
    assert (execution.state, execution.properties["verdict"]) == ("COMPLETE", "breached")
    assert "schema[income]" in str(execution.properties["gate_breaches"])
    [report] = store.artifacts_of_run(run.run_id, lineage.DATA_VALIDATION_REPORT)
    assert lineage.properties_of(report)["passed"] is False
    assert store.artifacts_of_run(run.run_id, lineage.DATASET) == []
    assert "BREACH" in (tmp_path / "out/report.html").read_text()


def test_rerun_on_unchanged_input_creates_no_new_version(
    tmp_path: Path, policy: dict, run: RunInfo
) -> None:
    data = write_reference_dataset(tmp_path / "src", rows=2000, seed=1)
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    versions = []
    for attempt in range(2):
        out = tmp_path / f"out{attempt}"
        metadata = run_data_preparation(
            run=RunInfo(run_id=f"run-{attempt}"),
            metadata_uri=uri,
            source_uri=str(data.data_path),
            data_card_uri=str(data.data_card_path),
            use_case_uri="",
            policy=policy,
            dataset_dir=out / "dataset",
            dataset_uri=str(out / "dataset"),
            report_path=out / "report.json",
            report_uri=str(out / "report.json"),
            report_html_path=out / "report.html",
        )
        versions.append(metadata["version"])
    assert versions[0] == versions[1]
    store = LineageStore.connect(uri)
    [dataset] = store.store.get_artifacts_by_type(lineage.DATASET)
    recorded = lineage.properties_of(dataset)
    assert recorded["version"] == versions[0] and recorded["rows"] == 2000
    assert recorded["data_card"] == "credit-applications-reference"
    assert len(str(recorded["schema_sha256"])) == 64
    [execution, _] = store.store.get_executions()
    digest = lineage.properties_of(execution)
    assert digest["input_version"] and digest["output_version"] == versions[0]
    assert digest["statistics_before_sha256"] and digest["statistics_after_sha256"]


def test_data_card_without_required_fields_is_refused(
    tmp_path: Path, policy: dict, run: RunInfo
) -> None:
    data = write_reference_dataset(tmp_path / "src", rows=2000, seed=1)
    data.data_card_path.write_text("name: x\nowner: y\n")
    with pytest.raises(core.DataSourceError, match="lacks required fields: \\['origin'"):
        run_data_preparation(
            run=run,
            metadata_uri="memory:",
            source_uri=str(data.data_path),
            data_card_uri=str(data.data_card_path),
            use_case_uri="",
            policy=policy,
            dataset_dir=tmp_path / "d",
            dataset_uri="d",
            report_path=tmp_path / "r.json",
            report_uri="r",
            report_html_path=tmp_path / "r.html",
        )
