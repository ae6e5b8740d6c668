"""Bad-input matrix: each bad source runs through the data_preparation then feature_engineering
executors (real TFDV, embedded SQLite MLMD in tmp_path). Each must halt at its gate with the
exact rule and column, keep its evidence in MLMD, and leave nothing downstream: the next stage
either never runs or refuses the input because no completed execution produced it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiact import lineage
from aiact.lineage import LineageError, LineageStore, RunInfo
from aiact.policy import GateFailed, GateResult
from aiact.refdata import data_card, generate_credit_data
from aiact.usecase import BUNDLED_USE_CASE, load_use_case
from components.data_preparation import core
from components.data_preparation.executor import DATA_FILE, run_data_preparation
from components.feature_engineering.executor import run_feature_engineering
from components.gate_verdict.executor import run_gate_verdict

Writer = Callable[[pd.DataFrame, Path], None]
CREDIT = load_use_case("", BUNDLED_USE_CASE)


def _csv(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Writer:
    def write(frame: pd.DataFrame, path: Path) -> None:
        change(frame.copy()).to_csv(path, index=False)

    return write


def _raw(content: bytes) -> Writer:
    def write(frame: pd.DataFrame, path: Path) -> None:
        path.write_bytes(content)

    return write


def _set(
    column: str, rows: slice | pd.Index, value: object
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        if isinstance(value, str) and frame[column].dtype != object:
            frame[column] = frame[column].astype(object)
        frame.loc[rows, column] = value
        return frame

    return change


@dataclass(frozen=True)
class Case:
    """One bad input: how to write it, where it must halt, and exactly which checks breach."""

    name: str
    write: Writer
    gate: str
    breaches: frozenset[str]
    detail: str
    baseline: bool = False  # validated as serving data against the training data
    filename: str = DATA_FILE


def _nulls(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.sample(frac=0.3, random_state=0).index, "income"] = np.nan
    return frame


def _leak_into_input(frame: pd.DataFrame) -> pd.DataFrame:
    frame["num_late_payments"] = 1 - frame["creditworthy"]
    return frame


CASES = [
    Case(
        "unreadable_file",
        _raw(b"\x1f\x8b\x08\x00\xff\xfe\x00\x81" * 64),
        "data_quality",
        frozenset({"readable[data.csv]"}),
        "cannot be read as a table",
    ),
    Case(
        "corrupt_parquet",
        _raw(b"PAR1" + b"\x00" * 64),
        "data_quality",
        frozenset({"readable[data.parquet]"}),
        "data.parquet: cannot be read as a table",
        filename="data.parquet",
    ),
    Case(
        "wrong_delimiter",
        lambda frame, path: frame.to_csv(path, index=False, sep=";"),
        "data_quality",
        frozenset({"delimiter[data.csv]"}),
        "separated by semicolon",
    ),
    Case(
        "missing_column",
        _csv(lambda f: f.drop(columns=["income"])),
        "data_quality",
        frozenset({"schema[income]"}),
        "Column dropped",
    ),
    # An undeclared extra column is reported and dropped, not gated (test_data_preparation).
    Case(
        "string_in_numeric_column",
        _csv(_set("income", slice(10, 14), "12k")),
        "data_quality",
        frozenset({"schema[income]"}),
        "Expected data of type: FLOAT but got STRING",
    ),
    Case(
        "thirty_percent_nulls",
        _csv(_nulls),
        "data_quality",
        frozenset({"missing_rate[income]"}),
        "missing_rate[income]=0.3 (limit <= 0.02)",
    ),
    Case(
        "constant_column",
        _csv(lambda f: f.assign(housing="own")),
        "data_quality",
        frozenset({"distinct_values[housing]"}),
        "constant column",
    ),
    Case(
        "out_of_range_values",
        _csv(_set("age", slice(0, 4), 150)),
        "data_quality",
        frozenset({"schema[age]"}),
        "Unexpectedly large value: 150",
    ),
    Case(
        "duplicated_rows",
        _csv(lambda f: pd.concat([f, f.iloc[:100]], ignore_index=True)),
        "data_quality",
        frozenset({"duplicate_rate"}),
        "duplicate_rate=0.03704 (limit <= 0.01)",
    ),
    Case(
        "empty_file",
        _raw(b""),
        "data_quality",
        frozenset({"readable[data.csv]"}),
        "the file is empty",
    ),
    Case(
        "protected_group_absent",
        _csv(lambda f: f[f["sex"] == "male"]),
        "data_quality",
        # The bias examination cannot compare one group with none, and the sex x age_band
        # cells of women are empty: both say so rather than pass.
        frozenset(
            {
                "share[sex=female]",
                "distinct_values[sex]",
                "favourable_rate_ratio[sex]",
                "favourable_rate_difference[sex]",
                "min_group_share[sex×age_band]",
            }
        ),
        "share[sex=female]=0 (limit >= 0.05) BREACH: declared value absent",
    ),
    # A leaked label in a declared model input: the input's own values separate the label.
    Case(
        "label_leakage_column",
        _csv(_leak_into_input),
        "data_quality",
        frozenset({"label_leakage[num_late_payments]"}),
        "num_late_payments alone separates creditworthy with AUC 1.000",
    ),
    Case(
        "schema_drift_train_vs_serving",  # income reported in thousands: in range, wrong unit
        _csv(lambda f: f.assign(income=(f["income"] / 1000).round(2))),
        "data_quality",
        frozenset({"drift[income]"}),
        "Jensen-Shannon divergence",
        baseline=True,
    ),
    # Too few rows per split: test_feature_engineering (min_rows keeps the data gate first).
]


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return generate_credit_data(2600, seed=7)


class Stages:
    """Runs the two executors against one SQLite MLMD store under a temporary directory."""

    def __init__(self, root: Path, policy: dict) -> None:
        self.root, self.policy = root, policy
        self.uri = f"sqlite://{root / 'mlmd.sqlite'}"
        self.card = root / "data_card.yaml"
        self.card.write_text(json.dumps(data_card(2600, seed=7)))

    def prepare(self, run_id: str, source: Path, baseline: Path | None = None) -> Path:
        out = self.root / run_id
        run_data_preparation(
            run=RunInfo(run_id=run_id),
            metadata_uri=self.uri,
            source_uri=str(source),
            data_card_uri=str(self.card),
            use_case_uri="",
            policy=self.policy,
            dataset_dir=out / "dataset",
            dataset_uri=str(out / "dataset"),
            report_path=out / "report.json",
            report_uri=str(out / "report.json"),
            report_html_path=out / "report.html",
            baseline_dataset_uri=str(baseline or ""),
        )
        # As in the pipeline, the gate's verdict task follows the passed gate.
        run_gate_verdict(
            run=RunInfo(run_id=run_id),
            metadata_uri=self.uri,
            gate="data_preparation",
            report_path=out / "report.json",
            report_uri=str(out / "report.json"),
            verdict_path=out / "verdict.json",
            verdict_uri=str(out / "verdict.json"),
        )
        return out / "dataset"

    def engineer(self, run_id: str, dataset: Path) -> None:
        out = self.root / run_id
        run_feature_engineering(
            run=RunInfo(run_id=run_id),
            metadata_uri=self.uri,
            dataset_dir=dataset,
            dataset_uri=str(dataset),
            use_case_uri="",
            policy=self.policy,
            seed=1,
            feature_set_dir=out / "features",
            feature_set_uri=str(out / "features"),
            transform_path=out / "transform.json",
            transform_uri=str(out / "transform.json"),
            report_path=out / "feature_report.json",
            report_uri=str(out / "feature_report.json"),
            data_verdict_path=out / "verdict.json",
            data_verdict_uri=str(out / "verdict.json"),
        )


def test_clean_data_passes_both_stages(tmp_path: Path, policy: dict, clean: pd.DataFrame) -> None:
    """The control: the same harness lets clean data through, so the refusals below are real."""
    stages = Stages(tmp_path, policy)
    clean.to_csv(tmp_path / DATA_FILE, index=False)
    stages.engineer("run", stages.prepare("run", tmp_path / DATA_FILE))
    store = LineageStore.connect(stages.uri)
    assert [(e.stage, e.state) for e in store.executions_of_run("run")] == [
        ("data_preparation", "COMPLETE"),
        ("data_preparation_verdict", "COMPLETE"),
        ("feature_engineering", "COMPLETE"),
    ]
    assert len(store.artifacts_of_run("run", lineage.FEATURE_SET)) == 1


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_halts_at_its_gate(
    case: Case, tmp_path: Path, policy: dict, clean: pd.DataFrame
) -> None:
    stages = Stages(tmp_path, policy)
    baseline = None
    if case.baseline:
        clean.to_csv(tmp_path / "train.csv", index=False)
        baseline = stages.prepare("training", tmp_path / "train.csv")
    source = tmp_path / case.filename
    case.write(clean, source)

    if case.gate == "data_quality":
        with pytest.raises(GateFailed) as failed:
            stages.prepare("run", source, baseline)
        # Downstream, hand-wired to the bad data anyway: refused, nothing produced.
        handwired = tmp_path / "handwired"
        handwired.mkdir()
        shutil.copyfile(source, handwired / DATA_FILE)
        (tmp_path / "run" / "verdict.json").write_text('{"verdict": "passed"}')
        with pytest.raises(LineageError, match="no recorded lineage"):
            stages.engineer("run", handwired)
        stage = "data_preparation"
    else:
        dataset = stages.prepare("run", source)
        with pytest.raises(GateFailed) as failed:
            stages.engineer("run", dataset)
        stage = "feature_engineering"

    result = failed.value.result
    assert result.gate == case.gate
    assert {c.name for c in result.breaches} == case.breaches
    message = str(failed.value)
    assert all(f"{name}=" in message for name in case.breaches) and case.detail in message

    store = LineageStore.connect(stages.uri)
    executions = {e.stage: e for e in store.executions_of_run("run")}
    # The gate's evidence execution completes with the breach as its verdict.
    assert (executions[stage].state, executions[stage].properties["verdict"]) == (
        "COMPLETE",
        "breached",
    )
    assert set(str(executions[stage].properties["gate_breaches"]).split("; ")) == case.breaches
    refused = executions["feature_engineering"]  # refused, or its gate breached
    assert refused.state == "FAILED" or refused.properties["verdict"] == "breached"
    reports = store.artifacts_of_run("run", lineage.DATA_VALIDATION_REPORT)
    assert [lineage.properties_of(r)["passed"] for r in reports][-1] is False
    report_name = "report.json" if stage == "data_preparation" else "feature_report.json"
    evidence = json.loads((tmp_path / "run" / report_name).read_text())
    assert {c["name"] for c in evidence["gate"]["checks"] if not c["passed"]} == case.breaches
    assert store.artifacts_of_run("run", lineage.FEATURE_SET) == []
    assert store.artifacts_of_run("run", lineage.FEATURE_TRANSFORM) == []
    if stage == "data_preparation":  # only the baseline, read as an input, is a dataset
        assert len(store.artifacts_of_run("run", lineage.DATASET)) == int(case.baseline)


# --- the same matrix at the gate, on both of its paths ----------------------------------------

PATHS = {"in-memory": False, "beam": True}


def _gate_file(
    source: Path, policy: dict, beam: bool, baseline: Path | None = None
) -> tuple[bool, frozenset[str], GateResult, dict]:
    """The data gate on a file through one path (DirectRunner in-process for Beam, read tasks
    of 64 KiB so that several batches are tallied and merged)."""
    thresholds = policy["data_quality"]
    engine = core.Engine(beam=beam, chunk_bytes=64 * 1024, sample_rows=1000, leakage_cap=1500)
    declared = core.declared_of(CREDIT)
    try:
        run = core.gate_file(
            source,
            CREDIT.schema_path,
            thresholds,
            declared=declared,
            missing_values=CREDIT.missing_values,
            baseline=baseline,
            engine=engine,
        )
    except core.DataSourceError as exc:
        gate = core.source_failure(source.name, exc)
        return gate.passed, frozenset(c.name for c in gate.breaches), gate, {}
    gate = run.outcome.gate
    assert run.path == ("beam" if beam else "in-memory")
    return gate.passed, frozenset(c.name for c in gate.breaches), gate, run.outcome.evidence


def _baseline(root: Path, clean: pd.DataFrame) -> Path:
    """The clean data as the data gate writes its dataset (label encoded): the drift baseline."""
    path = root / "baseline.csv"
    core.prepare(clean, core.declared_of(CREDIT)).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_breaches_the_same_checks_on_both_paths(
    case: Case, path: str, tmp_path: Path, policy: dict, clean: pd.DataFrame
) -> None:
    """Each bad input breaches exactly its checks, in memory and on Beam (same names)."""
    source = tmp_path / case.filename
    case.write(clean, source)
    baseline = _baseline(tmp_path, clean) if case.baseline else None
    passed, breaches, gate, _ = _gate_file(source, policy, PATHS[path], baseline)
    assert not passed
    assert breaches == case.breaches, [c.describe() for c in gate.breaches]
    assert case.detail in "; ".join(c.describe() for c in gate.breaches)


def test_both_paths_agree_check_by_check(tmp_path: Path, policy: dict, clean: pd.DataFrame) -> None:
    """On the reference data and on bad inputs, every check's value and verdict agree between
    the in-memory and the Beam path (statistics merged from many batches; leakage of the
    many-valued columns on the seeded 1000-row sample on both)."""
    sources = {
        "clean": clean,
        "nulls": _nulls(clean.copy()),
        "leak": _leak_into_input(clean.copy()),
    }
    for name, frame in sources.items():
        source = tmp_path / f"{name}.csv"
        frame.to_csv(source, index=False)
        memory = _gate_file(source, policy, beam=False)
        beam = _gate_file(source, policy, beam=True)
        assert memory[0] == beam[0] and memory[1] == beam[1], name
        values = {c.name: (c.value, c.passed) for c in memory[2].checks}
        assert values == {c.name: (c.value, c.passed) for c in beam[2].checks}, name
        assert memory[3]["engine"]["label_leakage"] == beam[3]["engine"]["label_leakage"]
        assert memory[3]["engine"]["label_leakage"]["sample_rows"] == 1000
    assert memory[3]["columns"] == beam[3]["columns"]
    clean_memory = _gate_file(tmp_path / "clean.csv", policy, beam=False)
    assert clean_memory[0], [c.describe() for c in clean_memory[2].breaches]
