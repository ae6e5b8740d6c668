"""The data gate out of core: TFDV's Beam pipeline over typed Arrow batches of the source.

The source is split into read tasks (byte ranges of a CSV, row groups of a Parquet file), each
read by a Beam worker in batches with the schema's types (components/data_preparation/reader.py).
From the same batches the pipeline computes

- TFDV's statistics with `tfdv.GenerateStatistics` and the same StatsOptions as the in-memory
  path (sketch-based top-k and uniques), then anomalies against the declared schema;
- the gate's own checks as a mergeable tally (components/data_preparation/tally.py, a
  CombineFn): missing values, distinct values, representation, label values, label leakage
  (exact tables, or the seeded bottom-k sample of `sample_rows` rows for a column with too many
  distinct values), the bias examination's group counts;
- duplicates: 64-bit hashes of the record key (or the whole row), grouped by hash bucket, each
  bucket's distinct hashes counted;
- with a baseline, its statistics too (drift).

Nothing holds the whole dataset: the memory of a worker is bounded by a read task, the tally
(capped tables plus the sample) and one bucket of key hashes. Pipeline options come from the
policy (`data_quality.engine.beam_options`) and AIACT_BEAM_OPTIONS: DirectRunner in-process by
default; `--direct_num_workers=N --direct_running_mode=multi_processing` for several local
processes; `--runner=FlinkRunner --flink_master=HOST:8081 --environment_type=LOOPBACK` (or
PortableRunner, SparkRunner, DataflowRunner with its project/region/temp_location options) on a
cluster, where the source and AIACT_BEAM_WORK_DIR must be on storage every worker can read."""

from __future__ import annotations

import base64
import os
import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.data_preparation import core, reader, tally
from components.data_preparation.reader import Batch, DataSourceError
from components.data_preparation.tally import Plan, Tally

BUCKET_BITS = 10  # 1024 hash buckets for the duplicate count


@dataclass(frozen=True)
class ReadError:
    """A read task that failed: the message and rule of its DataSourceError."""

    message: str
    rule: str


def _read(
    task: tuple[int, int], path: str, types: dict[str, str], missing: tuple[str, ...]
) -> Iterator[Any]:
    import apache_beam as beam

    try:
        yield from reader.read_task(Path(path), task, types, missing)
    except DataSourceError as exc:
        yield beam.pvalue.TaggedOutput("errors", ReadError(str(exc), exc.rule))


def _bucketed_hashes(batch: Batch, columns: tuple[str, ...]) -> Iterator[tuple[int, np.ndarray]]:
    data = batch.data
    assert not isinstance(data, type(None))
    hashes = np.unique(tally.row_hash(data, columns))
    buckets = (hashes >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    for start, end in zip(starts, [*starts[1:], len(hashes)], strict=True):
        yield int(buckets[start]), hashes[start:end]


def _distinct(item: tuple[int, Any]) -> int:
    return len(np.unique(np.concatenate(list(item[1]))))


def _tally_fn(plan: Plan) -> Any:
    import apache_beam as beam

    class TallyFn(beam.CombineFn):
        """The gate's tally of every batch."""

        def create_accumulator(self) -> Tally:
            return Tally()

        def add_input(self, accumulator: Tally, batch: Batch) -> Tally:
            data = batch.data
            part = tally.tally_batch(data, plan, batch.unparsable)
            return tally.merge([accumulator, part], plan)

        def merge_accumulators(self, accumulators: Any) -> Tally:
            return tally.merge(list(accumulators), plan)

        def extract_output(self, accumulator: Tally) -> Tally:
            return accumulator

    return TallyFn()


def _write_pickled(path: str) -> Any:
    import apache_beam as beam

    return (
        "Encode" >> beam.Map(lambda value: base64.b64encode(pickle.dumps(value)).decode())
    ) | "Write" >> beam.io.WriteToText(path, shard_name_template="")


def _read_pickled(path: str) -> Any:
    return pickle.loads(base64.b64decode(Path(path).read_text().strip()))


def _statistics(batches: Any, columns: tuple[str, ...], out: str, label: str) -> None:
    import apache_beam as beam
    import tensorflow_data_validation as tfdv

    _ = (
        batches
        | f"{label}ToTFDV" >> beam.Map(lambda b: core.tfdv_batch(b.data, columns))
        | f"{label}Statistics" >> tfdv.GenerateStatistics(core.stats_options())
        | f"{label}Write" >> tfdv.WriteStatisticsToBinaryFile(out)
    )


def _read_source(
    pipeline: Any,
    label: str,
    path: Path,
    tasks: list[tuple[int, int]],
    types: dict[str, str],
    missing: tuple[str, ...],
) -> Any:
    import apache_beam as beam

    return (
        pipeline
        | f"{label}Tasks" >> beam.Create(tasks)
        | f"{label}Spread" >> beam.Reshuffle()
        | f"{label}Read"
        >> beam.FlatMap(_read, str(path), types, missing).with_outputs("errors", main="batches")
    )


def source_columns(path: Path) -> list[str]:
    """The (stripped) column names of a CSV or Parquet source."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return [str(n).strip() for n in pq.ParquetFile(path).schema_arrow.names]
    return reader.csv_header(path)[0]


def evaluate_file(
    path: Path,
    schema: Any,
    thresholds: dict[str, Any],
    *,
    declared: core.Declared,
    missing_values: tuple[str, ...],
    baseline: Path | None,
    source: str,
    engine: core.Engine,
) -> core.QualityOutcome:
    """The data quality gate on a file, every check out of core on Beam."""
    import apache_beam as beam
    import tensorflow_data_validation as tfdv
    from apache_beam.options.pipeline_options import PipelineOptions

    types = reader.column_types(schema)
    tasks = reader.split_source(path, engine.chunk_bytes)  # format, empty, header checks
    try:
        names = source_columns(path)
    except (OSError, ValueError) as exc:
        raise DataSourceError(f"{path.name}: cannot be read as a table: {exc}") from exc
    plan = core.plan_of(declared, names, engine, None)
    key = core.duplicate_key(plan)
    work_root = os.environ.get("AIACT_BEAM_WORK_DIR") or None
    with tempfile.TemporaryDirectory(prefix="aiact-beam-", dir=work_root) as work:
        out = {n: os.path.join(work, n) for n in ("stats", "base", "tally", "distinct", "errors")}
        with beam.Pipeline(options=PipelineOptions(list(engine.beam_options))) as pipeline:
            read = _read_source(pipeline, "", path, tasks, types, missing_values)
            batches = read.batches
            _statistics(batches, plan.gated, out["stats"], "")
            _ = (
                batches
                | "Tally" >> beam.CombineGlobally(_tally_fn(plan))
                | "TallyOut" >> _write_pickled(out["tally"])
            )
            _ = (
                batches
                | "KeyHashes" >> beam.FlatMap(_bucketed_hashes, key)
                | "ByBucket" >> beam.GroupByKey()
                | "Distinct" >> beam.Map(_distinct)
                | "AllDistinct" >> beam.CombineGlobally(sum)
                | "DistinctOut" >> _write_pickled(out["distinct"])
            )
            errors = read.errors
            if baseline is not None:
                base = _read_source(
                    pipeline,
                    "Base",
                    baseline,
                    reader.split_source(baseline, engine.chunk_bytes),
                    types,
                    (),
                )
                features = core.drift_features(declared)
                _statistics(base.batches, features, out["base"], "Base")
                errors = (errors, base.errors) | "AllErrors" >> beam.Flatten()
            _ = (
                errors
                | "ErrorList" >> beam.combiners.ToList()
                | "ErrorsOut" >> _write_pickled(out["errors"])
            )
        failures: list[ReadError] = _read_pickled(out["errors"])
        if failures:
            first = sorted(failures, key=lambda e: e.message)[0]
            raise DataSourceError(first.message, first.rule)
        counted: Tally = _read_pickled(out["tally"])
        if counted.rows == 0:
            raise DataSourceError(f"{path.name}: cannot be read as a table: no rows")
        distinct: int = _read_pickled(out["distinct"])
        statistics = tfdv.load_stats_binary(out["stats"])
        baseline_statistics = tfdv.load_stats_binary(out["base"]) if baseline else None
    measured = core.Measured(
        counted,
        counted.rows - distinct,
        statistics,
        baseline_statistics,
        {
            "path": "beam",
            "beam_options": list(engine.beam_options),
            "read_tasks": len(tasks),
            "sample_rows": engine.sample_rows,
            "seed": engine.seed,
        },
    )
    return core.verdict(
        measured,
        schema,
        thresholds,
        declared=declared,
        plan=plan,
        rows=counted.rows,
        undeclared=[c for c in names if c not in declared.kept],
        source=source,
    )
