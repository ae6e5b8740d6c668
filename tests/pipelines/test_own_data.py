"""Users run the suite on their own data and policy without editing the package: the generated
income example, `aiact init-use-case`, a filled data card, then `aiact run-local --source
--use-case`; two use cases in one store; bad inputs refused in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import cli, lineage
from aiact.custody import GATE_REPORTS
from aiact.exampledata import (
    FAVOURABLE,
    ID_COLUMN,
    LABEL_COLUMN,
    MISSING_TOKEN,
    PROTECTED_ATTRIBUTES,
    UNUSED_COLUMNS,
    write_income_dataset,
)
from aiact.hashing import sha256_path
from aiact.init_usecase import CARD_TODO_FIELDS, fill_todo
from aiact.lineage import connection_config
from pipelines.local_run import LocalRunConfig, LocalRunResult, run_local

STAGES = (
    "data_preparation",
    "feature_engineering",
    "training",
    "evaluation",
    "registration",
    "integration_testing",
    "approval",
    "deployment",
)
# The stages that read the use case folder (and record it as their `use_case` input).
USE_CASE_READERS = ("data_preparation", "feature_engineering", "evaluation", "integration_testing")
CARD_VALUES = {
    "owner": "aiact test suite",
    "origin": "synthetic, aiact.exampledata",
    "licence": "CC0-1.0",
    "collection_date": "2026-01-01",
    "intended_use": "exercising the pipeline on a use case of its user's own",
    "description": "one generated person per row",
    "known_limitations": ["generated, not observed"],
}


def _init(data: Path, out: Path) -> Path:
    argv = [
        "init-use-case",
        str(data),
        "--label",
        LABEL_COLUMN,
        "--favourable",
        FAVOURABLE,
        "--protected",
        ",".join(PROTECTED_ATTRIBUTES),
        "--id",
        ID_COLUMN,
        "--ignore",
        ",".join(UNUSED_COLUMNS),
        "--missing",
        MISSING_TOKEN,
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    card_path = out / "data_card.yaml"
    card = yaml.safe_load(card_path.read_text())
    assert all(card[key] is None for key in CARD_TODO_FIELDS)
    card_path.write_text(yaml.safe_dump(fill_todo(card, CARD_VALUES), sort_keys=False))
    return out


@pytest.fixture(scope="module")
def income(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The generated income data and its use case (data card filled in)."""
    root = tmp_path_factory.mktemp("own")
    data = write_income_dataset(root / "data").data_path
    return data, _init(data, root / "income")


@pytest.fixture(scope="module")
def two_use_cases(
    income: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[LocalRunConfig, LocalRunResult, LocalRunResult]:
    """The bundled credit use case, then the income one, in ONE workdir (one store)."""
    workdir = tmp_path_factory.mktemp("shared")
    credit = run_local(LocalRunConfig(workdir=workdir, demo_approver="dana", rows=2000))
    data, use_case = income
    config = LocalRunConfig(
        workdir=workdir, demo_approver="dana", source_uri=str(data), use_case_uri=str(use_case)
    )
    return config, credit, run_local(config)


def _store(config: LocalRunConfig) -> metadata_store.MetadataStore:
    return metadata_store.MetadataStore(connection_config(config.metadata_uri))


def _stages(config: LocalRunConfig, run_id: str) -> dict[str, lineage.ExecutionRecord]:
    store = lineage.LineageStore.connect(config.metadata_uri)
    return {e.stage: e for e in store.executions_of_run(run_id)}


def _inputs(store: metadata_store.MetadataStore, execution_id: int) -> dict[str, mlmd_pb.Artifact]:
    events = store.get_events_by_execution_ids([execution_id])
    roles = {e.artifact_id: e.path.steps[0].key for e in events if e.type == mlmd_pb.Event.INPUT}
    return {roles[a.id]: a for a in store.get_artifacts_by_id(list(roles))}


def _output(store: metadata_store.MetadataStore, execution_id: int, role: str) -> mlmd_pb.Artifact:
    events = store.get_events_by_execution_ids([execution_id])
    [artifact_id] = [
        e.artifact_id
        for e in events
        if e.type == mlmd_pb.Event.OUTPUT and e.path.steps[0].key == role
    ]
    [artifact] = store.get_artifacts_by_id([artifact_id])
    return artifact


@pytest.mark.slow
def test_own_data_runs_all_eight_stages_and_records_the_use_case(
    income: tuple[Path, Path],
    two_use_cases: tuple[LocalRunConfig, LocalRunResult, LocalRunResult],
) -> None:
    config, _, result = two_use_cases
    assert result.succeeded, result.error
    stages = _stages(config, result.run_id)
    verdicts = [f"{gate}_verdict" for gate in GATE_REPORTS]
    assert {stage: e.state for stage, e in stages.items()} == dict.fromkeys(
        (*STAGES, *verdicts), "COMPLETE"
    )
    store = _store(config)
    folder_sha256 = sha256_path(income[1])
    for stage in USE_CASE_READERS:
        use_case = _inputs(store, stages[stage].id)["use_case"]
        assert store.get_artifact_types_by_id([use_case.type_id])[0].name == "aiact.UseCase"
        assert use_case.name == folder_sha256
        assert lineage.properties_of(use_case)["name"] == "income"
    # The two columns left out were reported in the data gate's evidence and dropped.
    dataset = _output(store, stages["data_preparation"].id, "dataset")
    assert lineage.properties_of(dataset)["dropped_columns"] == ",".join(UNUSED_COLUMNS)
    prepared = pd.read_csv(Path(dataset.uri) / "data.csv")
    assert not set(UNUSED_COLUMNS) & set(prepared.columns)
    assert ID_COLUMN in prepared.columns
    report = _output(store, stages["data_preparation"].id, "validation_report")
    text = Path(report.uri).read_text()
    assert all(column in text for column in UNUSED_COLUMNS)
    model = _inputs(store, stages["deployment"].id)["model"]
    assert lineage.properties_of(model)["model_name"] == "income-classifier"


@pytest.mark.slow
def test_two_use_cases_in_one_store_compare_only_with_their_own_production_model(
    two_use_cases: tuple[LocalRunConfig, LocalRunResult, LocalRunResult],
) -> None:
    config, credit, income_run = two_use_cases
    assert credit.succeeded, credit.error
    assert income_run.succeeded, income_run.error
    store = _store(config)
    production = {
        lineage.properties_of(a)["model_name"]
        for a in store.get_artifacts_by_type(lineage.MODEL)
        if lineage.properties_of(a).get("stage") == "production"
    }
    assert production == {"credit-scoring", "income-classifier"}
    evaluation = _stages(config, income_run.run_id)["evaluation"]
    inputs = _inputs(store, evaluation.id)
    assert "production_model" not in inputs and "production_reference" not in inputs
    report = Path(_output(store, evaluation.id, "evaluation_report").uri).read_text()
    assert "no production model income-classifier of use case income" in report
    assert "credit-scoring (credit)" in report  # named, and not compared with


def _copy(use_case: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(use_case, tmp_path / "use_case"))


def _run_local_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *extra: str, source: Path
) -> tuple[int, str]:
    code = cli.main(
        [
            "run-local",
            "--workdir",
            str(tmp_path / "work"),
            "--demo-approver",
            "dana",
            "--source",
            str(source),
            *extra,
        ]
    )
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in err + captured.out, err
    return code, err


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: {**d, "colour": "red"}, "usecase.yaml: colour: Extra inputs are not permitted"),
        (
            lambda d: {**d, "label": {**d["label"], "favourable": "rich"}},
            "usecase.yaml: label.favourable: 'rich' is not one of label.values",
        ),
    ],
    ids=["unknown-field", "favourable-not-a-value"],
)
def test_a_malformed_declaration_is_one_line(
    income: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: object,
    expected: str,
) -> None:
    folder = _copy(income[1], tmp_path)
    path = folder / "usecase.yaml"
    path.write_text(yaml.safe_dump(edit(yaml.safe_load(path.read_text()))))  # type: ignore[operator]
    code, err = _run_local_error(capsys, tmp_path, "--use-case", str(folder), source=income[0])
    assert code == 2 and err.count("\n") == 0 and expected in err, err
    assert not (tmp_path / "work" / "pipeline_root").exists()  # refused before any stage


def test_a_policy_naming_an_unknown_protected_attribute_is_one_line(
    income: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = yaml.safe_load((income[1] / "policy.yaml").read_text())
    policy["evaluation"]["fairness"]["religion"] = policy["evaluation"]["fairness"]["sex"]
    override = tmp_path / "strict_policy.yaml"
    override.write_text(yaml.safe_dump(policy))
    code, err = _run_local_error(
        capsys, tmp_path, "--use-case", str(income[1]), "--policy", str(override), source=income[0]
    )
    assert code == 2 and err.count("\n") == 0, err
    assert (
        "strict_policy.yaml: evaluation.fairness.religion: not a protected attribute of use "
        "case income" in err
    )
    # The same policy inside the use case folder: named as its policy.yaml.
    folder = _copy(income[1], tmp_path)
    (folder / "policy.yaml").write_text(yaml.safe_dump(policy))
    code, err = _run_local_error(capsys, tmp_path, "--use-case", str(folder), source=income[0])
    assert code == 2 and "policy.yaml: evaluation.fairness.religion" in err, err


@pytest.mark.slow
def test_a_label_value_outside_the_declared_ones_halts_the_data_gate(
    income: tuple[Path, Path], tmp_path: Path
) -> None:
    frame = pd.read_csv(income[0], dtype=str, keep_default_na=False)
    frame.loc[[3, 17], LABEL_COLUMN] = " >50K."  # a second spelling, as in the census test file
    source = tmp_path / "income_test.csv"
    frame.to_csv(source, index=False)
    config = LocalRunConfig(
        workdir=tmp_path / "work",
        demo_approver="dana",
        source_uri=str(source),
        use_case_uri=str(income[1]),
    )
    result = run_local(config)
    # A halted gate is a halted run (`aiact run-local` exits 1 with the stage's one-line
    # reason, naming the file and the column), not a refused input.
    assert not result.succeeded
    stages = _stages(config, result.run_id)
    # The gate's evidence completed with the breach; its verdict task halted the run.
    assert {stage: e.state for stage, e in stages.items()} == {
        "data_preparation": "COMPLETE",
        "data_preparation_verdict": "FAILED",
    }
    assert stages["data_preparation"].properties["verdict"] == "breached"
    error = str(stages["data_preparation_verdict"].properties.get("error", ""))
    assert "\n" not in error
    assert (
        "income_test.csv: column income: values ['>50K.'] are not among the declared label "
        "values" in error
    ), error


@pytest.mark.slow
def test_an_unfilled_data_card_halts_data_preparation(
    income: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = _copy(income[1], tmp_path)
    card = yaml.safe_load((folder / "data_card.yaml").read_text())
    (folder / "data_card.yaml").write_text(yaml.safe_dump({**card, "owner": None}))
    config = LocalRunConfig(
        workdir=tmp_path / "work", source_uri=str(income[0]), use_case_uri=str(folder)
    )
    result = run_local(config)
    assert not result.succeeded
    stages = _stages(config, result.run_id)
    assert {stage: e.state for stage, e in stages.items()} == {"data_preparation": "FAILED"}
    assert "data_card.yaml lacks required fields: ['owner']" in str(
        stages["data_preparation"].properties.get("error", "")
    )
