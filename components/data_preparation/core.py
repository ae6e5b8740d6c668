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
from components.data_preparation.bias import DEFAULT_BIAS_THRESHOLDS, examine_bias

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


def read_table(path: Path, missing_values: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet source; a DataSourceError naming the rule when it is not a
    readable, comma-separated table. `missing_values` (the use case's tokens, e.g. ``?``) read
    as missing; padding spaces around text values and column names are removed."""
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
            frame = pd.read_csv(
                path,
                low_memory=False,
                na_values=list(missing_values),
                skipinitialspace=True,
            )
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
    return normalise(frame, missing_values)


def normalise(frame: pd.DataFrame, missing_values: tuple[str, ...] = ()) -> pd.DataFrame:
    """Strip padding spaces from column names and text values; missing tokens become null."""
    frame = frame.rename(columns=lambda c: str(c).strip()).reset_index(drop=True)
    tokens = set(missing_values)
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object:
            stripped = values.map(lambda v: v.strip() if isinstance(v, str) else v)
            frame[column] = stripped.where(~stripped.isin(tokens), None) if tokens else stripped
    return frame


@dataclass(frozen=True)
class Declared:
    """What the use case declares about the source's columns."""

    label: str
    label_values: tuple[str, ...]
    favourable: str
    protected_attributes: dict[str, tuple[str, ...]]
    gated: tuple[str, ...]
    kept: tuple[str, ...]
    record_key: tuple[str, ...] = ()


def declared_of(use_case: Any) -> Declared:
    """The declaration a use case (aiact.usecase.UseCase) makes for the data gate."""
    return Declared(
        label=use_case.label.column,
        label_values=tuple(_as_key(v) for v in use_case.label.values),
        favourable=_as_key(use_case.label.favourable),
        protected_attributes=dict(use_case.protected_attributes),
        gated=use_case.gated_columns,
        kept=use_case.declared_columns,
        record_key=use_case.record_key,
    )


def split_undeclared(frame: pd.DataFrame, declared: Declared) -> tuple[pd.DataFrame, list[str]]:
    """The declared columns (in declaration order) and the names of the others, dropped."""
    undeclared = [str(c) for c in frame.columns if c not in declared.kept]
    present = [c for c in declared.kept if c in frame.columns]
    return frame[present].copy(), undeclared


def label_value_checks(frame: pd.DataFrame, declared: Declared, source: str) -> list[Check]:
    """Every label value must be one of the declared values."""
    column = declared.label
    if column not in frame.columns:
        return [must_hold(f"present[{column}]", False, f"{source}: column {column!r} is absent")]
    observed = frame[column].dropna().map(_as_key)
    unknown = sorted(set(observed) - set(declared.label_values))
    return [
        must_hold(
            f"label_values[{column}]",
            not unknown,
            f"{source}: column {column}: values {unknown[:5]} are not among the declared "
            f"label values {list(declared.label_values)}"
            if unknown
            else f"every value among {list(declared.label_values)}",
        )
    ]


def encode_label(frame: pd.DataFrame, declared: Declared) -> pd.DataFrame:
    """The label as the model sees it: 1 for the declared favourable value, 0 for the other
    declared values (rows without a label keep none)."""
    encoded = frame.copy()
    values = encoded[declared.label]
    keys = values.map(_as_key, na_action="ignore")
    encoded[declared.label] = (keys == declared.favourable).astype("Int64").where(values.notna())
    return encoded


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
    declared: Declared,
    encoded_label: pd.Series | None = None,
    drift: list[dict[str, str]] | None = None,
    source: str = "source",
) -> GateResult:
    """Every data-quality check on the gated columns (model inputs, protected attributes,
    label), named by rule and column; duplicates by the declared record key, else whole rows.
    `encoded_label` (favourable = 1) scores label leakage."""
    rows = len(frame)
    label = declared.label
    checks: list[Check] = [at_least("min_rows", rows, thresholds["min_rows"], f"{rows} rows")]
    checks += [
        must_hold(f"schema[{a['column']}]", False, f"{a['short_description']}: {a['description']}")
        for a in anomalies
    ]
    gated = [c for c in declared.gated if c in frame.columns]
    for column in gated:
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
    key = [c for c in declared.record_key if c in frame.columns]
    duplicated = frame.duplicated(subset=key) if key else frame.duplicated()
    duplicate_rate = round(float(duplicated.mean()), 6) if rows else 0.0
    checks.append(
        at_most(
            "duplicate_rate",
            duplicate_rate,
            thresholds["max_duplicate_rate"],
            f"by record key {key}" if key else "identical rows",
        )
    )
    for column, groups in declared.protected_attributes.items():
        checks += representation_checks(frame, column, groups, thresholds["min_group_share"])
    checks += label_value_checks(frame, declared, source)
    checks += representation_checks(
        frame, label, declared.label_values, thresholds["min_label_share"]
    )
    if encoded_label is not None:
        for column in gated:
            if column == label:
                continue
            association = label_association(frame[column], encoded_label)
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


def prepare(frame: pd.DataFrame, declared: Declared | None = None) -> pd.DataFrame:
    """Preprocessing after the gate: keep the declared columns, encode the label (favourable =
    1), drop duplicate records (by the record key, else identical rows), keep source order."""
    if declared is None:
        return frame.drop_duplicates().reset_index(drop=True)
    kept, _ = split_undeclared(frame, declared)
    key = [c for c in declared.record_key if c in kept.columns]
    unique = kept.drop_duplicates(subset=key or None)
    return encode_label(unique, declared).reset_index(drop=True)


def _gated_schema(schema: Any, columns: tuple[str, ...]) -> Any:
    """The declared schema restricted to the gated columns (identifiers and passthrough
    columns are kept in the dataset but not gated)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    gated = schema_pb2.Schema()
    gated.CopyFrom(schema)
    keep = [f for f in schema.feature if f.name in columns]
    del gated.feature[:]
    gated.feature.extend(keep)
    return gated


def evaluate_source(
    frame: pd.DataFrame,
    schema_path: Path,
    thresholds: dict[str, Any],
    *,
    declared: Declared,
    baseline: pd.DataFrame | None = None,
    source: str = "source",
) -> QualityOutcome:
    """Run the data quality gate on one source table (its declared columns; the others are
    reported and dropped); with a baseline (the data the model was trained on, label encoded),
    also on its drift from that baseline."""
    kept, undeclared = split_undeclared(frame, declared)
    schema = _gated_schema(load_schema(schema_path), declared.gated)
    gated = kept[[c for c in declared.gated if c in kept.columns]]
    statistics = tfdv_statistics(gated, schema)
    anomalies = schema_anomalies(statistics, schema)
    drift = None
    if baseline is not None:
        # The baseline's label is already encoded: compare the inputs and groups only.
        features = [c for c in declared.gated if c != declared.label]
        compared = _gated_schema(schema, tuple(features))
        drift = drift_anomalies(
            tfdv_statistics(gated[[c for c in features if c in gated.columns]], compared),
            tfdv_statistics(baseline[[c for c in features if c in baseline.columns]], compared),
            compared,
            thresholds,
        )
    encoded = None
    if declared.label in kept.columns:
        encoded = encode_label(kept, declared)[declared.label]
    gate = check_quality(
        kept,
        anomalies,
        thresholds,
        declared=declared,
        encoded_label=encoded,
        drift=drift,
        source=source,
    )
    bias_evidence: dict[str, Any] = {}
    if encoded is not None:
        # Art. 10(2)(f): favourable-label rate and representation per protected group and per
        # intersection of two protected attributes (components/data_preparation/bias.py).
        bias_checks, bias_evidence = examine_bias(
            kept.assign(**{declared.label: encoded}),
            label=declared.label,
            favourable=1,
            protected=declared.protected_attributes,
            thresholds=thresholds.get("bias", DEFAULT_BIAS_THRESHOLDS),
        )
        gate = GateResult(GATE, gate.checks + tuple(bias_checks))
    evidence: dict[str, Any] = {
        "rows": len(frame),
        "columns": column_summary(kept),
        "undeclared_columns": {
            "dropped": undeclared,
            "why": "not declared by the use case: reported, dropped, not gated",
        }
        if undeclared
        else {"none": "every column is declared by the use case"},
        "anomalies": {
            a["column"]: f"{a['short_description']}: {a['description']}" for a in anomalies
        }
        or {"none": "no anomaly against the declared schema"},
    }
    if bias_evidence:
        evidence["bias"] = bias_evidence
    if drift is not None:
        evidence["drift"] = {
            a["column"]: f"{a['short_description']}: {a['description']}" for a in drift
        } or {"none": "no drift from the baseline beyond the policy's limits"}
    return QualityOutcome(gate=gate, evidence=evidence)
