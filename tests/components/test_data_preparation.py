"""Data quality gate with real TFDV against the declared schema."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from aiact import lineage
from aiact.lineage import LineageStore, RunInfo
from aiact.policy import GateFailed
from aiact.refdata import generate_credit_data, write_reference_dataset
from aiact.specs import spec_text
from components.data_preparation import core
from components.data_preparation.executor import run_data_preparation

PROTECTED = ("sex", "age_band")


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
        label="creditworthy",
        protected_attributes=PROTECTED,
    )


def test_clean_data_passes(schema_path: Path, policy: dict) -> None:
    outcome = _gate(generate_credit_data(3000, seed=3), schema_path, policy)
    assert outcome.gate.passed, [c.describe() for c in outcome.gate.breaches]
    assert outcome.evidence["anomalies"] == []


def test_corrupted_data_fails_naming_columns_and_rules(schema_path: Path, policy: dict) -> None:
    outcome = _gate(generate_credit_data(3000, seed=3, corruption=0.2), schema_path, policy)
    breached = {c.name for c in outcome.gate.breaches}
    assert {"anomalies", "duplicate_rate"} <= breached
    anomalous = {a["column"] for a in outcome.evidence["anomalies"]}
    assert {"income", "age", "debt_to_income"} <= anomalous


def test_missing_protected_attribute_fails(schema_path: Path, policy: dict) -> None:
    frame = generate_credit_data(3000, seed=3).drop(columns=["sex"])
    outcome = _gate(frame, schema_path, policy)
    assert "present[sex]" in {c.name for c in outcome.gate.breaches}


def test_unreadable_source_is_a_specific_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(core.DataSourceError, match=r"empty\.csv: cannot be read as a table"):
        core.read_table(empty)
    with pytest.raises(core.DataSourceError, match=r"unsupported format '\.xlsx'"):
        core.read_table(tmp_path / "data.xlsx")


def test_executor_records_failed_gate_evidence(tmp_path: Path, policy: dict, run: RunInfo) -> None:
    data = write_reference_dataset(tmp_path / "src", rows=2000, seed=1, corruption=0.2)
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    with pytest.raises(GateFailed, match="gate 'data_quality' failed: anomalies="):
        run_data_preparation(
            run=run,
            metadata_uri=uri,
            source_uri=str(data.data_path),
            data_card_uri=str(data.data_card_path),
            use_case="credit",
            policy=policy,
            dataset_dir=tmp_path / "out/dataset",
            dataset_uri="out/dataset",
            report_path=tmp_path / "out/report.json",
            report_uri="out/report.json",
            report_html_path=tmp_path / "out/report.html",
        )
    store = LineageStore.connect(uri)
    [execution] = store.executions_of_run(run.run_id)
    assert execution.state == "FAILED" and "anomalies" in str(execution.properties["gate_breaches"])
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
            use_case="credit",
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
    assert len(store.store.get_artifacts_by_type(lineage.DATASET)) == 1


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
            use_case="credit",
            policy=policy,
            dataset_dir=tmp_path / "d",
            dataset_uri="d",
            report_path=tmp_path / "r.json",
            report_uri="r",
            report_html_path=tmp_path / "r.html",
        )
