"""Synthetic credit-scoring reference data (AI Act Annex III 5(b)), generated at run time.

Every value is a deterministic function of ``(rows, seed, knobs)``: all random draws are made
up front with fixed sizes, and the knobs only transform them, so the same arguments give a
bitwise-identical frame and changing one knob never reshuffles the rest of the data.

The true label model ignores ``sex`` and no feature depends on it, so clean data is fair by
construction; ``label_bias``, ``drift`` and ``corruption`` inject the historical bias,
covariate shift and data-quality defects that the pipeline's checks must catch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml

from aiact.usecase import bundled_declaration

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]

DATASET_NAME = "credit-applications-reference"
DATASET_VERSION = "1.0.0"
DATA_FILENAME = "credit_applications.csv"
DATA_CARD_FILENAME = "data_card.yaml"

LABEL_COLUMN = "creditworthy"
PROTECTED_ATTRIBUTES = ("sex", "age_band")
COLUMNS = (
    "age",
    "sex",
    "age_band",
    "marital_status",
    "dependents",
    "housing",
    "employment_type",
    "employment_years",
    "income",
    "savings_balance",
    "loan_amount",
    "loan_term_months",
    "loan_purpose",
    "credit_history_months",
    "num_open_accounts",
    "num_late_payments",
    "debt_to_income",
    LABEL_COLUMN,
)

# Vocabularies and protected groups are declared once, in the bundled credit use case.
_DECLARED = bundled_declaration()
SEXES = tuple(_DECLARED.protected_attributes["sex"])
AGE_BANDS = tuple(_DECLARED.protected_attributes["age_band"])
MARITAL_STATUSES = tuple(_DECLARED.categorical["marital_status"].vocabulary)
HOUSING = tuple(_DECLARED.categorical["housing"].vocabulary)
EMPLOYMENT_TYPES = tuple(_DECLARED.categorical["employment_type"].vocabulary)
LOAN_PURPOSES = tuple(_DECLARED.categorical["loan_purpose"].vocabulary)
LOAN_TERMS = (12, 24, 36, 48, 60, 72)

CATEGORIES: dict[str, tuple[str, ...]] = {
    "sex": SEXES,
    "age_band": AGE_BANDS,
    "marital_status": MARITAL_STATUSES,
    "housing": HOUSING,
    "employment_type": EMPLOYMENT_TYPES,
    "loan_purpose": LOAN_PURPOSES,
}
CATEGORICAL_COLUMNS = tuple(c for c in COLUMNS if c in CATEGORIES)
NUMERIC_COLUMNS = tuple(c for c in COLUMNS if c not in CATEGORIES and c != LABEL_COLUMN)
INTEGER_COLUMNS = (
    "age",
    "dependents",
    "employment_years",
    "loan_term_months",
    "credit_history_months",
    "num_open_accounts",
    "num_late_payments",
)
# Inclusive ranges of the numeric columns on clean data (income is also strictly positive).
RANGES: dict[str, tuple[float, float]] = {
    "age": (18, 80),
    "dependents": (0, 6),
    "employment_years": (0, 50),
    "income": (0, 500_000),
    "savings_balance": (0, 1_000_000),
    "loan_amount": (500, 100_000),
    "loan_term_months": (12, 72),
    "credit_history_months": (0, 600),
    "num_open_accounts": (0, 30),
    "num_late_payments": (0, 20),
    "debt_to_income": (0, 1.5),
}

# Defects injected by ``corruption``: which columns get nulls and wrong-typed tokens.
NULL_COLUMNS = (
    "income",
    "housing",
    "employment_years",
    "marital_status",
    "savings_balance",
    "credit_history_months",
)
WRONG_TYPE_COLUMNS = ("income", "age")
WRONG_TYPE_TOKENS = ("n/a", "unknown")

_UNIFORMS = (
    "sex",
    "marital",
    "dependents",
    "employment",
    "employment_years",
    "housing",
    "savings_zero",
    "purpose",
    "term",
    "history",
    "accounts",
    "late",
    "existing_debt",
    "label",
    "label_bias",
)
_NORMALS = ("age", "income", "savings", "loan", "late")
_PURPOSE_MEDIAN_LOAN = np.array([15_000.0, 60_000.0, 12_000.0, 30_000.0, 5_000.0])
# Logistic ground truth: employment effect in EMPLOYMENT_TYPES order.
_EMPLOYMENT_LOGIT = np.array([0.3, 0.0, -1.0, 0.2])
_LOGIT_INTERCEPT = 0.7


@dataclass(frozen=True)
class ReferenceDataset:
    """Paths of a written reference dataset and its data card."""

    data_path: Path
    data_card_path: Path


def _validate(rows: int, seed: int, knobs: dict[str, float]) -> dict[str, float]:
    """The knobs as floats; raise ValueError naming the first invalid argument."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be an integer >= 1, got {rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    for name, value in knobs.items():
        if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return {name: float(value) for name, value in knobs.items()}


def _defects_per_kind(rows: int, corruption: float) -> int:
    """Rows given each of the four defect kinds (nulls, wrong types, out-of-range, duplicates)."""
    if corruption == 0.0:
        return 0
    return max(1, math.floor(corruption * rows / 4))


def _choose(u: FloatArray, probs: FloatArray) -> IntArray:
    """Inverse-CDF categorical draw: row i picks an index from the row probabilities probs[i]."""
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    idx: IntArray = (u[:, None] > cdf).sum(axis=1, dtype=np.int64)
    return np.minimum(idx, probs.shape[1] - 1)


def _poisson(u: FloatArray, lam: FloatArray, kmax: int) -> IntArray:
    """Inverse-CDF Poisson draw truncated at kmax (a fixed number of uniforms per row)."""
    pmf = np.exp(-lam)
    cdf = pmf.copy()
    count = np.zeros(u.shape, dtype=np.int64)
    for k in range(1, kmax + 1):
        count += u > cdf
        pmf = pmf * lam / k
        cdf = cdf + pmf
    return count


def _age_band(age: IntArray) -> ObjArray:
    """Map ages to AGE_BANDS."""
    idx = np.searchsorted(np.array([25, 40, 60]), age, side="left")
    return np.array(AGE_BANDS, dtype=object)[idx]


def _clean_frame(
    rng: np.random.Generator, n: int, label_bias: float, drift: float, female_share: float
) -> dict[str, np.ndarray[Any, Any]]:
    """Draw the clean columns (with label bias and drift applied) as numpy arrays."""
    u = {name: rng.random(n) for name in _UNIFORMS}
    z = {name: rng.standard_normal(n) for name in _NORMALS}

    sex = np.where(u["sex"] < female_share, "female", "male").astype(object)
    age_share = 1 / (1 + np.exp(0.8 - 1.2 * z["age"] - 0.5 * drift))
    age = np.minimum(np.floor(18 + 62 * age_share), 80).astype(np.int64)
    young, mid, old = age <= 25, (age > 25) & (age <= 60), age > 60

    marital_probs = np.select(
        [young[:, None], (age <= 40)[:, None], mid[:, None]],
        [[0.85, 0.13, 0.02, 0.0], [0.40, 0.50, 0.09, 0.01], [0.20, 0.60, 0.16, 0.04]],
        [0.10, 0.55, 0.15, 0.20],
    )
    marital = _choose(u["marital"], marital_probs)
    dependents_lam = np.where(marital == 1, 1.6, 0.5) * np.where(old, 0.3, 1.0)
    dependents = _poisson(u["dependents"], dependents_lam, 6)

    employment_probs = np.select(
        [(age >= 65)[:, None], (age >= 60)[:, None], (age >= 45)[:, None]],
        [[0.10, 0.05, 0.0, 0.85], [0.50, 0.12, 0.08, 0.30], [0.72, 0.15, 0.10, 0.03]],
        [0.74, 0.16, 0.10, 0.0],
    )
    employment = _choose(u["employment"], employment_probs)
    max_years = np.minimum(age - 16, 50)
    years_share = np.where(
        employment == 3, 0.5 + 0.5 * u["employment_years"], u["employment_years"]
    )
    employment_years = np.where(employment == 2, 0, np.floor(max_years * years_share))

    log_income = (
        np.log(34_000)
        + 0.35 * (1 - ((age - 50) / 32) ** 2)
        + np.array([0.0, 0.05, -1.2, -0.4])[employment]
        + np.where(employment == 1, 0.7, 0.45) * z["income"]
    )
    income = np.clip(np.exp(log_income) * (1 - 0.4 * drift), 1_200, 500_000).round(2)

    # Housing tenure is a proxy for sex (as tenure and similar attributes are in real credit
    # files) but never enters the true label: a model only learns the proxy when the labels carry
    # historical bias against women, which is what the fairness gate must then catch.
    p_own = np.clip(0.05 + 0.013 * (age - 18), 0.0, 0.8) * np.where(sex == "female", 0.35, 1.6)
    p_own = np.clip(p_own, 0.0, 0.9)
    p_free = np.where(young, 0.08, 0.04)
    housing = _choose(u["housing"], np.stack([p_own, 1 - p_own - p_free, p_free], axis=1))

    savings = income * np.exp(-1.2 + 0.02 * (age - 40) + z["savings"])
    savings_zero = u["savings_zero"] < np.where(employment == 2, 0.5, 0.15)
    savings = np.where(savings_zero, 0.0, np.clip(savings, 0, 1_000_000)).round(2)

    purpose_probs = np.where(
        (employment == 1)[:, None], [0.25, 0.10, 0.05, 0.35, 0.25], [0.30, 0.15, 0.10, 0.10, 0.35]
    )
    purpose = _choose(u["purpose"], purpose_probs)
    loan = _PURPOSE_MEDIAN_LOAN[purpose] * (income / 35_000) ** 0.3 * np.exp(0.6 * z["loan"])
    loan = np.clip(loan, 500, 100_000).round(2)
    term_pos = np.log(loan / 500) / np.log(200) * 6 + 2 * (u["term"] - 0.5)
    term = np.array(LOAN_TERMS)[np.clip(np.floor(term_pos), 0, 5).astype(np.int64)]

    history = np.floor(np.minimum((age - 18) * 12, 600) * u["history"] ** 0.7)
    accounts_lam = 1 + history / 48 + 0.5 * (income > 50_000)
    accounts = _poisson(u["accounts"], accounts_lam, 30)
    late_lam = 0.5 * np.exp(0.8 * z["late"] - 0.01 * (age - 40)) * (1 + 1.5 * drift)
    late = np.minimum(np.floor(-np.log1p(-u["late"]) * late_lam), 20)

    annual_payment = loan * (1 + 0.06 * term / 12) / (term / 12)
    existing_debt = 0.35 * u["existing_debt"] ** 1.5 + 0.15 * drift
    dti = np.clip(existing_debt + annual_payment / income, 0, 1.5).round(4)

    logit = (
        _LOGIT_INTERCEPT
        + 0.9 * np.log(income / 30_000)
        - 2.5 * dti
        - 0.45 * late
        + 0.35 * np.log1p(history / 12)
        + _EMPLOYMENT_LOGIT[employment]
        + 0.25 * np.log1p(savings / 1_000)
        - 1.0 * loan / income
    )
    label = u["label"] < 1 / (1 + np.exp(-logit))
    label &= ~((sex == "female") & (u["label_bias"] < label_bias))

    def names(values: tuple[str, ...], idx: IntArray) -> ObjArray:
        return np.array(values, dtype=object)[idx]

    return {
        "age": age,
        "sex": sex,
        "age_band": _age_band(age),
        "marital_status": names(MARITAL_STATUSES, marital),
        "dependents": dependents,
        "housing": names(HOUSING, housing),
        "employment_type": names(EMPLOYMENT_TYPES, employment),
        "employment_years": employment_years.astype(np.int64),
        "income": income,
        "savings_balance": savings,
        "loan_amount": loan,
        "loan_term_months": term.astype(np.int64),
        "loan_purpose": names(LOAN_PURPOSES, purpose),
        "credit_history_months": history.astype(np.int64),
        "num_open_accounts": accounts,
        "num_late_payments": late.astype(np.int64),
        "debt_to_income": dti,
        LABEL_COLUMN: label.astype(np.int64),
    }


def _corrupt(
    rng: np.random.Generator, data: dict[str, np.ndarray[Any, Any]], per_kind: int
) -> pd.DataFrame:
    """Put out-of-range values, wrong types and nulls on disjoint rows; append duplicates."""
    n = len(data[LABEL_COLUMN])
    order = rng.permutation(n)
    out_of_range, wrong_type, nulls = (order[i * per_kind : (i + 1) * per_kind] for i in range(3))
    duplicates = rng.choice(n, size=min(per_kind, n), replace=False)

    for i, row in enumerate(out_of_range):
        kind = i % 3
        if kind == 0:
            data["income"][row] = -data["income"][row]
        elif kind == 1:
            data["age"][row] = 150
        else:
            data["debt_to_income"][row] = 9.9
    for i, row in enumerate(wrong_type):
        column = WRONG_TYPE_COLUMNS[i % len(WRONG_TYPE_COLUMNS)]
        if data[column].dtype != object:
            data[column] = data[column].astype(object)
        data[column][row] = WRONG_TYPE_TOKENS[(i // len(WRONG_TYPE_COLUMNS)) % 2]
    for i, row in enumerate(nulls):
        column = NULL_COLUMNS[i % len(NULL_COLUMNS)]
        if data[column].dtype == np.int64:
            data[column] = data[column].astype(np.float64)
        data[column][row] = None if column in CATEGORIES else np.nan

    frame = pd.DataFrame(data, columns=list(COLUMNS))
    return pd.concat([frame, frame.iloc[duplicates]], ignore_index=True)


def generate_credit_data(
    rows: int,
    seed: int = 0,
    *,
    label_bias: float = 0.0,
    drift: float = 0.0,
    corruption: float = 0.0,
    female_share: float = 0.5,
) -> pd.DataFrame:
    """Generate a synthetic credit-application frame with columns COLUMNS.

    Same arguments give an identical frame. The index is a RangeIndex; with ``corruption > 0``
    the frame has more than ``rows`` rows because duplicate rows are appended at the end.
    ``label_bias``: probability that a favourable label of a female applicant is flipped to 0.
    ``drift``: covariate shift (lower income, higher debt-to-income, older, more late payments).
    ``corruption``: fraction of rows given data-quality defects, split evenly among nulls,
    wrong-typed tokens, out-of-range values and appended duplicates.
    """
    knobs = _validate(
        rows,
        seed,
        {
            "label_bias": label_bias,
            "drift": drift,
            "corruption": corruption,
            "female_share": female_share,
        },
    )
    base_rng, defect_rng = np.random.default_rng(seed).spawn(2)
    data = _clean_frame(base_rng, rows, knobs["label_bias"], knobs["drift"], knobs["female_share"])
    per_kind = _defects_per_kind(rows, knobs["corruption"])
    if per_kind == 0:
        return pd.DataFrame(data, columns=list(COLUMNS))
    return _corrupt(defect_rng, data, per_kind)


def data_card(
    rows: int = 5000,
    seed: int = 0,
    *,
    label_bias: float = 0.0,
    drift: float = 0.0,
    corruption: float = 0.0,
    female_share: float = 0.5,
) -> dict[str, Any]:
    """Art. 10 data card of the frame generate_credit_data(...) yields with these arguments."""
    knobs = _validate(
        rows,
        seed,
        {
            "label_bias": label_bias,
            "drift": drift,
            "corruption": corruption,
            "female_share": female_share,
        },
    )
    limitations = [
        "Synthetic: relationships are a simplified model of consumer credit, not observed data.",
        "No feature depends on sex and the true label ignores it, so clean data holds no proxy "
        "discrimination; real data usually does.",
        "Labels are drawn from a known logistic model; real repayment outcomes are noisier "
        "and subject to selection bias (rejected applicants have no outcome).",
    ]
    if knobs["label_bias"] > 0:
        limitations.append(
            "Historical bias injected: favourable labels of female applicants flipped to 0 "
            f"with probability {knobs['label_bias']}."
        )
    if knobs["drift"] > 0:
        limitations.append(f"Covariate drift injected with strength {knobs['drift']}.")
    if knobs["corruption"] > 0:
        limitations.append(
            f"Data-quality defects injected in a fraction {knobs['corruption']} of rows "
            "(nulls, wrong types, out-of-range values, duplicate rows)."
        )
    columns: list[dict[str, Any]] = []
    for name in COLUMNS[:-1]:
        if name in CATEGORIES:
            columns.append({"name": name, "type": "categorical", "values": list(CATEGORIES[name])})
        else:
            low, high = RANGES[name]
            kind = "int" if name in INTEGER_COLUMNS else "float"
            columns.append({"name": name, "type": kind, "min": low, "max": high})
    return {
        "name": DATASET_NAME,
        "version": DATASET_VERSION,
        "description": (
            "Synthetic consumer-credit applications with a binary repayment label, used as the "
            "reference data of the aiact compliance pipeline."
        ),
        "owner": "aiact-pipelines maintainers",
        "origin": "synthetic, generated by aiact.refdata",
        "licence": "CC0-1.0",
        "collection_date": "2026-01-01",
        "use_case": "creditworthiness assessment of natural persons (AI Act Annex III 5(b))",
        "intended_use": (
            "Reference and test data for exercising data validation, fairness, drift and "
            "documentation checks of the pipeline."
        ),
        "out_of_scope_use": [
            "Training or calibrating models that make decisions about real people.",
            "Drawing conclusions about real populations or lending markets.",
        ],
        "label": {
            "column": LABEL_COLUMN,
            "meaning": "1 = loan repaid (favourable outcome), 0 = default",
            "favourable_value": 1,
        },
        "protected_attributes": list(PROTECTED_ATTRIBUTES),
        "columns": columns,
        "row_count": rows + _defects_per_kind(rows, knobs["corruption"]),
        "generator": {
            "module": "aiact.refdata",
            "function": "generate_credit_data",
            "parameters": {"rows": rows, "seed": seed, **knobs},
        },
        "known_limitations": limitations,
    }


def write_reference_dataset(
    out_dir: Path, rows: int = 5000, seed: int = 0, **knobs: float
) -> ReferenceDataset:
    """Write DATA_FILENAME and DATA_CARD_FILENAME under out_dir; same arguments, same bytes."""
    frame = generate_credit_data(rows, seed, **knobs)
    card = data_card(rows, seed, **knobs)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = out_dir / DATA_FILENAME
    card_path = out_dir / DATA_CARD_FILENAME
    frame.to_csv(data_path, index=False, lineterminator="\n")
    card_path.write_text(yaml.safe_dump(card, sort_keys=False), encoding="utf-8")
    return ReferenceDataset(data_path=data_path, data_card_path=card_path)
