"""The data gate's own checks as a mergeable summary of Arrow batches.

A Tally is built from one batch (the whole table on the in-memory path) or from many (Beam's
CombineFn on the out-of-core path) and merged; every check of the gate is then computed from
the merged tally, so both paths reach their verdicts from the same numbers:

- per column: rows, nulls, unparsable values, numeric count/sum/min/max, and exact value
  counts while the column has at most DISTINCT_CAP distinct values (beyond, "more than");
- per scored column (label leakage): exact (value -> positives, negatives) counts while the
  column has at most LEAKAGE_CAP distinct values, else the score comes from a seeded sample;
- the seeded sample: the `sample_rows` rows whose seeded row hash is smallest (bottom-k), so it
  is the same set of rows however the data is batched or ordered; on data with at most
  `sample_rows` rows it is every row, and its size is recorded in the evidence;
- per protected attribute and per pair of them: rows, labelled rows and favourable rows of
  every group (the bias examination, Art. 10(2)(f)).

Duplicates are counted from 64-bit hashes of the record key (or of the whole row): exactly in
memory, from sorted hash files by ranges of the hash space on Beam
(components/data_preparation/beam_path.py)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from components.data_preparation.bias import INTERSECTION, MISSING_GROUP
from components.data_preparation.reader import Unparsable

DISTINCT_CAP = 10_000
LEAKAGE_CAP = 100_000
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def as_key(value: Any) -> str:
    """A value as the schema spells it (1.0 read back from CSV is the class '1')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return as_key(value.item())
    return str(value)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * _M1
        h = (h ^ (h >> np.uint64(27))) * _M2
        return h ^ (h >> np.uint64(31))


_NULL_TEXT = np.uint64(0x51ED270B27B5E4D3)


def _number_hash(numbers: np.ndarray) -> np.ndarray:
    numbers = np.where(np.isnan(numbers), np.nan, numbers + 0.0)  # one NaN, no -0.0
    return _mix(numbers.view(np.uint64) ^ _GOLDEN)


def _factor_hash(values: pa.Array, factor: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    """column_hash of a column from its factorisation (the hash of each distinct value, taken
    by code: no second pass over the values); None for a type column_hash treats otherwise."""
    codes, uniques = factor
    if _is_numeric(values):
        table = np.append(
            _number_hash(uniques.astype(np.float64)), _number_hash(np.full(1, np.nan))
        )
    elif pa.types.is_string(values.type):
        table = pd.util.hash_array(uniques.astype(object), categorize=False).astype(np.uint64)
        table = np.append(table, _NULL_TEXT)
    else:
        return None
    return table[codes]  # code -1 (null, NaN): the last entry


def column_hash(values: pa.Array) -> np.ndarray:
    """A stable 64-bit hash of every value (equal values, equal hashes; nulls one value)."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return _number_hash(values.cast(pa.float64()).to_numpy(zero_copy_only=False))
    if pa.types.is_boolean(values.type):
        values = values.cast(pa.int8()).cast(pa.string())
    encoded = values.cast(pa.string()).dictionary_encode()
    words = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    table = pd.util.hash_array(words, categorize=False).astype(np.uint64)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    table = np.append(table, _NULL_TEXT)  # index -1: null
    return table[codes]


def row_hash(
    batch: pa.RecordBatch,
    columns: tuple[str, ...],
    factors: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """A 64-bit hash of each row's values in `columns` (stable: the same values give the same
    hash in any batch); `factors` (tally_batch's factorisations) spare a pass over a column."""
    h = np.full(batch.num_rows, np.uint64(len(columns)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in columns:
            values = batch.column(name)
            hashed = None
            if factors is not None and name in factors:
                hashed = _factor_hash(values, factors[name])
            if hashed is None:
                hashed = column_hash(values)
            h = _mix(h * _GOLDEN + hashed)
    return h


@dataclass(frozen=True)
class Plan:
    """What to tally: the declared columns present and the roles they play."""

    kept: tuple[str, ...]
    gated: tuple[str, ...]
    label: str | None
    favourable: str
    protected: tuple[str, ...]
    key: tuple[str, ...]
    sample_rows: int | None
    seed: int
    leakage_cap: int | None = LEAKAGE_CAP  # None: keep every (value, label) table

    @property
    def scored(self) -> tuple[str, ...]:
        """The columns scored for label leakage."""
        return tuple(c for c in self.gated if c != self.label) if self.label else ()


@dataclass
class ColumnTally:
    rows: int = 0
    nulls: int = 0
    numeric: bool = False
    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    counts: dict[Any, int] | None = field(default_factory=dict)
    more_than: int = 0  # distinct values seen when counts overflowed (a lower bound)
    unparsable: Unparsable = field(default_factory=Unparsable)
    kind: str = ""

    @property
    def distinct(self) -> int:
        return len(self.counts) if self.counts is not None else self.more_than

    @property
    def exact_distinct(self) -> bool:
        return self.counts is not None


Table3 = tuple[np.ndarray, np.ndarray, np.ndarray]  # values, positives, negatives


def table_of(values: np.ndarray, label: np.ndarray) -> Table3:
    """(value, positives, negatives) of each distinct value (`label`: 1.0 positive)."""
    uniques, inverse = np.unique(values, return_inverse=True)
    positives = np.bincount(inverse, weights=label, minlength=len(uniques))
    totals = np.bincount(inverse, minlength=len(uniques))
    return uniques, positives.astype(np.int64), (totals - positives).astype(np.int64)


def _merge_tables(tables: list[Table3]) -> Table3:
    values = np.concatenate([t[0] for t in tables])
    uniques, inverse = np.unique(values, return_inverse=True)
    positives = np.bincount(inverse, np.concatenate([t[1] for t in tables]), len(uniques))
    negatives = np.bincount(inverse, np.concatenate([t[2] for t in tables]), len(uniques))
    return uniques, positives.astype(np.int64), negatives.astype(np.int64)


@dataclass
class Sample:
    """The bottom-k rows by seeded row hash: their hashes, scored columns and encoded label."""

    hashes: np.ndarray
    columns: dict[str, np.ndarray]
    label: np.ndarray

    def bottom(self, k: int) -> Sample:
        if len(self.hashes) <= k:
            return self
        keep = np.argpartition(self.hashes, k - 1)[:k]
        return Sample(
            self.hashes[keep], {c: v[keep] for c, v in self.columns.items()}, self.label[keep]
        )


GroupCounts = dict[Any, np.ndarray]  # group key -> [rows, labelled, favourable]


@dataclass
class Tally:
    rows: int = 0
    columns: dict[str, ColumnTally] = field(default_factory=dict)
    leakage: dict[str, Table3 | None] = field(default_factory=dict)
    groups: dict[str, GroupCounts] = field(default_factory=dict)
    sample: Sample | None = None


def _numeric_values(values: pa.Array) -> np.ndarray:
    return values.cast(pa.float64()).to_numpy(zero_copy_only=False)


def _is_numeric(values: pa.Array) -> bool:
    return bool(pa.types.is_integer(values.type) or pa.types.is_floating(values.type))


def factorize(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each row's code (-1: null or NaN) and the distinct values, in order of appearance
    (hash based: no sort)."""
    if _is_numeric(values):
        codes, uniques = pd.factorize(_numeric_values(values), use_na_sentinel=True)
        return _narrow(codes, len(uniques)), np.asarray(uniques, dtype=np.float64)
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    encoded = values.dictionary_encode()  # int32 indices
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return codes, encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)


def _narrow(codes: np.ndarray, distinct: int) -> np.ndarray:
    """Codes (each below `distinct`) as int32 where they fit: half the memory of the int64
    pandas gives, and the gate holds one code array per column while it runs."""
    return codes if distinct > np.iinfo(np.int32).max else codes.astype(np.int32)


def _keys(values: pa.Array) -> np.ndarray:
    """Each row's value as the schema spells it (as_key), nulls as MISSING_GROUP."""
    codes, uniques = factorize(values)
    names = np.array([as_key(u) for u in uniques] + [MISSING_GROUP], dtype=object)
    return names[codes]


def encoded_label(batch: pa.RecordBatch, plan: Plan) -> np.ndarray:
    """1 for the favourable label, 0 for another, -1 where the label is missing."""
    assert plan.label is not None
    codes, uniques = factorize(batch.column(plan.label))
    favourable = np.array([as_key(u) == plan.favourable for u in uniques] + [False])
    return np.where(codes < 0, -1, favourable[codes].astype(np.int8)).astype(np.int8)


def _group_counts(codes: np.ndarray, names: list[str], label: np.ndarray) -> GroupCounts:
    """Rows, labelled rows and favourable rows per group code (-1: missing)."""
    size = len(names) + 1
    index = np.where(codes < 0, size - 1, codes)
    rows = np.bincount(index, minlength=size)
    labelled = np.bincount(index, weights=label >= 0, minlength=size)
    favourable = np.bincount(index, weights=label == 1, minlength=size)
    counts: GroupCounts = {}
    for i, name in enumerate([*names, MISSING_GROUP]):
        if rows[i]:
            row = np.array([rows[i], labelled[i], favourable[i]], dtype=np.int64)
            counts[name] = counts[name] + row if name in counts else row
    return counts


def codes_hash(
    factors: dict[str, tuple[np.ndarray, np.ndarray]], columns: tuple[str, ...]
) -> np.ndarray:
    """A 64-bit hash of each row's value codes in `columns`: equal rows, equal hashes within
    one factorised table (the in-memory duplicate count; row_hash is the stable one)."""
    rows = len(next(iter(factors.values()))[0]) if factors else 0
    h = np.full(rows, np.uint64(len(columns)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in columns:
            h = _mix(h * _GOLDEN + factors[name][0].astype(np.uint64))
    return h


def tally_batch(
    batch: pa.RecordBatch,
    plan: Plan,
    unparsable: dict[str, Unparsable],
    factors: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    kept_hash: np.ndarray | None = None,
) -> Tally:
    """The tally of one batch: one factorisation (hash, no sort) per column serves its value
    counts, its leakage table, its groups and the sample's row hashes (kept in `factors` when
    given); `kept_hash`: row_hash of the kept columns, when the caller has it already."""
    tally = Tally(rows=batch.num_rows)
    present = set(batch.schema.names)
    label = None
    if plan.label is not None and plan.label in present:
        label = encoded_label(batch, plan)
    factors = {} if factors is None else factors
    for name in plan.kept:
        if name not in present:
            continue
        values = batch.column(name)
        if name not in factors:
            factors[name] = factorize(values)
        codes, uniques = factors[name]
        column = ColumnTally(
            rows=batch.num_rows, nulls=int((codes < 0).sum()), kind=str(values.type)
        )
        column.unparsable = unparsable.get(name, Unparsable())
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        if _is_numeric(values):
            column.numeric = True
            column.count = int(counts.sum())
            if column.count:
                column.total = float(np.dot(uniques, counts))
                column.squares = float(np.dot(uniques * uniques, counts))
                column.low, column.high = float(uniques.min()), float(uniques.max())
        if len(uniques) > DISTINCT_CAP:
            column.more_than, column.counts = len(uniques), None
        else:
            column.counts = dict(zip(uniques.tolist(), counts.tolist(), strict=True))
        tally.columns[name] = column
    if label is None:
        return tally
    labelled = label >= 0
    positive = (label == 1).astype(np.float64)
    for name in plan.scored:
        if name not in factors:
            continue
        codes, uniques = factors[name]
        valid = labelled & (codes >= 0)
        totals = np.bincount(codes[valid], minlength=len(uniques))
        positives = np.bincount(codes[valid], weights=positive[valid], minlength=len(uniques))
        keep = totals > 0
        cap = plan.leakage_cap
        if cap is not None and int(keep.sum()) > cap:
            tally.leakage[name] = None
            continue
        pos = positives[keep].astype(np.int64)
        tally.leakage[name] = (uniques[keep], pos, totals[keep].astype(np.int64) - pos)
    names = {a: [as_key(u) for u in factors[a][1]] for a in plan.protected if a in factors}
    for attribute in names:
        tally.groups[attribute] = _group_counts(factors[attribute][0], names[attribute], label)
    for first, second in itertools.combinations(names, 2):
        width = len(names[second]) + 1
        first_codes, second_codes = factors[first][0], factors[second][0]
        a = np.where(first_codes < 0, len(names[first]), first_codes).astype(np.int64)
        b = np.where(second_codes < 0, len(names[second]), second_codes)
        cells = [
            f"{x}{INTERSECTION}{y}"
            for x in [*names[first], MISSING_GROUP]
            for y in [*names[second], MISSING_GROUP]
        ]
        combined = a * width + b
        cell_counts = _group_counts(combined, cells, label)
        cell_counts.pop(MISSING_GROUP, None)  # no combined code is -1
        tally.groups[f"{first}{INTERSECTION}{second}"] = cell_counts
    if plan.sample_rows is not None:
        numeric = [n for n in plan.scored if n in present and _is_numeric(batch.column(n))]
        if kept_hash is None:
            kept_hash = row_hash(batch, plan.kept, factors)
        hashes = _mix(kept_hash ^ _mix(np.full(1, np.uint64(plan.seed)))[0])
        tally.sample = Sample(
            hashes, {n: _numeric_values(batch.column(n)) for n in numeric}, label
        ).bottom(plan.sample_rows)
    return tally


def _merge_columns(a: ColumnTally, b: ColumnTally) -> ColumnTally:
    merged = ColumnTally(
        rows=a.rows + b.rows,
        nulls=a.nulls + b.nulls,
        numeric=a.numeric or b.numeric,
        kind=a.kind or b.kind,
        count=a.count + b.count,
        total=a.total + b.total,
        squares=a.squares + b.squares,
        low=min(a.low, b.low),
        high=max(a.high, b.high),
    )
    merged.unparsable = Unparsable(a.unparsable.count, list(a.unparsable.examples))
    merged.unparsable.merge(b.unparsable)
    if a.counts is not None and b.counts is not None:
        counts = dict(a.counts)
        for k, v in b.counts.items():
            counts[k] = counts.get(k, 0) + v
        if len(counts) > DISTINCT_CAP:
            merged.more_than = len(counts)
        else:
            merged.counts = counts
    else:
        merged.counts = None
        merged.more_than = max(a.distinct, b.distinct, DISTINCT_CAP + 1)
    if merged.counts is not None:
        merged.more_than = 0
    return merged


def merge(tallies: list[Tally], plan: Plan) -> Tally:
    """One tally of all the batches."""
    tallies = [t for t in tallies if t is not None]
    if len(tallies) == 1:
        return tallies[0]
    merged = Tally(rows=sum(t.rows for t in tallies))
    for tally in tallies:
        for name, column in tally.columns.items():
            merged.columns[name] = (
                _merge_columns(merged.columns[name], column) if name in merged.columns else column
            )
    names = {n for t in tallies for n in t.leakage}
    for name in sorted(names):
        parts = [t.leakage.get(name) for t in tallies if name in t.leakage]
        if any(p is None for p in parts):
            merged.leakage[name] = None
            continue
        table = _merge_tables([p for p in parts if p is not None])
        cap = plan.leakage_cap
        merged.leakage[name] = table if cap is None or len(table[0]) <= cap else None
    for tally in tallies:
        for name, counts in tally.groups.items():
            target = merged.groups.setdefault(name, {})
            for key, row in counts.items():
                target[key] = target[key] + row if key in target else row.copy()
    samples = [t.sample for t in tallies if t.sample is not None]
    sample_rows = plan.sample_rows
    if samples and sample_rows is not None:
        names_ = list(samples[0].columns)
        merged.sample = Sample(
            np.concatenate([s.hashes for s in samples]),
            {n: np.concatenate([s.columns[n] for s in samples]) for n in names_},
            np.concatenate([s.label for s in samples]),
        ).bottom(sample_rows)
    return merged


def finished(tally: Tally) -> Tally:
    """The merged tally with only the sample columns the leakage scoring reads: those whose
    exact table overflowed (a table never comes back once it has)."""
    sample = tally.sample
    if sample is None:
        return tally
    used = {
        n: v for n, v in sample.columns.items() if n in tally.leakage and tally.leakage[n] is None
    }
    return replace(tally, sample=Sample(sample.hashes, used, sample.label))


def auc_of_table(table: Table3, categorical: bool) -> float:
    """max(AUC, 1 - AUC) of the column's values (categorical: of each value's label rate)
    against the label; ties get the average rank. NaN when one class is absent."""
    values, positives, negatives = table
    if not categorical:
        order = np.argsort(values, kind="stable")
        positives, negatives = positives[order], negatives[order]
    else:
        rates = positives / np.maximum(positives + negatives, 1)
        order = np.argsort(rates, kind="stable")
        rates, positives, negatives = rates[order], positives[order], negatives[order]
        # equal rates tie: group them
        starts = np.flatnonzero(np.r_[True, rates[1:] != rates[:-1]])
        positives = np.add.reduceat(positives, starts)
        negatives = np.add.reduceat(negatives, starts)
    total_pos, total_neg = int(positives.sum()), int(negatives.sum())
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    below = np.cumsum(negatives) - negatives  # negatives with a strictly smaller score
    wins = (positives * below).sum() + 0.5 * (positives * negatives).sum()
    auc = float(wins) / (total_pos * total_neg)
    return float(max(auc, 1.0 - auc))
