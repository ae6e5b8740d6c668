"""The Beam path's one-pass measurement of a read task (components/data_preparation/beam_path.py)
against the tally of the whole table, and the hashing shortcuts it takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from aiact.refdata import CATEGORIES, generate_credit_data
from aiact.specs import load_feature_spec
from aiact.usecase import BUNDLED_USE_CASE, load_use_case
from components.data_preparation import beam_path, core, reader, tally
from components.data_preparation.schema import draft_schema

CREDIT = core.declared_of(load_use_case("", BUNDLED_USE_CASE))
TYPES: dict[str, str] = {}  # the drafted schema's column types (the source fixture sets them)


def test_row_hash_from_factorisations_equals_the_hash_of_the_values() -> None:
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([1, None, 3, 3, 0]),
            pa.array([1.5, float("nan"), None, -0.0, 0.0]),
            pa.array(["a", None, "b", "a", ""]),
            pa.array([True, False, None, True, True]),
        ],
        names=["i", "f", "s", "b"],
    )
    names = tuple(batch.schema.names)
    factors = {n: tally.factorize(batch.column(n)) for n in names}
    plain = tally.row_hash(batch, names)
    assert np.array_equal(tally.row_hash(batch, names, factors), plain)
    # null and NaN hash alike, -0.0 as 0.0; rows that differ hash apart
    assert plain[1] != plain[2] and plain[3] != plain[4]
    hashed = tally.row_hash(batch, ("f",), factors)
    assert hashed[1] == hashed[2] and hashed[3] == hashed[4] and hashed[0] != hashed[1]


def test_factor_codes_are_int32_and_intersections_count_as_with_int64() -> None:
    """The gate keeps one code array per column while it runs: int32 codes (half its memory),
    and the groups and intersections counted from them are those of the values themselves."""
    rng = np.random.default_rng(5)
    first = pa.array(rng.integers(0, 300, 50_000).astype(float))
    second = pa.array([f"g{v}" for v in rng.integers(0, 200, 50_000)])
    label = pa.array(rng.choice(["good", "bad"], 50_000))
    for values in (first, second):
        codes, uniques = tally.factorize(values)
        assert codes.dtype == np.int32
        assert np.array_equal(np.asarray(uniques)[codes], values.to_numpy(zero_copy_only=False))
    batch = pa.RecordBatch.from_arrays([first, second, label], names=["a", "b", "y"])
    plan = tally.Plan(
        kept=("a", "b", "y"),
        gated=("a", "b"),
        label="y",
        favourable="good",
        protected=("a", "b"),
        key=("a", "b", "y"),
        sample_rows=None,
        seed=0,
    )
    counted = tally.tally_batch(batch, plan, {})
    cells = counted.groups[f"a{tally.INTERSECTION}b"]
    pairs: dict[str, tuple[int, int]] = {}
    for a, b, y in zip(first.to_pylist(), second.to_pylist(), label.to_pylist(), strict=True):
        key = f"{tally.as_key(a)}{tally.INTERSECTION}{b}"
        rows, good = pairs.get(key, (0, 0))
        pairs[key] = (rows + 1, good + (y == "good"))
    assert {k: (int(v[0]), int(v[2])) for k, v in cells.items()} == pairs


def _plan(path: Path) -> tally.Plan:
    engine = core.Engine(beam=True, sample_rows=300, leakage_cap=200)
    return core.plan_of(CREDIT, beam_path.source_columns(path), engine, None)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("measure") / "credit.csv"
    frame = generate_credit_data(3000, seed=3)
    frame = frame.iloc[list(range(3000)) + list(range(40))]  # 40 duplicate rows
    frame.to_csv(path, index=False)
    schema = draft_schema(frame, load_feature_spec("credit"), CATEGORIES)
    TYPES.update(reader.column_types(schema))
    return path


def _measure_all(
    path: Path, plan: tally.Plan, chunk: int, spill: Path
) -> tuple[tally.Tally, int, int, list[str]]:
    spill.mkdir()
    measure = beam_path.Measure(str(path), TYPES, (), plan, plan.gated, str(spill))
    parts, files, statistics_rows = [], [], 0
    for task in reader.split_source(path, chunk):
        for item in measure(task):
            tag = getattr(item, "tag", None)
            if tag == "tally":
                parts.append(item.value)
            elif tag == "hashes":
                files.append(item.value)
            else:
                assert tag is None, item
                statistics_rows += item.num_rows
    distinct = sum(beam_path._distinct(item) for item in beam_path._ranges(files))
    return tally.finished(tally.merge(parts, plan)), distinct, statistics_rows, files


def test_measured_tasks_merge_to_the_tally_of_the_whole_table(source: Path, tmp_path: Path) -> None:
    plan = _plan(source)
    whole = reader.read_arrow(source, TYPES).data
    batch = whole.combine_chunks().to_batches()[0] if isinstance(whole, pa.Table) else whole
    expected = tally.tally_batch(batch, plan, {})
    many, distinct, seen, files = _measure_all(source, plan, 16 * 1024, tmp_path / "a")
    one, distinct_one, _, _ = _measure_all(source, plan, 1 << 30, tmp_path / "b")  # one task
    assert seen == 3040 and many.rows == one.rows == expected.rows == 3040
    assert len(files) > 3 and distinct == distinct_one == 3000
    for name, column in expected.columns.items():
        for got in (many.columns[name], one.columns[name]):
            assert (got.nulls, got.counts, got.count) == (column.nulls, column.counts, column.count)
            assert got.total == pytest.approx(column.total)
    assert many.groups.keys() == expected.groups.keys()
    for name, groups in expected.groups.items():
        assert {k: v.tolist() for k, v in many.groups[name].items()} == {
            k: v.tolist() for k, v in groups.items()
        }
    assert expected.sample is not None and many.sample is not None
    assert np.array_equal(np.sort(many.sample.hashes), np.sort(expected.sample.hashes))
    overflowed = {n for n, t in many.leakage.items() if t is None}
    assert overflowed and overflowed < set(expected.sample.columns)
    # the finished tally keeps exactly the sample columns the leakage scoring reads
    assert set(many.sample.columns) == overflowed
    order_many, order_expected = np.argsort(many.sample.hashes), np.argsort(expected.sample.hashes)
    for name in overflowed:
        assert np.array_equal(
            many.sample.columns[name][order_many],
            expected.sample.columns[name][order_expected],
            equal_nan=True,
        )


def test_duplicates_count_the_same_over_any_number_of_hash_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    distinct = rng.integers(0, 2**64 - 1, 5000, dtype=np.uint64, endpoint=True)
    distinct[:2] = (0, 2**64 - 1)  # the ends of the hash space
    files = [
        beam_path._spill(rng.choice(distinct, 3000), str(tmp_path), (task, task + 1))
        for task in range(4)
    ]
    files.append(beam_path._spill(distinct[:2], str(tmp_path), (9, 10)))
    expected = len(np.unique(np.concatenate([np.load(f) for f in files])))
    assert beam_path._ranges(files)[0][1] == 0  # a few KiB: one range
    counts = {}
    for size in (1 << 30, 4096, 100):
        monkeypatch.setattr(beam_path, "RANGE_BYTES", size)
        ranges = beam_path._ranges(files)
        counts[len(ranges)] = sum(beam_path._distinct(item) for item in ranges)
    assert len(counts) == 3 and 1 in counts and set(counts.values()) == {expected}
