"""A use case is a versioned folder: validated with errors naming file and field, hashed,
recorded in MLMD, and its declaration (label, favourable value, record key, identifiers,
undeclared columns) drives the data gate."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aiact import lineage
from aiact.lineage import LineageStore, RunInfo, properties_of
from aiact.policy import check_floor, load_policy
from aiact.usecase import (
    BUNDLED_USE_CASE,
    UseCaseError,
    feature_spec,
    load_use_case,
    parse_declaration,
    split_fractions,
    validate_policy,
)
from components.data_preparation import core
from components.data_preparation.executor import run_data_preparation


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "credit"
    shutil.copytree(BUNDLED_USE_CASE, target)
    return target


def _edit(folder: Path, name: str, change: object) -> None:
    path = folder / name
    document = yaml.safe_load(path.read_text())
    change(document)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_bundled_use_case_loads_and_is_the_default_policy(tmp_path: Path) -> None:
    use_case = load_use_case("", tmp_path)
    assert (use_case.name, use_case.model_name) == ("credit", "credit-scoring")
    assert use_case.protected_attributes["sex"] == ("female", "male")
    assert use_case.policy == load_policy()
    copy = _copy(tmp_path)
    assert load_use_case(str(copy), tmp_path).sha256 == use_case.sha256
    (copy / "data_card.yaml").write_text((copy / "data_card.yaml").read_text() + "# edited\n")
    assert load_use_case(f"file://{copy}", tmp_path).sha256 != use_case.sha256


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        (
            "usecase.yaml",
            lambda d: d.update(colour="blue"),
            "usecase.yaml: colour: Extra inputs are not permitted",
        ),
        (
            "usecase.yaml",
            lambda d: d["label"].update(favourable="yes"),
            "usecase.yaml: label.favourable: 'yes' is not one of label.values",
        ),
        (
            "usecase.yaml",
            lambda d: d["numeric"]["age"].update(transform="cube"),
            "usecase.yaml: numeric.age.transform: Input should be 'standardize' or",
        ),
        (
            "usecase.yaml",
            lambda d: d.update(name="Credit Scoring"),
            "usecase.yaml: name: String should match pattern",
        ),
        (
            "usecase.yaml",
            lambda d: d.update(record_key=["applicant"]),
            "usecase.yaml: record_key: 'applicant' is not a declared column",
        ),
        (
            "usecase.yaml",
            lambda d: d["categorical"]["housing"].update(vocabulary=["own", "rent"]),
            "schema.pbtxt: feature housing: schema vocabulary ['own', 'rent', 'free'] differs",
        ),
        (
            "policy.yaml",
            lambda d: d["evaluation"]["fairness"].update(race=d["evaluation"]["fairness"]["sex"]),
            "policy.yaml: evaluation.fairness.race: not a protected attribute of use case credit",
        ),
        (
            "policy.yaml",
            lambda d: d["evaluation"]["fairness"].pop("age_band"),
            "policy.yaml: evaluation.fairness.age_band: no fairness limits",
        ),
        (
            "policy.yaml",
            lambda d: d["data_quality"]["bias"].update({"sex×race": {"min_group_rows": 5}}),
            "policy.yaml: data_quality.bias.sex×race: not a protected attribute",
        ),
        (
            "policy.yaml",
            lambda d: d["features"].update(split_fractions={"train": 0.9, "test": 0.1}),
            "policy.yaml: features.split_fractions: must map exactly train, validation, test",
        ),
    ],
)
def test_a_malformed_use_case_is_one_line_naming_file_and_field(
    tmp_path: Path, name: str, change: object, message: str
) -> None:
    folder = _copy(tmp_path)
    _edit(folder, name, change)
    with pytest.raises(UseCaseError) as error:
        load_use_case(str(folder), tmp_path)
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file_and_bad_yaml_are_named(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "policy.yaml").unlink()
    with pytest.raises(UseCaseError, match=r"^policy.yaml: missing from use case"):
        load_use_case(str(folder), tmp_path)
    shutil.copyfile(BUNDLED_USE_CASE / "policy.yaml", folder / "policy.yaml")
    (folder / "usecase.yaml").write_text("name: [unclosed\n")
    with pytest.raises(UseCaseError, match=r"^usecase.yaml: not valid YAML \(line 2\)"):
        load_use_case(str(folder), tmp_path)
    with pytest.raises(UseCaseError, match="does not exist"):
        load_use_case(str(tmp_path / "nowhere"), tmp_path)


def test_split_fractions_must_sum_to_one() -> None:
    policy = {
        "version": 1,
        "features": {"split_fractions": {"train": 0.8, "validation": 0.15, "test": 0.15}},
    }
    with pytest.raises(UseCaseError, match=r"sum to 1\.1, not 1"):
        split_fractions(policy)
    assert split_fractions({"version": 1}) == {"train": 0.7, "validation": 0.15, "test": 0.15}


def test_fairness_default_covers_undeclared_limits_and_the_floor_binds_it(tmp_path: Path) -> None:
    use_case = load_use_case("", tmp_path)
    policy = load_policy()
    fairness = policy["evaluation"]["fairness"]
    fairness["default"] = fairness.pop("age_band")
    validate_policy(policy, use_case)  # age_band falls under default
    floor = {"evaluation": {"fairness": {"age_band": {"max_equalized_odds_difference": 0.4}}}}
    assert check_floor(policy, floor) == [
        "evaluation.fairness.default.max_equalized_odds_difference is 0.5, looser than the "
        "platform floor 0.4"
    ]
    # A floor for an attribute the use case does not declare does not bind it ...
    assert check_floor(policy, {"evaluation": {"fairness": {"race": {"min_x": 1}}}}) == [
        "evaluation.fairness.default.min_x is missing, but the platform floor requires 1"
    ]
    fairness.pop("default")
    fairness["age_band"] = dict(fairness["sex"])
    assert check_floor(policy, {"evaluation": {"fairness": {"race": {"min_x": 1}}}}) == []
    # ... and a floor `default` binds every attribute the policy names.
    loose = {"max_equalized_odds_difference": 0.12}
    floor = {"evaluation": {"fairness": {"default": loose}}}
    assert len(check_floor(policy, floor)) == 2


# -- a use case unlike the credit one ---------------------------------------------------------

GROUPS = {"gender": ["female", "male"], "race": ["a", "b", "c"], "age_group": ["young", "old"]}


def _foreign_frame(rows: int = 1200, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hours = rng.integers(10, 60, rows)
    job = rng.choice(["clerk", "craft", "sales"], rows)
    score = (hours - 35) / 10 + (job == "craft") + rng.normal(0, 1, rows)
    return pd.DataFrame(
        {
            "person_id": np.arange(rows),
            "hours": hours,
            "job": job,
            "gender": rng.choice(GROUPS["gender"], rows),
            "race": rng.choice(GROUPS["race"], rows, p=[0.6, 0.3, 0.1]),
            "age_group": rng.choice(GROUPS["age_group"], rows),
            "outcome": np.where(score > 0, "good", "bad"),
            "notes": rng.choice(["x", "y"], rows),
            "constant": 1,
        }
    )


def _foreign_use_case(root: Path, frame: pd.DataFrame) -> Path:
    from components.data_preparation.schema import draft_schema

    folder = root / "jobs"
    folder.mkdir()
    declaration = {
        "version": 1,
        "name": "jobs",
        "model_name": "jobs-model",
        "label": {"column": "outcome", "values": ["good", "bad"], "favourable": "good"},
        "record_key": ["person_id"],
        "identifiers": ["person_id"],
        "missing_values": ["?"],
        "protected_attributes": GROUPS,
        "numeric": {"hours": {"range": [0, 100], "transform": "standardize"}},
        "categorical": {"job": {"vocabulary": ["clerk", "craft", "sales"]}},
    }
    (folder / "usecase.yaml").write_text(yaml.safe_dump(declaration, sort_keys=False))
    policy = load_policy()
    policy["evaluation"]["fairness"] = {"default": policy["evaluation"]["fairness"]["age_band"]}
    # The bias examination's limits for this data's own attributes (the credit policy's name
    # age_band and sex×age_band, which this use case does not declare).
    policy["data_quality"]["bias"] = {
        "min_favourable_rate_ratio": 0.7,
        "max_favourable_rate_difference": 0.2,
        "min_intersection_share": 0.02,
        "min_group_rows": 30,
    }
    (folder / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    card = yaml.safe_load((BUNDLED_USE_CASE / "data_card.yaml").read_text())
    card.update(name="jobs", protected_attributes=list(GROUPS))
    (folder / "data_card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    spec = feature_spec(parse_declaration(declaration))
    vocabularies = {"job": ("clerk", "craft", "sales"), **{k: tuple(v) for k, v in GROUPS.items()}}
    columns = ["hours", "job", *GROUPS, "outcome"]
    schema = draft_schema(frame[columns], spec, vocabularies, ("good", "bad"))
    import tensorflow_data_validation as tfdv

    tfdv.write_schema_text(schema, str(folder / "schema.pbtxt"))
    return folder


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("foreign")
    frame = _foreign_frame()
    return _foreign_use_case(root, frame), frame


def _quirky(frame: pd.DataFrame, path: Path) -> Path:
    """The quirks of public data: padded categories, `?` for missing values."""
    text = frame.assign(job=" " + frame["job"], notes=frame["notes"] + "  ")
    text.loc[:3, "hours"] = "?"
    text.to_csv(path, index=False)
    return path


def test_foreign_use_case_passes_the_data_gate_with_its_declarations(
    foreign: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    folder, frame = foreign
    use_case = load_use_case(str(folder), tmp_path)
    declared = core.declared_of(use_case)
    read = core.read_table(_quirky(frame, tmp_path / "jobs.csv"), use_case.missing_values)
    assert read["hours"].isna().sum() == 4 and set(read["job"]) == {"clerk", "craft", "sales"}
    outcome = core.evaluate_source(
        read, use_case.schema_path, use_case.policy["data_quality"], declared=declared
    )
    assert outcome.gate.passed, [c.describe() for c in outcome.gate.breaches]
    names = {c.name for c in outcome.gate.checks}
    # Undeclared columns (a constant one among them) and the identifier are not gated.
    assert not any("constant" in n or "notes" in n or "person_id" in n for n in names)
    assert outcome.evidence["undeclared_columns"]["dropped"] == ["notes", "constant"]
    assert {"share[race=c]", "label_values[outcome]", "share[outcome=good]"} <= names
    prepared = core.prepare(read, declared)
    assert list(prepared.columns) == ["person_id", "hours", "job", *GROUPS, "outcome"]
    assert prepared["outcome"].tolist() == (frame["outcome"] == "good").astype(int).tolist()


def test_label_outside_the_declared_values_breaches_naming_file_and_column(
    foreign: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    folder, frame = foreign
    use_case = load_use_case(str(folder), tmp_path)
    bad = frame.copy()
    bad.loc[:20, "outcome"] = "unknown"
    outcome = core.evaluate_source(
        bad,
        use_case.schema_path,
        use_case.policy["data_quality"],
        declared=core.declared_of(use_case),
        source="jobs.csv",
    )
    [check] = [c for c in outcome.gate.breaches if c.name == "label_values[outcome]"]
    assert check.detail == (
        "jobs.csv: column outcome: values ['unknown'] are not among the declared label values "
        "['good', 'bad']"
    )


def test_duplicates_are_counted_by_the_record_key(
    foreign: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    folder, frame = foreign
    use_case = load_use_case(str(folder), tmp_path)
    declared = core.declared_of(use_case)
    thresholds = use_case.policy["data_quality"]
    # Different people with identical attributes are not duplicates ...
    twins = frame.copy()
    twins.loc[: len(frame) // 2, ["hours", "job", *GROUPS, "outcome"]] = frame.loc[
        0, ["hours", "job", *GROUPS, "outcome"]
    ].to_numpy()
    kept, _ = core.split_undeclared(twins, declared)
    gate = core.check_quality(kept, [], thresholds, declared=declared)
    assert next(c for c in gate.checks if c.name == "duplicate_rate").value == 0.0
    # ... one person recorded twice is.
    repeated = pd.concat([frame, frame.iloc[:60]], ignore_index=True)
    kept, _ = core.split_undeclared(repeated, declared)
    gate = core.check_quality(kept, [], thresholds, declared=declared)
    assert "duplicate_rate" in {c.name for c in gate.breaches}
    assert len(core.prepare(repeated, declared)) == len(frame)


def test_executor_records_the_use_case_in_mlmd(
    foreign: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    folder, frame = foreign
    source = _quirky(frame, tmp_path / "jobs.csv")
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    run = RunInfo(run_id="jobs-run")
    metadata = run_data_preparation(
        run=run,
        metadata_uri=uri,
        source_uri=str(source),
        data_card_uri="",
        use_case_uri=str(folder),
        policy={},
        dataset_dir=tmp_path / "out/dataset",
        dataset_uri=str(tmp_path / "out/dataset"),
        report_path=tmp_path / "out/report.json",
        report_uri=str(tmp_path / "out/report.json"),
        report_html_path=tmp_path / "out/report.html",
    )
    use_case = load_use_case(str(folder), tmp_path)
    assert metadata["use_case_sha256"] == use_case.sha256
    assert metadata["dropped_columns"] == "notes,constant"
    store = LineageStore.connect(uri)
    [recorded] = store.artifacts_of_run(run.run_id, lineage.USE_CASE)
    assert recorded.name == use_case.sha256
    assert properties_of(recorded)["name"] == "jobs"
    [card] = store.artifacts_of_run(run.run_id, lineage.DATA_CARD)
    assert card.uri == f"{folder}/data_card.yaml"
    prepared = pd.read_csv(tmp_path / "out/dataset/data.csv")
    assert set(prepared["outcome"]) == {0, 1}


def test_a_policy_naming_an_undeclared_attribute_fails_the_stage(
    foreign: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    folder, frame = foreign
    with pytest.raises(UseCaseError, match=r"evaluation\.fairness\.sex: not a protected attribute"):
        run_data_preparation(
            run=RunInfo(run_id="jobs-bad-policy"),
            metadata_uri=f"sqlite://{tmp_path / 'mlmd.sqlite'}",
            source_uri=str(_quirky(frame, tmp_path / "jobs.csv")),
            data_card_uri="",
            use_case_uri=str(folder),
            policy=load_policy(),  # the credit policy names sex and age_band
            dataset_dir=tmp_path / "out/dataset",
            dataset_uri=str(tmp_path / "out/dataset"),
            report_path=tmp_path / "out/report.json",
            report_uri=str(tmp_path / "out/report.json"),
            report_html_path=tmp_path / "out/report.html",
        )


def test_the_published_json_schema_is_the_loaders_own() -> None:
    """aiact/usecases/usecase.schema.json is generated from the pydantic model the loader
    validates with; regenerate it when the model changes."""
    import json
    from pathlib import Path

    from aiact.usecase import USE_CASE_JSON_SCHEMA

    published = Path(__file__).resolve().parents[2] / "aiact" / "usecases" / "usecase.schema.json"
    assert json.loads(published.read_text()) == USE_CASE_JSON_SCHEMA
