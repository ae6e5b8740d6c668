"""Data quality gate: TFDV statistics and anomalies against the declared schema, plus the
thresholds a schema cannot express (missing values, duplicates, size, constant columns, class
balance, protected-group representation, label leakage, drift from a baseline).

Every check is named ``rule[column]`` (``rule`` alone for table-wide rules), so a breach says
which rule failed on which column."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from aiact.hashing import sha256_json
from aiact.policy import Check, GateResult, at_least, at_most, must_hold
from components.data_preparation import reader, tally
from components.data_preparation.bias import DEFAULT_BIAS_THRESHOLDS, examine_bias_counts
from components.data_preparation.reader import DataSourceError
from components.data_preparation.tally import Plan, Tally, as_key

GATE = "data_quality"
TABLE = "<table>"
_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
_DRIFT_REASONS = {"COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"}
# A column is scored by its own values (numeric, many distinct) or by the label rate of each of
# its values (few distinct); identifier-like text columns are not scored.
_LEAKAGE_MAX_CATEGORIES = 50
# Above this source size (bytes) the gate runs on Beam (policy data_quality.engine).
DEFAULT_BEAM_ABOVE_BYTES = 2 * 2**30
# Above this many rows, label leakage of columns with more than tally.LEAKAGE_CAP distinct
# values is scored on a seeded sample of this many rows (its size recorded in the evidence).
DEFAULT_SAMPLE_ROWS = 1_000_000


_as_key = as_key


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


# --- statistics and anomalies (TFDV) ----------------------------------------------------------


def stats_options() -> Any:
    """The TFDV statistics options of both paths: sketch-based top-k and unique counts (the
    in-memory API always uses the sketches; the Beam path is told to), everything else TFDV's
    defaults, types from the data (the reader gives each column its schema type)."""
    import tensorflow_data_validation as tfdv

    return tfdv.StatsOptions(use_sketch_based_topk_uniques=True)


def load_schema(schema_path: Path) -> Any:
    """The declared TFDV schema."""
    import tensorflow_data_validation as tfdv  # heavy: imported only in this stage

    return tfdv.load_schema_text(str(schema_path))


def tfdv_batch(data: pa.RecordBatch | pa.Table, columns: tuple[str, ...]) -> pa.RecordBatch:
    """The columns TFDV sees, as the list arrays it expects (no copy of the values)."""
    from tfx_bsl.arrow import table_util

    present = [c for c in columns if c in data.schema.names]
    if isinstance(data, pa.Table):
        data = data.select(present).combine_chunks().to_batches()[0] if data.num_rows else None
        if data is None:
            raise DataSourceError("no rows")
    else:
        data = pa.RecordBatch.from_arrays([data.column(c) for c in present], names=present)
    return table_util.CanonicalizeRecordBatch(data)


def tfdv_statistics_of(data: pa.RecordBatch | pa.Table, columns: tuple[str, ...]) -> Any:
    """In-memory TFDV statistics of the named columns of a typed table."""
    from tensorflow_data_validation.statistics import stats_impl

    return stats_impl.generate_statistics_in_memory(tfdv_batch(data, columns), stats_options())


def tfdv_statistics(frame: pd.DataFrame, schema: Any) -> Any:
    """TFDV statistics of a frame, its columns typed as the schema declares."""
    batch = reader.normalise(_arrow_of(frame), reader.column_types(schema), frozenset())
    return tfdv_statistics_of(batch.data, tuple(str(c) for c in frame.columns))


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


def unparsable_anomalies(
    counted: Tally, schema: Any, anomalies: list[dict[str, str]]
) -> list[dict[str, str]]:
    """The schema anomalies with the values that did not parse as their column's declared type
    added (the reader reads every column in its declared type, so TFDV never sees them)."""
    types = reader.column_types(schema)
    spelled = {"int": "INT", "float": "FLOAT", "string": "BYTES"}
    by_column = {a["column"]: dict(a) for a in anomalies}
    for column, counts in counted.columns.items():
        bad = counts.unparsable
        if not bad.count or column not in types:
            continue
        what = (
            f"Expected data of type: {spelled[types[column]]} but got STRING: {bad.count} "
            f"value(s) that do not parse as {spelled[types[column]]}, e.g. {bad.examples}"
        )
        if column in by_column:
            entry = by_column[column]
            entry["description"] = f"{entry['description']}; {what}"
        else:
            by_column[column] = {
                "column": column,
                "short_description": "Unexpected data type",
                "description": what,
                "types": "UNEXPECTED_DATA_TYPE",
            }
    return [by_column[c] for c in sorted(by_column)]


def drift_schema(schema: Any, thresholds: dict[str, Any]) -> Any:
    """The schema with TFDV's drift comparators: L-infinity distance for categorical columns,
    Jensen-Shannon divergence for numeric ones."""
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
    return compared


def drift_anomalies(
    statistics: Any, baseline: Any, schema: Any, thresholds: dict[str, Any]
) -> list[dict[str, str]]:
    """TFDV drift comparators between a baseline (training) and this (serving) data."""
    import tensorflow_data_validation as tfdv

    compared = drift_schema(schema, thresholds)
    found = tfdv.validate_statistics(statistics, compared, previous_statistics=baseline)
    return _anomaly_list(found, _DRIFT_REASONS)


def gated_schema(schema: Any, columns: tuple[str, ...]) -> Any:
    """The declared schema restricted to the gated columns (identifiers and passthrough
    columns are kept in the dataset but not gated)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    gated = schema_pb2.Schema()
    gated.CopyFrom(schema)
    keep = [f for f in schema.feature if f.name in columns]
    del gated.feature[:]
    gated.feature.extend(keep)
    return gated


def drift_features(declared: Declared) -> tuple[str, ...]:
    """The columns compared with a baseline: the gated ones but the label (the baseline's is
    already encoded)."""
    return tuple(c for c in declared.gated if c != declared.label)


# --- the engine: in memory or on Beam ---------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """How the gate runs (policy `data_quality.engine`): on Beam above `beam_above_bytes` of
    source (or always with `beam: true`, never with `beam: false`), with `beam_options` passed
    to Beam (plus AIACT_BEAM_OPTIONS, space separated, from the platform); checks that cannot
    stream (label leakage of a column with more than `leakage_cap` distinct values) run on the
    seeded sample of `sample_rows` rows when the data has more."""

    beam_above_bytes: int = DEFAULT_BEAM_ABOVE_BYTES
    beam: bool | None = None
    beam_options: tuple[str, ...] = ()
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    seed: int = 0
    chunk_bytes: int = 64 * 2**20
    leakage_cap: int = tally.LEAKAGE_CAP

    def uses_beam(self, source: Path) -> bool:
        if self.beam is not None:
            return self.beam
        return source.stat().st_size > self.beam_above_bytes


def engine_of(thresholds: dict[str, Any]) -> Engine:
    """The engine settings of a policy's data_quality section; a ValueError naming a bad key."""
    block = thresholds.get("engine") or {}
    if not isinstance(block, dict):
        raise ValueError("data_quality.engine must be a mapping")
    known = {
        "beam_above_bytes",
        "beam",
        "beam_options",
        "sample_rows",
        "seed",
        "chunk_bytes",
        "leakage_cap",
    }
    unknown = sorted(set(block) - known)
    if unknown:
        raise ValueError(
            f"data_quality.engine: unknown key {unknown[0]!r} (known: {sorted(known)})"
        )
    for key in ("beam_above_bytes", "sample_rows", "seed", "chunk_bytes", "leakage_cap"):
        value = block.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise ValueError(
                f"data_quality.engine.{key} must be a non-negative integer, got {value!r}"
            )
    if block.get("sample_rows") == 0 or block.get("chunk_bytes") == 0:
        raise ValueError("data_quality.engine: sample_rows and chunk_bytes must be positive")
    beam = block.get("beam")
    if beam is not None and not isinstance(beam, bool):
        raise ValueError(f"data_quality.engine.beam must be true or false, got {beam!r}")
    options = block.get("beam_options") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValueError("data_quality.engine.beam_options must be a list of strings")
    platform = tuple(os.environ.get("AIACT_BEAM_OPTIONS", "").split())
    defaults = Engine()
    return Engine(
        beam_above_bytes=block.get("beam_above_bytes", defaults.beam_above_bytes),
        beam=beam,
        beam_options=(*options, *platform),
        sample_rows=block.get("sample_rows", defaults.sample_rows),
        seed=block.get("seed", defaults.seed),
        chunk_bytes=block.get("chunk_bytes", defaults.chunk_bytes),
        leakage_cap=block.get("leakage_cap", defaults.leakage_cap),
    )


def plan_of(declared: Declared, columns: list[str], engine: Engine, rows: int | None) -> Plan:
    """What the tally counts. `rows` known (in memory): no sample when the data has at most
    sample_rows rows (the sample would be every row); unknown (Beam): always a sample."""
    present = set(columns)
    sampled = rows is None or rows > engine.sample_rows
    return Plan(
        kept=tuple(c for c in declared.kept if c in present),
        gated=tuple(c for c in declared.gated if c in present),
        label=declared.label if declared.label in present else None,
        favourable=declared.favourable,
        protected=tuple(a for a in declared.protected_attributes if a in present),
        key=tuple(c for c in declared.record_key if c in present),
        sample_rows=engine.sample_rows if sampled else None,
        seed=engine.seed,
        leakage_cap=engine.leakage_cap if sampled else None,
    )


def duplicate_key(plan: Plan) -> tuple[str, ...]:
    """The columns duplicates are judged on: the record key, else the whole (declared) row."""
    return plan.key or plan.kept


@dataclass(frozen=True)
class Measured:
    """What both paths compute before the verdict."""

    counted: Tally
    duplicates: int
    statistics: Any
    baseline_statistics: Any | None
    engine: dict[str, Any]


def verdict(
    measured: Measured,
    schema: Any,
    thresholds: dict[str, Any],
    *,
    declared: Declared,
    plan: Plan,
    rows: int,
    undeclared: list[str],
    source: str,
) -> QualityOutcome:
    """The gate verdict and its evidence from what a path measured (the same on both)."""
    gated = gated_schema(schema, declared.gated)
    anomalies = unparsable_anomalies(
        measured.counted, gated, schema_anomalies(measured.statistics, gated)
    )
    drift = None
    if measured.baseline_statistics is not None:
        compared = gated_schema(schema, drift_features(declared))
        drift = drift_anomalies(
            measured.statistics, measured.baseline_statistics, compared, thresholds
        )
    gate, leakage = checks_of(
        measured.counted,
        measured.duplicates,
        anomalies,
        thresholds,
        declared=declared,
        plan=plan,
        drift=drift,
        source=source,
    )
    bias_evidence: dict[str, Any] = {}
    if plan.label is not None:
        # Art. 10(2)(f): favourable-label rate and representation per protected group and per
        # intersection of two protected attributes (components/data_preparation/bias.py).
        bias_checks, bias_evidence = examine_bias_counts(
            {k: {g: tuple(v) for g, v in c.items()} for k, c in measured.counted.groups.items()},
            rows=measured.counted.rows,
            label=declared.label,
            favourable=1,
            protected=declared.protected_attributes,
            thresholds=thresholds.get("bias", DEFAULT_BIAS_THRESHOLDS),
        )
        gate = GateResult(GATE, gate.checks + tuple(bias_checks))
    evidence: dict[str, Any] = {
        "rows": rows,
        "columns": column_summary_of(measured.counted),
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
        "engine": {**measured.engine, "label_leakage": leakage},
    }
    if bias_evidence:
        evidence["bias"] = bias_evidence
    if drift is not None:
        evidence["drift"] = {
            a["column"]: f"{a['short_description']}: {a['description']}" for a in drift
        } or {"none": "no drift from the baseline beyond the policy's limits"}
    return QualityOutcome(gate=gate, evidence=evidence)


# --- the checks, from the tally ---------------------------------------------------------------


def _shares(counts: tally.ColumnTally) -> dict[str, float]:
    total = sum(counts.counts.values()) if counts.counts else 0
    shares: dict[str, float] = {}
    for value, n in (counts.counts or {}).items():
        key = as_key(value)
        shares[key] = shares.get(key, 0.0) + n / total
    return shares


def _representation(
    counted: Tally, column: str, declared: tuple[str, ...], limit: float
) -> list[Check]:
    """Share of every declared (and every observed) value of a group or label column."""
    if column not in counted.columns:
        return [must_hold(f"present[{column}]", False, f"column {column!r} is absent")]
    counts = counted.columns[column]
    if counts.counts is None:
        return [
            must_hold(
                f"share[{column}]",
                False,
                f"more than {tally.DISTINCT_CAP} distinct values: not a group column",
            )
        ]
    shares = _shares(counts)
    checks = []
    for value in sorted(set(declared) | set(shares)):
        share = round(float(shares.get(value, 0.0)), 6)
        detail = "declared value absent from the data" if share == 0 else ""
        checks.append(at_least(f"share[{column}={value}]", share, limit, detail))
    return checks


def _label_values(counted: Tally, declared: Declared, source: str) -> list[Check]:
    """Every label value must be one of the declared values."""
    column = declared.label
    if column not in counted.columns:
        return [must_hold(f"present[{column}]", False, f"{source}: column {column!r} is absent")]
    counts = counted.columns[column]
    observed = {as_key(v) for v in counts.counts or {}} | set(counts.unparsable.examples)
    unknown = sorted(observed - set(declared.label_values))
    if counts.counts is None:
        unknown.append(f"(more than {tally.DISTINCT_CAP} distinct values)")
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


def _leakage(counted: Tally, plan: Plan) -> tuple[dict[str, float], dict[str, Any]]:
    """Label association per scored column and how each was scored."""
    scores: dict[str, float] = {}
    sampled: list[str] = []
    for column in plan.scored:
        table = counted.leakage.get(column)
        numeric = counted.columns[column].numeric if column in counted.columns else False
        if table is None and column in counted.leakage and numeric and counted.sample:
            sample = counted.sample
            values, label = sample.columns[column], sample.label
            valid = (label >= 0) & ~np.isnan(values)
            table = tally.table_of(values[valid], label[valid].astype(np.float64))
            sampled.append(column)
        if table is None:
            continue
        distinct = len(table[0])
        if distinct < 2:
            continue
        if numeric and distinct > _LEAKAGE_MAX_CATEGORIES:
            score = tally.auc_of_table(table, categorical=False)
        elif distinct <= _LEAKAGE_MAX_CATEGORIES:
            score = tally.auc_of_table(table, categorical=True)
        else:
            continue
        if not np.isnan(score):
            scores[column] = score
    how: dict[str, Any] = {"rows_scored": counted.rows, "from": "every row"}
    if sampled:
        size = len(counted.sample.hashes) if counted.sample else 0
        how = {
            "rows": counted.rows,
            "sampled_columns": sampled,
            "sample_rows": size,
            "sample": f"the {size} rows of smallest seeded row hash (seed {plan.seed}); the "
            f"other columns are scored on every row",
        }
    return scores, how


def checks_of(
    counted: Tally,
    duplicates: int,
    anomalies: list[dict[str, str]],
    thresholds: dict[str, Any],
    *,
    declared: Declared,
    plan: Plan,
    drift: list[dict[str, str]] | None = None,
    source: str = "source",
) -> tuple[GateResult, dict[str, Any]]:
    """Every data-quality check on the gated columns (model inputs, protected attributes,
    label), named by rule and column, from a tally; and how label leakage was scored."""
    rows = counted.rows
    label = declared.label
    checks: list[Check] = [at_least("min_rows", rows, thresholds["min_rows"], f"{rows} rows")]
    checks += [
        must_hold(f"schema[{a['column']}]", False, f"{a['short_description']}: {a['description']}")
        for a in anomalies
    ]
    for column in plan.gated:
        counts = counted.columns[column]
        nulls = counts.nulls - counts.unparsable.count
        missing = round(nulls / rows, 6) if rows else 0.0
        checks.append(at_most(f"missing_rate[{column}]", missing, thresholds["max_missing_rate"]))
        distinct = counts.distinct if counts.exact_distinct else tally.DISTINCT_CAP
        detail = "constant column" if distinct == 1 else ""
        if not counts.exact_distinct:
            detail = f"more than {tally.DISTINCT_CAP} distinct values (counted up to there)"
        checks.append(
            at_least(
                f"distinct_values[{column}]", distinct, thresholds["min_distinct_values"], detail
            )
        )
    key = list(plan.key)
    duplicate_rate = round(duplicates / rows, 6) if rows else 0.0
    checks.append(
        at_most(
            "duplicate_rate",
            duplicate_rate,
            thresholds["max_duplicate_rate"],
            f"by record key {key}" if key else "identical rows",
        )
    )
    for column, groups in declared.protected_attributes.items():
        checks += _representation(counted, column, groups, thresholds["min_group_share"])
    checks += _label_values(counted, declared, source)
    checks += _representation(counted, label, declared.label_values, thresholds["min_label_share"])
    how: dict[str, Any] = {}
    if plan.label is not None:
        scores, how = _leakage(counted, plan)
        for column in plan.scored:
            if column in scores:
                association = scores[column]
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
    return GateResult(GATE, tuple(checks)), how


def column_summary_of(counted: Tally) -> dict[str, str]:
    """One readable line per column: type, missing rate, and range or distinct values."""
    summary = {}
    for column, counts in counted.columns.items():
        line = f"{counts.kind}, missing {counts.nulls / max(counts.rows, 1):.2%}"
        if counts.numeric and counts.count:
            mean = counts.total / counts.count
            line += f", min {counts.low:.6g}, max {counts.high:.6g}, mean {mean:.6g}"
        elif counts.exact_distinct:
            line += f", {counts.distinct} distinct"
        else:
            line += f", more than {tally.DISTINCT_CAP} distinct"
        summary[column] = line
    return summary


# --- the in-memory path -----------------------------------------------------------------------


def measure_in_memory(
    data: reader.Batch, plan: Plan, baseline: reader.Batch | None, declared: Declared
) -> Measured:
    """Tally, duplicates and TFDV statistics of a table held in memory (TFDV's in-memory API
    on the Arrow table itself: no frame, no copy of the values)."""
    from concurrent.futures import ThreadPoolExecutor

    batch = data.data
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0]
    with ThreadPoolExecutor(max_workers=1) as pool:
        # TFDV's statistics (C++ sketches) beside the tally (numpy, pandas): two cores busy.
        statistics_future = pool.submit(tfdv_statistics_of, batch, plan.gated)
        factors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        counted = tally.tally_batch(batch, plan, data.unparsable, factors)
        key = duplicate_key(plan)
        if all(c in factors for c in key):
            hashes = tally.codes_hash(factors, key)
        else:
            hashes = tally.row_hash(batch, key)
        duplicates = len(hashes) - len(pd.unique(hashes))
        statistics = statistics_future.result()
    baseline_statistics = None
    if baseline is not None:
        features = tuple(c for c in drift_features(declared) if c in baseline.data.schema.names)
        baseline_statistics = tfdv_statistics_of(baseline.data, features)
    return Measured(counted, duplicates, statistics, baseline_statistics, {"path": "in-memory"})


def _arrow_of(frame: pd.DataFrame) -> pa.Table:
    """A frame as Arrow: mixed-type text columns become strings (nulls kept)."""
    converted = frame.reset_index(drop=True).rename(columns=str)
    for column in converted.columns:
        values = converted[column]
        if values.dtype == object:
            converted[column] = values.where(values.isna(), values.astype(str))
    return pa.Table.from_pandas(converted, preserve_index=False)


def _evaluate_batch(
    data: reader.Batch,
    schema: Any,
    thresholds: dict[str, Any],
    *,
    declared: Declared,
    baseline: reader.Batch | None,
    source: str,
    engine: Engine,
) -> QualityOutcome:
    names = list(data.data.schema.names)
    undeclared = [c for c in names if c not in declared.kept]
    rows = data.data.num_rows
    plan = plan_of(declared, names, engine, rows)
    measured = measure_in_memory(data, plan, baseline, declared)
    measured.engine.update(sample_rows=engine.sample_rows, seed=engine.seed)
    return verdict(
        measured,
        schema,
        thresholds,
        declared=declared,
        plan=plan,
        rows=rows,
        undeclared=undeclared,
        source=source,
    )


def evaluate_source(
    frame: pd.DataFrame,
    schema_path: Path,
    thresholds: dict[str, Any],
    *,
    declared: Declared,
    baseline: pd.DataFrame | None = None,
    source: str = "source",
) -> QualityOutcome:
    """Run the data quality gate on one source table held as a frame (its declared columns;
    the others are reported and dropped); with a baseline (the data the model was trained on,
    label encoded), also on its drift from that baseline."""
    schema = load_schema(schema_path)
    types = reader.column_types(schema)
    data = reader.normalise(_arrow_of(frame), types, frozenset())
    base = None
    if baseline is not None:
        base = reader.normalise(_arrow_of(baseline), types, frozenset())
    return _evaluate_batch(
        data,
        schema,
        thresholds,
        declared=declared,
        baseline=base,
        source=source,
        engine=engine_of(thresholds),
    )


@dataclass(frozen=True)
class GateRun:
    """The gate's outcome on a source file; `table` holds the source when it was read into
    memory (None on the Beam path)."""

    outcome: QualityOutcome
    table: pa.Table | None
    path: str


def gate_file(
    source: Path,
    schema_path: Path,
    thresholds: dict[str, Any],
    *,
    declared: Declared,
    missing_values: tuple[str, ...] = (),
    baseline: Path | None = None,
    source_name: str | None = None,
    engine: Engine | None = None,
) -> GateRun:
    """Run the data quality gate on a CSV or Parquet file: in memory (multi-threaded Arrow
    reader, TFDV's in-memory statistics), or with TFDV's Beam pipeline over batches of the
    file when the engine says so (components/data_preparation/beam_path.py). Raises
    DataSourceError when the file cannot be read as a table."""
    engine = engine or engine_of(thresholds)
    name = source_name or source.name
    schema = load_schema(schema_path)
    types = reader.column_types(schema)
    if engine.uses_beam(source):
        from components.data_preparation import beam_path

        outcome = beam_path.evaluate_file(
            source,
            schema,
            thresholds,
            declared=declared,
            missing_values=missing_values,
            baseline=baseline,
            source=name,
            engine=engine,
        )
        return GateRun(outcome, None, "beam")
    data = reader.read_arrow(source, types, missing_values)
    base = reader.read_arrow(baseline, types) if baseline is not None else None
    outcome = _evaluate_batch(
        data,
        schema,
        thresholds,
        declared=declared,
        baseline=base,
        source=name,
        engine=engine,
    )
    return GateRun(
        outcome,
        data.data if isinstance(data.data, pa.Table) else pa.Table.from_batches([data.data]),
        "in-memory",
    )


def frame_of(
    run: GateRun, source: Path, types_of: Path, missing_values: tuple[str, ...]
) -> pd.DataFrame:
    """The source as a frame, for the dataset written after the gate: the table the in-memory
    path read; on the Beam path the file is read here (the dataset step, like feature
    engineering and training, holds its data in memory)."""
    if run.table is not None:
        return run.table.to_pandas()
    types = reader.column_types(load_schema(types_of))
    data = reader.read_arrow(source, types, missing_values).data
    return data.to_pandas()


def check_quality(
    frame: pd.DataFrame,
    anomalies: list[dict[str, str]],
    thresholds: dict[str, Any],
    *,
    declared: Declared,
    drift: list[dict[str, str]] | None = None,
    source: str = "source",
) -> GateResult:
    """The data-quality checks of a frame (no schema: its columns as they are typed)."""
    data = reader.normalise(_arrow_of(frame), {}, frozenset())
    batch = data.data
    assert isinstance(batch, pa.RecordBatch)
    plan = plan_of(declared, list(batch.schema.names), Engine(), batch.num_rows)
    counted = tally.tally_batch(batch, plan, data.unparsable)
    hashes = tally.row_hash(batch, duplicate_key(plan))
    duplicates = len(hashes) - len(pd.unique(hashes))
    gate, _ = checks_of(
        counted,
        duplicates,
        anomalies,
        thresholds,
        declared=declared,
        plan=plan,
        drift=drift,
        source=source,
    )
    return gate


def label_association(values: pd.Series, label: pd.Series) -> float:
    """How well one column alone separates the label classes: max(AUC, 1 - AUC), 0.5 = not at
    all, 1.0 = perfectly (a leaked label). NaN when the column cannot be scored."""
    both = values.notna() & label.notna()
    values, encoded = values[both], label[both].astype(int).to_numpy()
    if len(values) == 0:
        return float("nan")
    numeric = pd.api.types.is_numeric_dtype(values)
    raw = values.to_numpy(dtype="float64") if numeric else values.astype(str).to_numpy()
    table = tally.table_of(raw, encoded.astype(np.float64))
    distinct = len(table[0])
    if distinct < 2:
        return float("nan")
    if numeric and distinct > _LEAKAGE_MAX_CATEGORIES:
        return tally.auc_of_table(table, categorical=False)
    if distinct <= _LEAKAGE_MAX_CATEGORIES:
        return tally.auc_of_table(table, categorical=True)
    return float("nan")


# --- frames: the dataset after the gate ------------------------------------------------------


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
