"""Data quality gate: TFDV statistics and anomalies against the declared schema, plus the
thresholds a schema cannot express (missing values, duplicates, size, group representation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aiact.policy import Check, GateResult, at_least, at_most

GATE = "data_quality"


class DataSourceError(ValueError):
    """The source cannot be read as a table."""


@dataclass(frozen=True)
class QualityOutcome:
    """The gate verdict and the evidence it rests on."""

    gate: GateResult
    evidence: dict[str, Any]


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet source; a clear error when it is not a readable table."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            frame = pd.read_csv(path)
        else:
            raise DataSourceError(f"{path.name}: unsupported format {suffix!r} (csv or parquet)")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataSourceError(f"{path.name}: cannot be read as a table: {exc}") from exc
    return frame.reset_index(drop=True)


def _tfdv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame TFDV can convert: mixed-type object columns become strings (nulls kept)."""
    converted = frame.reset_index(drop=True).copy()
    for column in converted.columns:
        if converted[column].dtype == object:
            values = converted[column]
            converted[column] = values.where(values.isna(), values.astype(str))
    return converted


def tfdv_anomalies(frame: pd.DataFrame, schema_path: Path) -> tuple[list[dict[str, str]], Any]:
    """TFDV statistics of the frame and its anomalies against the declared schema."""
    import tensorflow_data_validation as tfdv  # heavy: imported only in this stage

    statistics = tfdv.generate_statistics_from_dataframe(_tfdv_frame(frame))
    schema = tfdv.load_schema_text(str(schema_path))
    anomalies = tfdv.validate_statistics(statistics, schema)
    found = [
        {
            "column": feature,
            "short_description": info.short_description,
            "description": info.description,
            "types": ",".join(sorted(type(info).Type.Name(reason.type) for reason in info.reason)),
        }
        for feature, info in sorted(anomalies.anomaly_info.items())
    ]
    if anomalies.HasField("dataset_anomaly_info"):
        found.append(
            {
                "column": "<dataset>",
                "short_description": anomalies.dataset_anomaly_info.short_description,
                "description": anomalies.dataset_anomaly_info.description,
                "types": "dataset",
            }
        )
    return found, statistics


def column_summary(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per-column evidence: dtype, missing rate, and range or distinct values."""
    summary: dict[str, dict[str, Any]] = {}
    for column in frame.columns:
        values = frame[column]
        entry: dict[str, Any] = {
            "dtype": str(values.dtype),
            "missing_rate": round(float(values.isna().mean()), 6),
        }
        if pd.api.types.is_numeric_dtype(values):
            entry.update(
                min=float(values.min()),
                max=float(values.max()),
                mean=round(float(values.mean()), 6),
            )
        else:
            entry["distinct"] = int(values.nunique())
        summary[column] = entry
    return summary


def check_quality(
    frame: pd.DataFrame,
    anomalies: list[dict[str, str]],
    thresholds: dict[str, Any],
    *,
    label: str,
    protected_attributes: tuple[str, ...],
) -> GateResult:
    """Every data-quality check, named by rule and column."""
    rows = len(frame)
    checks: list[Check] = [at_least("min_rows", rows, thresholds["min_rows"], f"{rows} rows")]
    checks.append(
        at_most(
            "anomalies",
            len(anomalies),
            thresholds["max_anomalies"],
            "; ".join(f"{a['column']}: {a['short_description']}" for a in anomalies),
        )
    )
    for column in frame.columns:
        checks.append(
            at_most(
                f"missing_rate[{column}]",
                round(float(frame[column].isna().mean()), 6) if rows else 0.0,
                thresholds["max_missing_rate"],
            )
        )
    duplicate_rate = float(frame.duplicated().mean()) if rows else 0.0
    checks.append(
        at_most("duplicate_rate", round(duplicate_rate, 6), thresholds["max_duplicate_rate"])
    )
    for column in (*protected_attributes, label):
        if column not in frame.columns:
            checks.append(Check(f"present[{column}]", "absent", "present", "==", False))
            continue
        limit = thresholds["min_label_share" if column == label else "min_group_share"]
        shares = frame[column].value_counts(normalize=True, dropna=True)
        for value, share in sorted(shares.items(), key=lambda kv: str(kv[0])):
            checks.append(at_least(f"share[{column}={value}]", round(float(share), 6), limit))
    return GateResult(GATE, tuple(checks))


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
) -> QualityOutcome:
    """Run the data quality gate on one source table."""
    anomalies, _ = tfdv_anomalies(frame, schema_path)
    gate = check_quality(
        frame, anomalies, thresholds, label=label, protected_attributes=protected_attributes
    )
    evidence = {
        "rows": len(frame),
        "columns": list(frame.columns),
        "anomalies": anomalies,
        "column_summary": column_summary(frame),
    }
    return QualityOutcome(gate=gate, evidence=evidence)
