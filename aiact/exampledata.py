"""A generated example dataset with the quirks of real public census-income data.

`write_income_dataset` writes a table in the spirit of the well-known "adult" census extract
(its rows are generated here; no third-party data is copied): a schema unlike the credit
reference data, a text label (``>50K`` / ``<=50K``), three protected attributes (``sex``,
``race``, ``age_group``), an identifier column, two columns no model should use (``fnlwgt``,
a survey sampling weight, and ``survey_wave``), ``?`` for missing values in two categorical
columns, categories padded with a leading space (`` Private``, as the original file writes
them), and one protected group (``race = Amer-Indian-Eskimo``) under 5% of the rows.

The label depends on education, occupation, hours worked, marital status, capital gain and
work class, never on a protected attribute, and no feature depends on one: clean data is fair
by construction, so a small MLP learns it (holdout ROC AUC ~0.85) and passes gates drafted by
``aiact init-use-case``. Every value is a deterministic function of ``(rows, seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

DATA_FILENAME = "income.csv"
DATA_CARD_FILENAME = "data_card.yaml"
LABEL_COLUMN = "income"
FAVOURABLE = ">50K"
UNFAVOURABLE = "<=50K"
ID_COLUMN = "person_id"
PROTECTED_ATTRIBUTES = ("sex", "race", "age_group")
UNUSED_COLUMNS = ("fnlwgt", "survey_wave")
MISSING_TOKEN = "?"
MIN_ROWS, MAX_ROWS = 1000, 1333

# value -> (share, effect on the label's log-odds)
WORKCLASS = {
    "Private": (0.70, 0.0),
    "Self-emp": (0.12, 0.4),
    "Government": (0.15, 0.2),
    "Without-pay": (0.03, -1.5),
}
EDUCATION = {  # value -> (share, years of education)
    "HS-grad": (0.32, 9),
    "Some-college": (0.23, 10),
    "Assoc": (0.08, 12),
    "Bachelors": (0.22, 13),
    "Masters": (0.10, 14),
    "Doctorate": (0.05, 16),
}
MARITAL_STATUS = {
    "Married": (0.47, 1.1),
    "Never-married": (0.32, -0.9),
    "Divorced": (0.14, -0.4),
    "Widowed": (0.07, -0.5),
}
OCCUPATION = {
    "Prof-specialty": (0.18, 0.8),
    "Exec-managerial": (0.16, 1.0),
    "Craft-repair": (0.16, 0.0),
    "Adm-clerical": (0.15, -0.3),
    "Sales": (0.14, 0.1),
    "Other-service": (0.12, -1.2),
    "Machine-op": (0.09, -0.5),
}
SEX = {"Male": 0.66, "Female": 0.34}
RACE = {"White": 0.78, "Black": 0.11, "Asian-Pac-Islander": 0.075, "Amer-Indian-Eskimo": 0.035}
AGE_GROUPS = (("17-29", 17, 29), ("30-44", 30, 44), ("45-64", 45, 64), ("65+", 65, 90))
AGE_GROUP_SHARES = (0.28, 0.36, 0.29, 0.07)
SURVEY_WAVES = ("1994-Q1", "1994-Q2", "1994-Q3", "1994-Q4")
# Share of rows whose work class or occupation is written as "?" (each column on its own).
MISSING_RATE = 0.012


@dataclass(frozen=True)
class IncomeDataset:
    """Where the generated income data and its (draft) data card were written."""

    data_path: Path
    data_card_path: Path
    rows: int


def _draw(rng: np.random.Generator, table: dict[str, float], rows: int) -> np.ndarray:
    names = list(table)
    shares = np.array([table[n] for n in names], dtype=float)
    return np.asarray(rng.choice(names, size=rows, p=shares / shares.sum()), dtype=object)


def generate_income_frame(rows: int = 1200, seed: int = 0) -> pd.DataFrame:
    """The income table as written to CSV (padding spaces and ``?`` tokens included).

    Args:
        rows: Number of rows, from 1,000 to 1,333.
        seed: Seed of every random draw.

    Returns:
        The frame, one row per person, the label in column ``income``.

    Raises:
        ValueError: `rows` outside 1,000-1,333.
    """
    if not MIN_ROWS <= rows <= MAX_ROWS:
        raise ValueError(f"rows: {rows} is outside {MIN_ROWS}-{MAX_ROWS}")
    rng = np.random.default_rng(seed)
    band = rng.choice(len(AGE_GROUPS), size=rows, p=AGE_GROUP_SHARES)
    low = np.array([AGE_GROUPS[b][1] for b in band])
    high = np.array([AGE_GROUPS[b][2] for b in band])
    age = rng.integers(low, high + 1)
    workclass = _draw(rng, {k: v[0] for k, v in WORKCLASS.items()}, rows)
    education = _draw(rng, {k: v[0] for k, v in EDUCATION.items()}, rows)
    marital = _draw(rng, {k: v[0] for k, v in MARITAL_STATUS.items()}, rows)
    occupation = _draw(rng, {k: v[0] for k, v in OCCUPATION.items()}, rows)
    years = np.array([EDUCATION[e][1] for e in education])
    hours = np.clip(np.round(rng.normal(40, 11, rows)), 1, 99).astype(int)
    has_gain = rng.random(rows) < 0.09
    gain = np.where(has_gain, np.round(np.exp(rng.normal(8.3, 0.9, rows))), 0.0)
    gain = np.clip(gain, 0, 99999).astype(int)
    logit = (
        -1.3
        + 0.65 * (years - 10.5)
        + 0.05 * (hours - 40)
        + np.array([MARITAL_STATUS[m][1] for m in marital])
        + np.array([OCCUPATION[o][1] for o in occupation])
        + np.array([WORKCLASS[w][1] for w in workclass])
        + 2.2 * has_gain
    )
    favourable = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    sex = _draw(rng, SEX, rows)
    race = _draw(rng, RACE, rows)
    fnlwgt = rng.integers(20_000, 800_000, rows)
    wave = np.asarray(rng.choice(SURVEY_WAVES, size=rows), dtype=object)
    # Missing values only where they do not decide the label: drawn after the label.
    missing = max(1, round(MISSING_RATE * rows))
    for column in (workclass, occupation):
        column[rng.choice(rows, size=missing, replace=False)] = MISSING_TOKEN

    def padded(values: np.ndarray) -> list[str]:
        return [f" {v}" for v in values]

    return pd.DataFrame(
        {
            ID_COLUMN: [f"P{seed:02d}{i:06d}" for i in range(rows)],
            "age": age,
            "workclass": padded(workclass),
            "fnlwgt": fnlwgt,
            "education": padded(education),
            "education_years": years,
            "marital_status": padded(marital),
            "occupation": padded(occupation),
            "race": padded(race),
            "sex": padded(sex),
            "age_group": padded(np.array([AGE_GROUPS[b][0] for b in band], dtype=object)),
            "capital_gain": gain,
            "hours_per_week": hours,
            "survey_wave": wave,
            LABEL_COLUMN: padded(np.where(favourable, FAVOURABLE, UNFAVOURABLE)),
        }
    )


def _data_card(rows: int, seed: int) -> dict[str, object]:
    return {
        "name": "census-income-example",
        "version": "1.0.0",
        "description": "Generated census-style income records (rows made by "
        "aiact.exampledata, in the format of public census extracts).",
        "origin": f"synthetic, aiact.exampledata.write_income_dataset(rows={rows}, seed={seed})",
        "rows": rows,
        "label": {"column": LABEL_COLUMN, "favourable_value": FAVOURABLE},
        "protected_attributes": list(PROTECTED_ATTRIBUTES),
        "unused_columns": list(UNUSED_COLUMNS),
    }


def write_income_dataset(out_dir: Path, rows: int = 1200, seed: int = 0) -> IncomeDataset:
    """Write ``income.csv`` and a short description of it (``data_card.yaml``) to `out_dir`.

    The card written here only describes the generator; ``aiact init-use-case`` writes the
    use case's own data card, to be filled in.

    Args:
        out_dir: Folder to write to (created).
        rows: Number of rows, from 1,000 to 1,333.
        seed: Seed of every random draw.

    Returns:
        The paths written and the row count.
    """
    frame = generate_income_frame(rows, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = out_dir / DATA_FILENAME
    frame.to_csv(data_path, index=False, lineterminator="\n")
    card_path = out_dir / DATA_CARD_FILENAME
    card_path.write_text(yaml.safe_dump(_data_card(rows, seed), sort_keys=False))
    return IncomeDataset(data_path=data_path, data_card_path=card_path, rows=rows)
