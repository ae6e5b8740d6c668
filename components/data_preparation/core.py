"""Data quality gate: TFDV statistics and anomalies against the declared schema, plus the
thresholds a schema cannot express (missing values, duplicates, size, constant columns, class
balance, protected-group representation, label leakage, drift from a baseline).

Every check is named ``rule[column]`` (``rule`` alone for table-wide rules), so a breach says
which rule failed on which column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiact.hashing import sha256_json
from aiact.policy import Check, GateResult, at_least, at_most, must_hold

GATE = "data_quality"
TABLE = "<table>"
_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
_DRIFT_REASONS = {"COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"}
# A column is scored by its own values (numeric, many distinct) or by the label rate of each of
# its values (few distinct); identifier-like text columns are not scored.
_LEAKAGE_MAX_CATEGORIES = 50


class DataSourceError(ValueError):
    """The source cannot be read as a table; `rule` names what is wrong with it."""

    def __init__(self, message: str, rule: str = "readable") -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class QualityOutcome:
    """The gate verdict and the evidence it rests on."""

    gate: GateResult
    evidence: dict[str, Any]


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet source; a DataSourceError naming the rule when it is not a
    readable, comma-separated table."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv", ".txt"):
        raise DataSourceError(
            f"{path.name}: unsupported format {suffix!r} (csv or parquet)", rule="format"
        )
    if path.stat().st_size == 0:
        raise DataSourceError(f"{path.name}: cannot be read as a table: the file is empty")
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, low_memory=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # parser, decoding, arrow errors
        raise DataSourceError(f"{path.name}: cannot be read as a table: {exc}") from exc
    if len(frame.columns) == 1:
        header = str(frame.columns[0])
        for delimiter, name in _DELIMITERS.items():
            if delimiter in header:
                raise DataSourceError(
                    f"{path.name}: one column {header[:60]!r}: fields are separated by "
                    f"{name} ({delimiter!r}), the declared delimiter is comma",
                    rule="delimiter",
                )
    return frame.reset_index(drop=True)


def source_failure(source_name: str, error: DataSourceError) -> GateResult:
    """The gate verdict for a source that could not be read at all."""
    return GateResult(GATE, (must_hold(f"{error.rule}[{source_name}]", False, str(error)),))


def _tfdv_frame(frame: pd.DataFrame, int_columns: set[str]) -> pd.DataFrame:
    """A frame TFDV can convert: mixed-type object columns become strings (nulls kept), and a
    declared INT column that nulls turned into floats becomes a nullable integer again."""
    converted = frame.reset_index(drop=True).copy()
    for column in converted.columns:
        values = converted[column]
        if values.dtype == object:
            converted[column] = values.where(values.isna(), values.astype(str))
        elif column in int_columns and pd.api.types.is_float_dtype(values):
            present = values.dropna()
            if (present == present.round()).all():
                converted[column] = values.astype("Int64")
    return converted


def load_schema(schema_path: Path) -> Any:
    """The declared TFDV schema."""
    import tensorflow_data_validation as tfdv  # heavy: imported only in this stage

    return tfdv.load_schema_text(str(schema_path))


def tfdv_statistics(frame: pd.DataFrame, schema: Any) -> Any:
    """TFDV statistics of a frame, its columns typed as the schema declares where possible."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    int_columns = {f.name for f in schema.feature if f.type == schema_pb2.INT}
    return tfdv.generate_statistics_from_dataframe(_tfdv_frame(frame, int_columns))


def _anomaly_list(anomalies: Any, reasons: set[str] | None = None) -> list[dict[str, str]]:
    found = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        types = sorted(type(info).Type.Name(reason.type) for reason in info.reason)
        if reasons is not None and not reasons.intersection(types):
            continue
        found.append(
            {
                "column": feature,
                "short_description": info.short_description,
                "description": info.description,
                "types": ",".join(types),
            }
        )
    if reasons is None and anomalies.HasField("dataset_anomaly_info"):
        found.append(
            {
                "column": TABLE,
                "short_description": anomalies.dataset_anomaly_info.short_description,
                "description": anomalies.dataset_anomaly_info.description,
                "types": "dataset",
            }
        )
    return found


def schema_anomalies(statistics: Any, schema: Any) -> list[dict[str, str]]:
    """TFDV anomalies of the statistics against the declared schema."""
    import tensorflow_data_validation as tfdv

    return _anomaly_list(tfdv.validate_statistics(statistics, schema))


def drift_anomalies(
    statistics: Any, baseline: Any, schema: Any, thresholds: dict[str, Any]
) -> list[dict[str, str]]:
    """TFDV drift comparators between a baseline (training) and this (serving) data: L-infinity
    distance for categorical columns, Jensen-Shannon divergence for numeric ones."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    compared = schema_pb2.Schema()
    compared.CopyFrom(schema)
    for feature in compared.feature:
        categorical = feature.type == schema_pb2.BYTES or feature.int_domain.is_categorical
        if categorical:
            feature.drift_comparator.infinity_norm.threshold = thresholds["max_drift_linf"]
        else:
            feature.drift_comparator.jensen_shannon_divergence.threshold = thresholds[
                "max_drift_jensen_shannon"
            ]
    found = tfdv.validate_statistics(statistics, compared, previous_statistics=baseline)
    return _anomaly_list(found, _DRIFT_REASONS)


def declared_values(schema: Any, column: str) -> tuple[str, ...]:
    """The values the schema declares for a categorical column (string domain or a categorical
    integer range), as strings; empty when it declares none."""
    for feature in schema.feature:
        if feature.name != column:
            continue
        if feature.domain:
            for domain in schema.string_domain:
                if domain.name == feature.domain:
                    return tuple(domain.value)
        if feature.HasField("string_domain"):
            return tuple(feature.string_domain.value)
        if feature.int_domain.is_categorical:
            low, high = feature.int_domain.min, feature.int_domain.max
            return tuple(str(v) for v in range(low, high + 1))
    return ()


def label_association(values: pd.Series, label: pd.Series) -> float:
    """How well one column alone separates the label classes: max(AUC, 1 - AUC), 0.5 = not at
    all, 1.0 = perfectly (a leaked label). NaN when the column cannot be scored."""
    both = values.notna() & label.notna()
    values, label = values[both], label[both].astype(int)
    positives = int(label.sum())
    negatives = len(label) - positives
    if positives == 0 or negatives == 0 or values.nunique() < 2:
        return float("nan")
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > _LEAKAGE_MAX_CATEGORIES:
        score = values.astype("float64")
    elif values.nunique() <= _LEAKAGE_MAX_CATEGORIES:
        score = values.map(label.groupby(values).mean()).astype("float64")
    else:
        return float("nan")
    ranks = score.rank(method="average").to_numpy()
    auc = (ranks[label.to_numpy() == 1].sum() - positives * (positives + 1) / 2) / (
        positives * negatives
    )
    return float(max(auc, 1.0 - auc))


def _as_key(value: Any) -> str:
    """A group value as the schema spells it (1.0 read back from CSV is the class '1')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def representation_checks(
    frame: pd.DataFrame, column: str, declared: tuple[str, ...], limit: float
) -> list[Check]:
    """Share of every declared (and every observed) value of a group or label column."""
    if column not in frame.columns:
        return [must_hold(f"present[{column}]", False, f"column {column!r} is absent")]
    counts = frame[column].value_counts(normalize=True, dropna=True)
    shares = counts.groupby(counts.index.map(_as_key)).sum()
    checks = []
    for value in sorted(set(declared) | set(shares.index)):
        share = round(float(shares.get(value, 0.0)), 6)
        detail = "declared value absent from the data" if share == 0 else ""
        checks.append(at_least(f"share[{column}={value}]", share, limit, detail))
    return checks


def check_quality(
    frame: pd.DataFrame,
    anomalies: list[dict[str, str]],
    thresholds: dict[str, Any],
    *,
    label: str,
    protected_attributes: tuple[str, ...],
    declared: dict[str, tuple[str, ...]],
    drift: list[dict[str, str]] | None = None,
) -> GateResult:
    """Every data-quality check, named by rule and column."""
    rows = len(frame)
    checks: list[Check] = [at_least("min_rows", rows, thresholds["min_rows"], f"{rows} rows")]
    checks += [
        must_hold(f"schema[{a['column']}]", False, f"{a['short_description']}: {a['description']}")
        for a in anomalies
    ]
    for column in frame.columns:
        values = frame[column]
        missing = round(float(values.isna().mean()), 6) if rows else 0.0
        checks.append(at_most(f"missing_rate[{column}]", missing, thresholds["max_missing_rate"]))
        distinct = int(values.nunique(dropna=True))
        checks.append(
            at_least(
                f"distinct_values[{column}]",
                distinct,
                thresholds["min_distinct_values"],
                "constant column" if distinct == 1 else "",
            )
        )
    duplicate_rate = round(float(frame.duplicated().mean()), 6) if rows else 0.0
    checks.append(at_most("duplicate_rate", duplicate_rate, thresholds["max_duplicate_rate"]))
    for column in protected_attributes:
        checks += representation_checks(
            frame, column, declared.get(column, ()), thresholds["min_group_share"]
        )
    checks += representation_checks(
        frame, label, declared.get(label, ()), thresholds["min_label_share"]
    )
    if label in frame.columns:
        for column in frame.columns.drop(label):
            association = label_association(frame[column], frame[label])
            if not np.isnan(association):
                checks.append(
                    at_most(
                        f"label_leakage[{column}]",
                        round(association, 6),
                        thresholds["max_label_association"],
                        f"{column} alone separates {label} with AUC {association:.3f}",
                    )
                )
    checks += [
        must_hold(f"drift[{a['column']}]", False, f"{a['short_description']}: {a['description']}")
        for a in drift or []
    ]
    return GateResult(GATE, tuple(checks))


def column_summary(frame: pd.DataFrame) -> dict[str, str]:
    """One readable line per column: type, missing rate, and range or distinct values."""
    summary = {}
    for column in frame.columns:
        values = frame[column]
        line = f"{values.dtype}, missing {values.isna().mean():.2%}"
        if pd.api.types.is_numeric_dtype(values) and values.notna().any():
            line += f", min {values.min():.6g}, max {values.max():.6g}, mean {values.mean():.6g}"
        else:
            line += f", {values.nunique()} distinct"
        summary[str(column)] = line
    return summary


def statistics_digest(frame: pd.DataFrame) -> dict[str, Any]:
    """A compact, hashable description of a table: what lineage records before and after a
    step, so an auditor sees what the step changed."""
    numeric = frame.select_dtypes("number")
    other = frame.drop(columns=numeric.columns)
    return {
        "rows": len(frame),
        "columns": [str(c) for c in frame.columns],
        "missing": {str(c): int(v) for c, v in frame.isna().sum().items() if v},
        "means": {str(c): round(float(v), 6) for c, v in numeric.mean().items()},
        "stds": {str(c): round(float(v), 6) for c, v in numeric.std().items()},
        "value_counts_sha256": {
            str(c): sha256_json(sorted(map(str, other[c].value_counts().items())))
            for c in other.columns
        },
    }


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Preprocessing after the gate: drop exact duplicate rows, keep source order."""
    return frame.drop_duplicates().reset_index(drop=True)


def evaluate_source(
    frame: pd.DataFrame,
    schema_path: Path,
    thresholds: dict[str, Any],
    *,
    label: str,
    protected_attributes: tuple[str, ...],
    baseline: pd.DataFrame | None = None,
) -> QualityOutcome:
    """Run the data quality gate on one source table; with a baseline (the data the model was
    trained on), also on its drift from that baseline."""
    schema = load_schema(schema_path)
    statistics = tfdv_statistics(frame, schema)
    anomalies = schema_anomalies(statistics, schema)
    drift = None
    if baseline is not None:
        drift = drift_anomalies(statistics, tfdv_statistics(baseline, schema), schema, thresholds)
    declared = {c: declared_values(schema, c) for c in (*protected_attributes, label)}
    gate = check_quality(
        frame,
        anomalies,
        thresholds,
        label=label,
        protected_attributes=protected_attributes,
        declared=declared,
        drift=drift,
    )
    evidence: dict[str, Any] = {
        "rows": len(frame),
        "columns": column_summary(frame),
        "anomalies": {
            a["column"]: f"{a['short_description']}: {a['description']}" for a in anomalies
        }
        or {"none": "no anomaly against the declared schema"},
    }
    if drift is not None:
        evidence["drift"] = {
            a["column"]: f"{a['short_description']}: {a['description']}" for a in drift
        } or {"none": "no drift from the baseline beyond the policy's limits"}
    return QualityOutcome(gate=gate, evidence=evidence)
