"""`aiact init-use-case` and the generated income example: inference from a clean sample, the
folder it writes (validated by aiact.usecase), and one-line refusals of bad inputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from aiact import cli
from aiact.exampledata import (
    FAVOURABLE,
    ID_COLUMN,
    LABEL_COLUMN,
    MISSING_TOKEN,
    PROTECTED_ATTRIBUTES,
    UNFAVOURABLE,
    UNUSED_COLUMNS,
    generate_income_frame,
    write_income_dataset,
)
from aiact.init_usecase import CARD_TODO_FIELDS, InitOptions, init_use_case, split_list
from aiact.usecase import UseCaseError, load_use_case
from components.data_preparation.bias import INTERSECTION

INIT_ARGS = [
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
]


def _options(data: Path, out: Path, **changes: object) -> InitOptions:
    values: dict[str, object] = {
        "data": data,
        "label": LABEL_COLUMN,
        "favourable": FAVOURABLE,
        "protected": PROTECTED_ATTRIBUTES,
        "out": out,
        "identifiers": (ID_COLUMN,),
        "ignore": UNUSED_COLUMNS,
        "missing": (MISSING_TOKEN,),
        **changes,
    }
    return InitOptions(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def income_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_income_dataset(tmp_path_factory.mktemp("income")).data_path


@pytest.fixture(scope="module")
def drafted(income_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drafted") / "income"
    assert cli.main(["init-use-case", str(income_csv), *INIT_ARGS, "--out", str(out)]) == 0
    return out


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_income_data_has_the_quirks_of_real_public_data() -> None:
    frame = generate_income_frame(1200, seed=0)
    assert 1000 <= len(frame) <= 1333
    assert set(frame[LABEL_COLUMN]) == {f" {FAVOURABLE}", f" {UNFAVOURABLE}"}
    assert frame[ID_COLUMN].is_unique
    assert (frame["workclass"] == f" {MISSING_TOKEN}").any()
    assert (frame["occupation"] == f" {MISSING_TOKEN}").any()
    assert " Private" in set(frame["workclass"])
    race = frame["race"].value_counts(normalize=True)
    assert race.min() < 0.05
    assert set(UNUSED_COLUMNS) <= set(frame.columns)
    assert frame.equals(generate_income_frame(1200, seed=0))
    with pytest.raises(ValueError, match="rows"):
        generate_income_frame(5000)


def test_generate_data_writes_the_income_example(tmp_path: Path) -> None:
    assert cli.main(["generate-data", "--example", "income", "--out", str(tmp_path)]) == 0
    frame = pd.read_csv(tmp_path / "income.csv")
    assert len(frame) == 1200 and LABEL_COLUMN in frame.columns


def test_drafted_use_case_declares_what_the_sample_shows(drafted: Path, tmp_path: Path) -> None:
    use_case = load_use_case(str(drafted), tmp_path)
    assert use_case.label.values == ("<=50K", ">50K") and use_case.label.favourable == ">50K"
    assert use_case.identifiers == (ID_COLUMN,) and use_case.record_key == (ID_COLUMN,)
    assert use_case.missing_values == (MISSING_TOKEN,)
    assert set(use_case.protected_attributes) == set(PROTECTED_ATTRIBUTES)
    assert "Amer-Indian-Eskimo" in use_case.protected_attributes["race"]
    inputs = set(use_case.spec.input_columns)
    assert not inputs & {*UNUSED_COLUMNS, ID_COLUMN, LABEL_COLUMN, *PROTECTED_ATTRIBUTES}
    categorical = {f.name: f.vocabulary for f in use_case.spec.categorical}
    assert categorical["workclass"] == ("Government", "Private", "Self-emp", "Without-pay")
    numeric = {f.name: f for f in use_case.spec.numeric}
    frame = generate_income_frame(1200, seed=0)
    for name, feature in numeric.items():
        low, high = frame[name].min(), frame[name].max()
        assert feature.low <= low and feature.high >= high
        assert feature.high - feature.low <= 1.2 * (high - low) + 2
    assert numeric["capital_gain"].low == 0
    assert numeric["capital_gain"].transform == "log_standardize"
    assert numeric["hours_per_week"].transform == "standardize"
    schema = (drafted / "schema.pbtxt").read_text()
    assert '"Amer-Indian-Eskimo"' in schema and '">50K"' in schema


def test_drafted_policy_fits_the_protected_attributes_and_sample_size(drafted: Path) -> None:
    text = (drafted / "policy.yaml").read_text()
    policy = yaml.safe_load(text)
    assert set(policy["evaluation"]["fairness"]) == set(PROTECTED_ATTRIBUTES)
    quality = policy["data_quality"]
    assert quality["min_rows"] <= 1000
    assert quality["min_group_share"] < 0.04  # race=Amer-Indian-Eskimo is ~4%
    assert set(PROTECTED_ATTRIBUTES) <= set(quality["bias"])
    assert abs(sum(policy["features"]["split_fractions"].values()) - 1) < 1e-9
    assert "race=Amer-Indian-Eskimo" in text  # the lowered limit is explained
    assert f"sex{INTERSECTION}age_group" in quality["bias"]  # named as the bias gate names it


def test_data_card_leaves_the_human_fields_marked_todo(drafted: Path) -> None:
    text = (drafted / "data_card.yaml").read_text()
    card = yaml.safe_load(text)
    for key in CARD_TODO_FIELDS:
        assert card[key] is None
        assert f"{key}:  # TODO" in text
    assert card["protected_attributes"] == list(PROTECTED_ATTRIBUTES)
    assert "data preparation refuses" in text


def test_an_identifier_is_refused_as_a_feature(
    income_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["init-use-case", str(income_csv), *INIT_ARGS, "--out", str(tmp_path / "uc")]
    argv[argv.index("--id") : argv.index("--id") + 2] = []
    err = _one_line_error(capsys, argv)
    assert "income.csv: column person_id" in err and "--id person_id" in err


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--favourable", ">50k", "income.csv: --favourable: '>50k' is not a value of column"),
        ("--label", "salary", "income.csv: --label: column 'salary' is not in the data"),
        ("--protected", "sex,age", "income.csv: --protected: column age is numeric"),
        ("--name", "Income!", "income.csv: --name"),
    ],
)
def test_bad_options_are_one_line_naming_file_and_field(
    income_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    expected: str,
) -> None:
    argv = ["init-use-case", str(income_csv), *INIT_ARGS, "--out", str(tmp_path / "uc")]
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    assert expected in _one_line_error(capsys, argv)
    assert not (tmp_path / "uc").exists()


def test_undeclared_missing_token_gets_a_hint(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "x": [str(i) for i in range(599)] + ["?"],
            "g": ["a", "b"] * 300,
            "y": [0, 1, 1] * 200,
        }
    )
    frame.to_csv(tmp_path / "s.csv", index=False)
    options = InitOptions(tmp_path / "s.csv", "y", "1", ("g",), tmp_path / "uc")
    with pytest.raises(UseCaseError, match=r"s\.csv: column x: numbers, but also \['\?'\]"):
        init_use_case(options)


def test_an_existing_use_case_is_never_overwritten(income_csv: Path, drafted: Path) -> None:
    with pytest.raises(UseCaseError, match=r"usecase\.yaml: already exists"):
        init_use_case(_options(income_csv, drafted))


def test_split_list() -> None:
    assert split_list(" a, b,,c ") == ("a", "b", "c")
