"""Draft a use case folder (aiact/usecases/FORMAT.md) from a clean sample of a user's data.

`init_use_case` reads the sample as the data gate will read it (missing tokens, padding spaces
stripped), then infers:

- numeric features: their range, widened by ``RANGE_MARGIN`` of the observed span on each side
  (never below 0 for a column without negative values), and a transform (``log_standardize``
  for a non-negative, strongly right-skewed column, else ``standardize``);
- categorical features: their vocabulary (every observed value, padding removed);
- the label's declared values and the favourable one, typed as in the data;
- each protected attribute's groups;
- ``schema.pbtxt``: TFDV's ``infer_schema`` constrained to these ranges and vocabularies;
- ``policy.yaml``: the bundled credit policy's structure, with fairness and bias limits for
  exactly the declared protected attributes and size, split and noise-aware limits for the
  sample's size (every limit that differs from the credit policy is explained in its header);
- ``data_card.yaml``: what the sample shows, and the fields only a person can fill in left
  empty and marked ``TODO`` (data preparation refuses the card until they are filled).

Columns not named as label, protected attribute, identifier, passthrough or ignored become
features: numeric or categorical by dtype and cardinality. A column unique in every row is
refused as a feature (an identifier: pass ``--id``). Every refusal is a UseCaseError naming the
file and the field (the command-line option or the column).
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from aiact.specs import CategoricalFeature, FeatureSpec, NumericFeature
from aiact.usecase import (
    BUNDLED_USE_CASE,
    DATA_CARD,
    DECLARATION,
    FILES,
    POLICY,
    SCHEMA,
    UseCase,
    UseCaseError,
    load_use_case,
)

# How the data gate's bias examination names the intersection of two protected attributes
# (components.data_preparation.bias.INTERSECTION).
INTERSECTION = "×"
# Numeric ranges: the observed [min, max] widened by this share of the span on each side.
RANGE_MARGIN = 0.10
# A non-negative numeric column this skewed is log-transformed (log1p) before standardising.
LOG_SKEWNESS = 2.0
# A text column with more distinct values than this is no categorical feature.
MAX_CATEGORIES = 50
# A label column with more distinct values than this is no class label.
MAX_LABEL_VALUES = 10
# Noise-aware limits: this many standard errors of a measured difference at the sample's size.
NOISE_SE = 3.0
# Samples smaller than this get a 60/20/20 split (a larger test split for the fairness figures).
SMALL_SAMPLE_ROWS = 2000
MIN_SPLIT_ROWS = 100
FAIRNESS_MIN_GROUP_SIZE = 30
BIAS_MIN_GROUP_ROWS = 30
# The credit policy's limits, the starting point of every drafted limit.
DEFAULT_FAIRNESS = {
    "max_demographic_parity_difference": 0.10,
    "min_demographic_parity_ratio": 0.80,
    "max_equalized_odds_difference": 0.15,
}
DEFAULT_BIAS = {"min_favourable_rate_ratio": 0.90, "max_favourable_rate_difference": 0.07}
TODO = "TODO"
# Data card fields only a person can fill in (data preparation requires the first five).
CARD_TODO_FIELDS = {
    "owner": "who answers for this data (team or person)",
    "origin": "where the data comes from (system, survey, vendor) and how it was collected",
    "licence": "the licence or legal basis under which it may be used",
    "collection_date": "when it was collected (YYYY-MM-DD or a period)",
    "intended_use": "what the model trained on it decides, and for whom",
    "description": "what one row is",
    "known_limitations": "sampling bias, label quality, populations missing",
}


@dataclass(frozen=True)
class InitOptions:
    """What `aiact init-use-case` was asked (the command-line options)."""

    data: Path
    label: str
    favourable: str
    protected: tuple[str, ...]
    out: Path
    name: str = ""
    identifiers: tuple[str, ...] = ()
    passthrough: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class InitResult:
    """The written, validated use case and what was inferred on the way."""

    use_case: UseCase
    directory: Path
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    ignored: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


def split_list(value: str) -> tuple[str, ...]:
    """``a,b , c`` -> ``("a", "b", "c")`` (empty items dropped)."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _fail(options: InitOptions, where: str, message: str) -> UseCaseError:
    return UseCaseError(f"{options.data.name}: {where}: {message}")


def _read(options: InitOptions) -> pd.DataFrame:
    from components.data_preparation.core import DataSourceError, read_table

    if not options.data.is_file():
        raise UseCaseError(f"{options.data}: no such file")
    try:
        frame = read_table(options.data, options.missing)
    except DataSourceError as exc:
        raise UseCaseError(str(exc)) from None
    if frame.columns.duplicated().any():
        repeated = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise UseCaseError(f"{options.data.name}: header: columns repeat: {repeated}")
    return frame


def _check_roles(options: InitOptions, frame: pd.DataFrame) -> None:
    roles: dict[str, str] = {}
    named = [
        ("--label", (options.label,)),
        ("--protected", options.protected),
        ("--id", options.identifiers),
        ("--passthrough", options.passthrough),
        ("--ignore", options.ignore),
    ]
    columns = list(frame.columns)
    if not options.protected:
        raise _fail(options, "--protected", "name at least one protected attribute column")
    for option, names in named:
        for column in names:
            if column not in columns:
                raise _fail(
                    options, option, f"column {column!r} is not in the data (columns: {columns})"
                )
            if column in roles:
                raise _fail(options, option, f"column {column!r} is already {roles[column]}")
            roles[column] = option


def _is_text(values: pd.Series) -> bool:
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


def _integral(values: pd.Series) -> bool:
    present = values.dropna()
    return pd.api.types.is_integer_dtype(values) or (
        pd.api.types.is_float_dtype(values) and bool((present == present.round()).all())
    )


def _label(options: InitOptions, frame: pd.DataFrame) -> tuple[list[Any], Any, float]:
    """The label's declared values, the favourable one, and the favourable share."""
    values = frame[options.label].dropna()
    where = f"column {options.label}"
    if values.empty:
        raise _fail(options, "--label", f"{where} holds no value")
    if pd.api.types.is_bool_dtype(values):
        declared: list[Any] = sorted({bool(v) for v in values})
        parse: Any = {"true": True, "false": False}.get
    elif pd.api.types.is_numeric_dtype(values):
        if not _integral(values):
            raise _fail(options, "--label", f"{where} holds fractional numbers: not a class label")
        declared = sorted({int(v) for v in values})

        def parse(text: str) -> int | None:
            try:
                return int(text)
            except ValueError:
                return None

    else:
        declared = sorted({str(v) for v in values})
        parse = str
    if len(declared) < 2:
        raise _fail(options, "--label", f"{where} holds one value {declared}: nothing to learn")
    if len(declared) > MAX_LABEL_VALUES:
        raise _fail(
            options,
            "--label",
            f"{where} holds {len(declared)} distinct values (> {MAX_LABEL_VALUES}): not a "
            "class label",
        )
    wanted = options.favourable.strip()
    favourable = parse(wanted.lower() if isinstance(declared[0], bool) else wanted)
    if favourable not in declared:
        raise _fail(
            options,
            "--favourable",
            f"{options.favourable!r} is not a value of column {options.label} (values: {declared})",
        )
    share = float(_favourable_mask(frame, options)[frame[options.label].notna()].mean())
    return declared, favourable, share


def _groups(options: InitOptions, frame: pd.DataFrame, column: str) -> list[str]:
    values = frame[column].dropna()
    if not _is_text(frame[column]):
        raise _fail(
            options,
            "--protected",
            f"column {column} is numeric; a protected attribute is a set of groups: bin it "
            "into labelled groups (e.g. age -> age_group) and name that column",
        )
    groups = sorted({str(v) for v in values})
    if len(groups) < 2:
        raise _fail(options, "--protected", f"column {column} holds fewer than two groups")
    if len(groups) > MAX_CATEGORIES:
        raise _fail(
            options,
            "--protected",
            f"column {column} holds {len(groups)} groups (> {MAX_CATEGORIES}): group them",
        )
    return groups


def _id_like(values: pd.Series) -> bool:
    present = values.dropna()
    if len(present) < 2 or present.nunique() != len(values):
        return False
    if _is_text(values):
        return True
    if pd.api.types.is_integer_dtype(values):
        span = int(present.max()) - int(present.min()) + 1
        return present.is_monotonic_increasing or span <= 2 * len(present)
    return False


def _numeric_feature(
    options: InitOptions, column: str, values: pd.Series
) -> tuple[dict[str, Any], bool]:
    """The declaration of a numeric feature and whether it is integral."""
    present = values.dropna().astype(float)
    low, high = float(present.min()), float(present.max())
    span = high - low
    lower, upper = low - RANGE_MARGIN * span, high + RANGE_MARGIN * span
    if low >= 0:
        lower = max(lower, 0.0)
    integral = _integral(values)
    if integral:
        bounds: list[float] = [math.floor(lower), math.ceil(upper)]
    else:
        digits = max(0, 3 - math.floor(math.log10(max(abs(upper), abs(lower), 1e-9))))
        bounds = [
            math.floor(lower * 10**digits) / 10**digits,
            math.ceil(upper * 10**digits) / 10**digits,
        ]
    skew = float(present.skew()) if len(present) > 2 else 0.0
    transform = "log_standardize" if low >= 0 and skew > LOG_SKEWNESS else "standardize"
    return {"range": bounds, "transform": transform}, integral


def _features(
    options: InitOptions, frame: pd.DataFrame
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], set[str]]:
    """Numeric and categorical feature declarations of every column not otherwise named."""
    named = {
        options.label,
        *options.protected,
        *options.identifiers,
        *options.passthrough,
        *options.ignore,
    }
    numeric: dict[str, dict[str, Any]] = {}
    categorical: dict[str, dict[str, Any]] = {}
    integral: set[str] = set()
    hint = "pass --ignore {c} to leave it out (or --passthrough {c} to keep it unused)"
    for column in (str(c) for c in frame.columns):
        if column in named:
            continue
        values = frame[column]
        present = values.dropna()
        where = f"column {column}"
        if present.empty:
            raise _fail(options, where, f"holds no value; {hint.format(c=column)}")
        if _is_text(values):
            numbers = pd.to_numeric(present.astype(str), errors="coerce")
            if numbers.notna().mean() >= 0.9:
                odd = sorted(set(present.astype(str)[numbers.isna()]))[:3]
                raise _fail(
                    options,
                    where,
                    f"numbers, but also {odd}: pass --missing {','.join(odd)} if they mark "
                    "missing values",
                )
        if _id_like(values):
            raise _fail(
                options,
                where,
                f"unique in every row, an identifier, not a feature: pass --id {column} (or "
                f"--ignore {column})",
            )
        if present.nunique() == 1:
            raise _fail(
                options,
                where,
                f"constant ({present.iloc[0]!r}) carries no information; {hint.format(c=column)}",
            )
        if pd.api.types.is_bool_dtype(values) or _is_text(values):
            text = present.astype(str)
            vocabulary = sorted(set(text))
            if len(vocabulary) > MAX_CATEGORIES:
                raise _fail(
                    options,
                    where,
                    f"{len(vocabulary)} distinct values (> {MAX_CATEGORIES}): too many for a "
                    f"categorical feature; {hint.format(c=column)}",
                )
            categorical[column] = {"vocabulary": vocabulary}
        elif pd.api.types.is_numeric_dtype(values):
            numeric[column], is_int = _numeric_feature(options, column, values)
            if is_int:
                integral.add(column)
        else:
            raise _fail(options, where, f"unsupported type {values.dtype}; {hint.format(c=column)}")
    if not numeric and not categorical:
        raise _fail(options, "columns", "no column is left as a model input")
    return numeric, categorical, integral


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:40]


def _ceil(value: float, step: float) -> float:
    return round(math.ceil(value / step - 1e-9) * step, 6)


def _floor(value: float, step: float) -> float:
    return round(math.floor(value / step + 1e-9) * step, 6)


def _split_fractions(rows: int) -> dict[str, float]:
    if rows < SMALL_SAMPLE_ROWS:
        return {"train": 0.6, "validation": 0.2, "test": 0.2}
    return {"train": 0.7, "validation": 0.15, "test": 0.15}


def _difference_se(p: float, small: float, large: float) -> float:
    return math.sqrt(max(p * (1 - p), 1e-6) * (1 / small + 1 / large))


def _rate_limits(
    p: float, sizes: Sequence[float], min_size: float, default_diff: float, default_ratio: float
) -> tuple[float, float, str]:
    """Difference and ratio limits for favourable/selection rates of groups of `sizes` rows:
    the default, or NOISE_SE standard errors of the difference between the smallest and the
    largest group (of at least `min_size` rows) when that is wider."""
    usable = sorted(s for s in sizes if s >= min_size)
    if len(usable) < 2:
        return default_diff, default_ratio, ""
    se = _difference_se(p, usable[0], usable[-1])
    diff = max(default_diff, _ceil(NOISE_SE * se, 0.01))
    ratio = default_ratio
    if diff > default_diff:
        ratio = min(default_ratio, _floor((p - diff / 2) / (p + diff / 2), 0.01))
    why = (
        f"{NOISE_SE:g} standard errors ({se:.3f}) of the difference between groups of "
        f"{usable[0]:.0f} and {usable[-1]:.0f} rows"
        if diff > default_diff
        else ""
    )
    return diff, ratio, why


def _policy(
    frame: pd.DataFrame,
    options: InitOptions,
    groups: dict[str, list[str]],
    favourable_share: float,
    gated: Sequence[str],
) -> tuple[dict[str, Any], list[str]]:
    """The bundled credit policy, re-fitted to this use case and the sample's size."""
    policy: dict[str, Any] = yaml.safe_load((BUNDLED_USE_CASE / POLICY).read_text())
    notes: list[str] = []
    rows = len(frame)
    fractions = _split_fractions(rows)
    needed = math.ceil(MIN_SPLIT_ROWS / min(fractions.values()))
    if rows < needed:
        raise _fail(
            options,
            "rows",
            f"{rows} rows: too few to split into train/validation/test of at least "
            f"{MIN_SPLIT_ROWS} rows each (needs {needed})",
        )
    quality = policy["data_quality"]
    quality["min_rows"] = max(needed, min(1000, int(0.8 * rows) // 100 * 100))
    notes.append(
        f"data_quality.min_rows {quality['min_rows']}: 80% of the sample's {rows} rows (at most "
        f"1000, at least the {needed} the split needs)"
    )
    missing = max(float(frame[c].isna().mean()) for c in gated)
    if missing + 0.01 > quality["max_missing_rate"]:
        quality["max_missing_rate"] = _ceil(missing + 0.01, 0.01)
        notes.append(
            f"data_quality.max_missing_rate {quality['max_missing_rate']}: the sample's worst "
            f"column misses {missing:.1%} of its values"
        )
    shares = {
        (column, group): float((frame[column].astype(str) == group).mean())
        for column, names in groups.items()
        for group in names
    }
    (small_column, small_group), smallest = min(shares.items(), key=lambda kv: kv[1])
    if smallest < quality["min_group_share"]:
        quality["min_group_share"] = max(0.001, _floor(smallest / 2, 0.001))
        notes.append(
            f"data_quality.min_group_share {quality['min_group_share']} (credit: 0.05): "
            f"{small_column}={small_group} is {smallest:.1%} of the sample; its fairness "
            "figures will be reported as insufficient data (gated in production): collect more"
        )
    label_shares = frame[options.label].dropna().astype(str).value_counts(normalize=True)
    if float(label_shares.min()) < 1.5 * quality["min_label_share"]:
        quality["min_label_share"] = max(0.01, _floor(float(label_shares.min()) / 2, 0.01))
        notes.append(
            f"data_quality.min_label_share {quality['min_label_share']}: the rarest label "
            f"value is {float(label_shares.min()):.1%} of the sample"
        )
    labelled = frame[options.label].notna()
    favourable = _favourable_mask(frame, options)
    bias: dict[str, Any] = {
        **DEFAULT_BIAS,
        "min_intersection_share": 0.02,
        "min_group_rows": BIAS_MIN_GROUP_ROWS,
    }
    rate = float(favourable[labelled].mean())
    for column, values in groups.items():
        sizes = [float(((frame[column].astype(str) == g) & labelled).sum()) for g in values]
        diff, ratio, why = _rate_limits(
            rate,
            sizes,
            BIAS_MIN_GROUP_ROWS,
            DEFAULT_BIAS["max_favourable_rate_difference"],
            DEFAULT_BIAS["min_favourable_rate_ratio"],
        )
        bias[column] = {"min_favourable_rate_ratio": ratio, "max_favourable_rate_difference": diff}
        if why:
            notes.append(
                f"data_quality.bias.{column}: difference <= {diff}, ratio >= {ratio}: {why}"
            )
    names = list(groups)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            sizes = [float(n) for n in frame[labelled].groupby([first, second]).size().to_numpy()]
            diff, ratio, why = _rate_limits(
                rate,
                sizes,
                BIAS_MIN_GROUP_ROWS,
                DEFAULT_BIAS["max_favourable_rate_difference"],
                DEFAULT_BIAS["min_favourable_rate_ratio"],
            )
            bias[f"{first}{INTERSECTION}{second}"] = {
                "min_favourable_rate_ratio": ratio,
                "max_favourable_rate_difference": diff,
            }
            if why:
                notes.append(
                    f"data_quality.bias.{first}{INTERSECTION}{second}: difference <= {diff}, "
                    f"ratio >= {ratio}: {why}"
                )
    cells = [
        float(frame.groupby([a, b]).size().min() / rows) if _all_cells(frame, a, b, groups) else 0.0
        for i, a in enumerate(groups)
        for b in list(groups)[i + 1 :]
    ]
    if cells and min(cells) < 2 * bias["min_intersection_share"]:
        bias["min_intersection_share"] = _floor(min(cells) / 2, 0.001)
        notes.append(
            f"data_quality.bias.min_intersection_share {bias['min_intersection_share']} "
            f"(credit: 0.02): the smallest intersection of two protected attributes is "
            f"{min(cells):.1%} of the sample"
        )
    quality["bias"] = bias
    policy["features"]["split_fractions"] = fractions
    policy["features"]["min_split_rows"] = MIN_SPLIT_ROWS
    if fractions["test"] != 0.15:
        notes.append(
            "features.split_fractions 60/20/20: a sample under "
            f"{SMALL_SAMPLE_ROWS} rows keeps a larger test split for the fairness figures"
        )
    policy["evaluation"] = _evaluation(
        policy["evaluation"], frame, options, groups, favourable_share, fractions, notes
    )
    return policy, notes


def _favourable_mask(frame: pd.DataFrame, options: InitOptions) -> pd.Series:
    values = frame[options.label]
    text = values.map(lambda v: str(v).strip().lower() if isinstance(v, bool) else str(v).strip())
    wanted = options.favourable.strip()
    if pd.api.types.is_bool_dtype(values.dropna()):
        wanted = wanted.lower()
    elif pd.api.types.is_numeric_dtype(values):
        text = values.map(lambda v: str(int(v)) if pd.notna(v) else "")
    return (text == wanted) & values.notna()


def _all_cells(frame: pd.DataFrame, a: str, b: str, groups: dict[str, list[str]]) -> bool:
    observed = frame.groupby([a, b]).size()
    return len(observed) == len(groups[a]) * len(groups[b])


def _evaluation(
    evaluation: dict[str, Any],
    frame: pd.DataFrame,
    options: InitOptions,
    groups: dict[str, list[str]],
    p: float,
    fractions: dict[str, float],
    notes: list[str],
) -> dict[str, Any]:
    """Performance limits from the base rate, fairness limits per protected attribute,
    noise-aware limits for the expected size of the test split."""
    test_rows = len(frame) * fractions["test"]
    majority = max(p, 1 - p)
    evaluation["min_accuracy"] = _floor(majority + 0.03, 0.01)
    evaluation["min_roc_auc"] = 0.70
    evaluation["min_precision"] = _floor(min(p + 0.05, 0.95), 0.01)
    evaluation["min_recall"] = 0.50
    evaluation["min_f1"] = 0.50
    notes.append(
        f"evaluation: {p:.1%} of the sample's labels are favourable: min_accuracy "
        f"{evaluation['min_accuracy']} (predicting the majority scores {majority:.3f}), "
        f"min_precision {evaluation['min_precision']} (approving everyone scores {p:.3f}), "
        "min_roc_auc 0.70, min_recall 0.50, min_f1 0.50: raise them to what the use case needs"
    )
    accuracy_se = math.sqrt(0.25 / test_rows)
    noise = _ceil(NOISE_SE * accuracy_se, 0.01)
    robustness = evaluation["robustness"]
    robustness["max_accuracy_drop"] = max(robustness["max_accuracy_drop"], noise)
    robustness["max_roc_auc_drop"] = max(robustness["max_roc_auc_drop"], noise)
    calibration = evaluation["calibration"]
    # A perfectly calibrated model's ECE on n rows in 10 bins is ~sqrt(2/pi) * sqrt(10 p(1-p)
    # / n) from sampling alone; the limit leaves room for 1.6 times that.
    ece_noise = math.sqrt(2 / math.pi) * math.sqrt(10 * p * (1 - p) / test_rows)
    calibration["max_expected_calibration_error"] = max(
        calibration["max_expected_calibration_error"], _ceil(1.6 * ece_noise, 0.01)
    )
    calibration["max_brier_score"] = _floor(0.9 * p * (1 - p), 0.01)
    notes.append(
        f"evaluation robustness drops <= {noise}: {NOISE_SE:g} standard errors of an accuracy "
        f"on the ~{test_rows:.0f}-row test split; max_expected_calibration_error "
        f"{calibration['max_expected_calibration_error']}: 1.6 times the ECE sampling alone "
        f"gives a calibrated model on that split ({ece_noise:.3f}); max_brier_score "
        f"{calibration['max_brier_score']}: 90% of a constant predictor's {p * (1 - p):.3f}"
    )
    evaluation["fairness_min_group_size"] = FAIRNESS_MIN_GROUP_SIZE
    fairness: dict[str, Any] = {}
    q = max(min(p, 1 - p), 0.05)
    for column, names in groups.items():
        sizes = [float((frame[column].astype(str) == g).mean()) * test_rows for g in names]
        dp, ratio, why = _rate_limits(
            p,
            sizes,
            FAIRNESS_MIN_GROUP_SIZE,
            DEFAULT_FAIRNESS["max_demographic_parity_difference"],
            DEFAULT_FAIRNESS["min_demographic_parity_ratio"],
        )
        eo, _, eo_why = _rate_limits(
            0.5,
            [s * q for s in sizes],
            FAIRNESS_MIN_GROUP_SIZE * q,
            DEFAULT_FAIRNESS["max_equalized_odds_difference"],
            0.0,
        )
        fairness[column] = {
            "max_demographic_parity_difference": dp,
            "min_demographic_parity_ratio": ratio,
            "max_equalized_odds_difference": eo,
        }
        if why or eo_why:
            notes.append(
                f"evaluation.fairness.{column}: demographic parity difference <= {dp}, ratio >= "
                f"{ratio}, equalized odds difference <= {eo}: {why or eo_why} expected in the "
                "test split (credit: 0.10, 0.80, 0.15); tighten them with more data"
            )
    evaluation["fairness"] = fairness
    return evaluation


def _data_card(
    name: str, options: InitOptions, frame: pd.DataFrame, declaration: dict[str, Any]
) -> str:
    columns = [
        {"name": c, "type": "numeric", "min": v["range"][0], "max": v["range"][1]}
        for c, v in declaration["numeric"].items()
    ] + [
        {"name": c, "type": "categorical", "values": v["vocabulary"]}
        for c, v in declaration["categorical"].items()
    ]
    known = {
        "name": name,
        "version": "1.0.0",
        "sample": f"{options.data.name}, {len(frame)} rows",
        "label": {
            "column": options.label,
            "values": declaration["label"]["values"],
            "favourable_value": declaration["label"]["favourable"],
        },
        "protected_attributes": list(options.protected),
        "identifiers": list(options.identifiers),
        "unused_columns": list(options.ignore),
        "columns": columns,
    }
    lines = [
        f"# Data card of use case {name}, drafted by `aiact init-use-case` from "
        f"{options.data.name}.",
        "# Fill in every field marked TODO: data preparation refuses this card while owner,",
        "# origin, licence, collection_date or intended_use is empty (AI Act Art. 10).",
    ]
    for key, why in CARD_TODO_FIELDS.items():
        lines.append(f"{key}:  # {TODO}: {why}")
    lines.append(yaml.safe_dump(known, sort_keys=False, default_flow_style=None).rstrip())
    return "\n".join(lines) + "\n"


def _schema_text(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    vocabularies: dict[str, tuple[str, ...]],
    label_values: tuple[Any, ...],
    integral: set[str],
) -> str:
    """The TFDV schema of the gated columns (TFDV imported only here)."""
    from google.protobuf import text_format

    from components.data_preparation.schema import draft_schema

    sample = frame[[*spec.input_columns, *spec.protected_attributes, spec.label]].copy()
    for column in sample.columns:
        values = sample[column]
        if _is_text(values):
            sample[column] = values.where(values.isna(), values.astype(str))
        elif column in integral or (column == spec.label and _integral(values)):
            sample[column] = values.astype("Int64")
    schema = draft_schema(sample, spec, vocabularies, label_values)
    return str(text_format.MessageToString(schema))


def init_use_case(options: InitOptions) -> InitResult:
    """Infer and write a use case folder from a clean sample, then validate it.

    Args:
        options: The sample, the columns' roles and where to write.

    Returns:
        The loaded use case and what was inferred.

    Raises:
        UseCaseError: A bad input (one line naming the file and the field), or a folder that
            would overwrite an existing use case.
    """
    existing = [f for f in FILES if (options.out / f).exists()]
    if existing:
        raise UseCaseError(
            f"{options.out / existing[0]}: already exists; choose another --out (a use case "
            "is never overwritten)"
        )
    frame = _read(options)
    _check_roles(options, frame)
    name = options.name or _slug(options.data.stem)
    if not name or _slug(name) != name:
        raise UseCaseError(
            f"{options.data.name}: --name: {name!r} must be 1-40 characters a-z, 0-9, '-'"
        )
    label_values, favourable, favourable_share = _label(options, frame)
    groups = {column: _groups(options, frame, column) for column in options.protected}
    numeric, categorical, integral = _features(options, frame)
    declaration: dict[str, Any] = {
        "version": 1,
        "name": name,
        "model_name": f"{name}-classifier",
        "label": {"column": options.label, "values": label_values, "favourable": favourable},
        "record_key": list(options.identifiers),
        "identifiers": list(options.identifiers),
        "passthrough": list(options.passthrough),
        "missing_values": list(options.missing),
        "protected_attributes": groups,
        "numeric": numeric,
        "categorical": categorical,
    }
    spec = FeatureSpec(
        label=options.label,
        protected_attributes=tuple(groups),
        numeric=tuple(
            NumericFeature(c, float(v["range"][0]), float(v["range"][1]), v["transform"])
            for c, v in numeric.items()
        ),
        categorical=tuple(
            CategoricalFeature(c, tuple(v["vocabulary"])) for c, v in categorical.items()
        ),
    )
    vocabularies = {
        **{c: tuple(v["vocabulary"]) for c, v in categorical.items()},
        **{c: tuple(v) for c, v in groups.items()},
    }
    policy, notes = _policy(frame, options, groups, favourable_share, spec.input_columns)
    schema = _schema_text(frame, spec, vocabularies, tuple(label_values), integral)
    options.out.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Use case {name}, drafted by `aiact init-use-case` from {options.data.name} "
        f"({len(frame)} rows).\n# Numeric ranges: the sample's [min, max] widened by "
        f"{RANGE_MARGIN:.0%} of the span on each side; vocabularies: every value seen. Review.\n"
    )
    (options.out / DECLARATION).write_text(
        header + yaml.safe_dump(declaration, sort_keys=False, default_flow_style=None)
    )
    (options.out / SCHEMA).write_text(schema)
    policy_header = "".join(
        f"# {line}\n"
        for line in (
            f"Gate policy of use case {name}, drafted by `aiact init-use-case`: the bundled "
            "credit policy's structure",
            "re-fitted to this sample. Review every limit before a run that matters; "
            "where it differs from the credit policy:",
            *(f"- {note}" for note in notes),
        )
    )
    (options.out / POLICY).write_text(
        policy_header + yaml.safe_dump(policy, sort_keys=False, default_flow_style=None)
    )
    (options.out / DATA_CARD).write_text(_data_card(name, options, frame, declaration))
    with tempfile.TemporaryDirectory() as scratch:
        use_case = load_use_case(str(options.out.resolve()), Path(scratch))
    return InitResult(
        use_case=use_case,
        directory=options.out,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        ignored=options.ignore,
        notes=tuple(notes),
    )


def fill_todo(card: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The data card with its empty TODO fields set from `values` (a helper for scripts and
    tests; a person fills them in by editing the file)."""
    filled = dict(card)
    for key in CARD_TODO_FIELDS:
        if not filled.get(key) and key in values:
            filled[key] = values[key]
    return filled
