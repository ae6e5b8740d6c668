"""The data gate out of core: TFDV's Beam pipeline over typed Arrow batches of the source.

The source is split into read tasks (byte ranges of a CSV, row groups of a Parquet file), each
read by a Beam worker in batches with the schema's types (components/data_preparation/reader.py).
One pass over each batch (Measure) gives

- the batch as TFDV sees it, for `tfdv.GenerateStatistics` with the same StatsOptions as the
  in-memory path (sketch-based top-k and uniques), then anomalies against the declared schema;
- the gate's own checks as a mergeable tally (components/data_preparation/tally.py), merged over
  the task's batches and then over the tasks (a CombineFn): missing values, distinct values,
  representation, label values, label leakage (exact tables, or the seeded bottom-k sample of
  `sample_rows` rows for a column with too many distinct values), the bias examination's group
  counts; one factorisation per column serves all of them and the rows' hashes;
- duplicates: the task's distinct 64-bit hashes of the record key (or the whole row: the same
  hash as the sample's), sorted, in one file of the work directory per task; once every task
  has written its file, the hash space is cut into ranges of ~RANGE_BYTES of hashes and each
  range's distinct hashes are counted from the slices of every file (a binary search each);
- with a baseline, its statistics too (drift).

Memory: a worker holds one read task's batches (chunk_bytes of source), the tally (capped tables
plus the sample), TFDV's sketches and, when counting duplicates, one range of hashes: nothing
grows with the data. The hash files take 8 bytes per distinct row of disk in the work directory
(AIACT_BEAM_WORK_DIR, else the system's temporary directory), removed after the run.

Pipeline options come from the policy (`data_quality.engine.beam_options`) and
AIACT_BEAM_OPTIONS: DirectRunner in-process by default (one process: TFDV is imported once);
`--direct_num_workers=N --direct_running_mode=multi_processing` for several local processes
(each imports TFDV again, ~640 MB apiece); `--runner=FlinkRunner --flink_master=HOST:8081
--environment_type=LOOPBACK` (or PortableRunner, SparkRunner, DataflowRunner with its
project/region/temp_location options) on a cluster, where the source and AIACT_BEAM_WORK_DIR
must be on storage every worker can read."""

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
from components.data_preparation.reader import DataSourceError
from components.data_preparation.tally import Plan, Tally

RANGE_BYTES = 16 * 2**20  # the duplicate count reads at most ~this many hash bytes at once


@dataclass(frozen=True)
class ReadError:
    """A read task that failed: the message and rule of its DataSourceError."""

    message: str
    rule: str


def _spill(hashes: np.ndarray, spill: str, task: tuple[int, int]) -> str:
    """The task's distinct hashes, sorted, written to a file of the work directory (atomic:
    a retried task writes the same file again)."""
    name = os.path.join(spill, f"hashes-{task[0]}-{task[1]}.npy")
    partial = f"{name}.{os.getpid()}.partial"
    with open(partial, "wb") as handle:
        np.save(handle, np.unique(hashes))
    os.replace(partial, name)
    return name


def _ranges(files: list[str]) -> list[tuple[int, int, tuple[str, ...]]]:
    """The hash space cut into 2**bits ranges, enough that each holds ~RANGE_BYTES of hashes."""
    total = sum(os.path.getsize(f) for f in files)
    bits = min(16, max(0, int(np.ceil(np.log2(max(total / RANGE_BYTES, 1.0))))))
    return [(r, bits, tuple(sorted(files))) for r in range(2**bits)]


def _distinct(item: tuple[int, int, tuple[str, ...]]) -> int:
    """Distinct hashes in one range of the hash space, over every task's sorted hash file."""
    index, bits, files = item
    shift = np.uint64(64 - bits) if bits else None
    parts = []
    for name in files:
        hashes = np.load(name, mmap_mode="r")
        if shift is None:
            parts.append(np.array(hashes))
            continue
        low = np.searchsorted(hashes, np.uint64(index) << shift)
        last = index == 2**bits - 1
        high = len(hashes) if last else np.searchsorted(hashes, np.uint64(index + 1) << shift)
        parts.append(np.array(hashes[low:high]))
        del hashes
    return len(np.unique(np.concatenate(parts))) if parts else 0


@dataclass(frozen=True)
class Measure:
    """What one read task measures, in one pass over each of its batches: the batches TFDV
    sees (main output), the task's merged tally ("tally") and the file of its sorted distinct
    key hashes in `spill` ("hashes"), or the failure of the read ("errors")."""

    path: str
    types: dict[str, str]
    missing: tuple[str, ...]
    plan: Plan | None  # None: statistics only (the baseline)
    columns: tuple[str, ...]  # the columns TFDV sees
    spill: str  # the directory of the hash files (on storage every worker can reach)

    def __call__(self, task: tuple[int, int]) -> Iterator[Any]:
        import apache_beam as beam

        plan, parts, hashes = self.plan, [], []
        try:
            for batch in reader.read_task(Path(self.path), task, self.types, self.missing):
                data = batch.data
                yield core.tfdv_batch(data, self.columns)
                if plan is None:
                    continue
                key = core.duplicate_key(plan)
                factors = {n: tally.factorize(data.column(n)) for n in plan.kept}
                kept = tally.row_hash(data, plan.kept, factors)
                # one factorisation per column and one row hash serve the tally, the
                # sample and (without a record key) the duplicates
                parts.append(tally.tally_batch(data, plan, batch.unparsable, factors, kept))
                hashes.append(kept if key == plan.kept else tally.row_hash(data, key, factors))
                if len(parts) > 1:
                    parts = [tally.merge(parts, plan)]
        except DataSourceError as exc:
            yield beam.pvalue.TaggedOutput("errors", ReadError(str(exc), exc.rule))
            return
        if parts:
            yield beam.pvalue.TaggedOutput("tally", parts[0])
        if hashes:
            yield beam.pvalue.TaggedOutput(
                "hashes", _spill(np.concatenate(hashes), self.spill, task)
            )


def _tally_fn(plan: Plan) -> Any:
    import apache_beam as beam

    class TallyFn(beam.CombineFn):
        """The gate's tally of every read task."""

        def create_accumulator(self) -> Tally:
            return Tally()

        def add_input(self, accumulator: Tally, part: Tally) -> Tally:
            return tally.merge([accumulator, part], plan)

        def merge_accumulators(self, accumulators: Any) -> Tally:
            return tally.merge(list(accumulators), plan)

        def extract_output(self, accumulator: Tally) -> Tally:
            return tally.finished(accumulator)

    return TallyFn()


def _write_pickled(path: str) -> Any:
    import apache_beam as beam

    return (
        "Encode" >> beam.Map(lambda value: base64.b64encode(pickle.dumps(value)).decode())
    ) | "Write" >> beam.io.WriteToText(path, shard_name_template="")


def _read_pickled(path: str) -> Any:
    return pickle.loads(base64.b64decode(Path(path).read_text().strip()))


def _statistics(batches: Any, out: str, label: str) -> None:
    import tensorflow_data_validation as tfdv

    _ = (
        batches
        | f"{label}Statistics" >> tfdv.GenerateStatistics(core.stats_options())
        | f"{label}Write" >> tfdv.WriteStatisticsToBinaryFile(out)
    )


def _measure_source(
    pipeline: Any, label: str, tasks: list[tuple[int, int]], measure: Measure
) -> Any:
    import apache_beam as beam

    return (
        pipeline
        | f"{label}Tasks" >> beam.Create(tasks)
        | f"{label}Spread" >> beam.Reshuffle()
        | f"{label}Measure"
        >> beam.FlatMap(measure).with_outputs("tally", "hashes", "errors", main="batches")
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
    work_root = os.environ.get("AIACT_BEAM_WORK_DIR") or None
    with tempfile.TemporaryDirectory(prefix="aiact-beam-", dir=work_root) as work:
        out = {n: os.path.join(work, n) for n in ("stats", "base", "tally", "distinct", "errors")}
        with beam.Pipeline(options=PipelineOptions(list(engine.beam_options))) as pipeline:
            spill = os.path.join(work, "hashes")
            os.makedirs(spill)
            measure = Measure(str(path), types, missing_values, plan, plan.gated, spill)
            measured = _measure_source(pipeline, "", tasks, measure)
            _statistics(measured.batches, out["stats"], "")
            _ = (
                measured.tally
                | "Tally" >> beam.CombineGlobally(_tally_fn(plan))
                | "TallyOut" >> _write_pickled(out["tally"])
            )
            _ = (
                measured.hashes
                | "HashFiles" >> beam.combiners.ToList()
                | "HashRanges" >> beam.FlatMap(_ranges)
                | "SpreadRanges" >> beam.Reshuffle()
                | "Distinct" >> beam.Map(_distinct)
                | "AllDistinct" >> beam.CombineGlobally(sum)
                | "DistinctOut" >> _write_pickled(out["distinct"])
            )
            errors = measured.errors
            if baseline is not None:
                features = core.drift_features(declared)
                base_tasks = reader.split_source(baseline, engine.chunk_bytes)
                base_measure = Measure(str(baseline), types, (), None, features, spill)
                base = _measure_source(pipeline, "Base", base_tasks, base_measure)
                _statistics(base.batches, out["base"], "Base")
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
