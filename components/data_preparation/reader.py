"""Typed Arrow reading of the data gate's source: the whole table (multi-threaded pyarrow CSV or
Parquet reader) or, for the Beam path, one byte range of a CSV (one row group of a Parquet
file) at a time. Both give every declared column exactly its schema type (INT: int64, FLOAT:
float64, BYTES: string) in every batch, so statistics of batches merge; a value that does not
parse as its declared type is null for the statistics and counted (with examples) as
unparsable, which the gate reports as a schema anomaly. Columns the schema does not type are
read as text from CSV (Parquet keeps its own types). Padding spaces of column names and text
values are removed and the use case's missing-value tokens read as null."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = (".parquet", ".csv", ".txt")
_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}
EXAMPLES = 5  # unparsable values kept per column (the smallest, so any batching agrees)
# pandas' default missing-value spellings (the gate read CSV with pandas before), empty included.
NULL_VALUES = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)


class DataSourceError(ValueError):
    """The source cannot be read as a table; `rule` names what is wrong with it."""

    def __init__(self, message: str, rule: str = "readable") -> None:
        super().__init__(message)
        self.rule = rule


def column_types(schema: Any) -> dict[str, str]:
    """Each schema feature's type as the reader spells it: int, float or string."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    names = {schema_pb2.INT: "int", schema_pb2.FLOAT: "float", schema_pb2.BYTES: "string"}
    return {f.name: names.get(f.type, "string") for f in schema.feature}


@dataclass
class Unparsable:
    """Values of one column that did not parse as its declared type."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def merge(self, other: Unparsable) -> None:
        self.count += other.count
        self.examples = sorted(set(self.examples) | set(other.examples))[:EXAMPLES]


@dataclass
class Batch:
    """A normalised, typed batch and what did not parse in it."""

    data: pa.RecordBatch | pa.Table
    unparsable: dict[str, Unparsable]


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataSourceError(
            f"{path.name}: unsupported format {suffix!r} (csv or parquet)", rule="format"
        )
    if path.stat().st_size == 0:
        raise DataSourceError(f"{path.name}: cannot be read as a table: the file is empty")
    return suffix


def csv_header(path: Path) -> tuple[list[str], int]:
    """The stripped column names of a CSV and the header line's length in bytes; a
    DataSourceError for undecodable text or another delimiter than comma."""
    with path.open("rb") as handle:
        line = handle.readline()
    try:
        text = line.decode("utf-8-sig" if line.startswith(b"\xef\xbb\xbf") else "utf-8")
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"{path.name}: cannot be read as a table: {exc}") from exc
    names = [n.strip() for n in next(csv.reader([text.rstrip("\r\n")]), [])]
    if len(names) == 1:
        for delimiter, name in _DELIMITERS.items():
            if delimiter in names[0]:
                raise DataSourceError(
                    f"{path.name}: one column {names[0][:60]!r}: fields are separated by "
                    f"{name} ({delimiter!r}), the declared delimiter is comma",
                    rule="delimiter",
                )
    if not names or any(not n for n in names):
        raise DataSourceError(f"{path.name}: cannot be read as a table: empty column name")
    if len(set(names)) != len(names):
        raise DataSourceError(f"{path.name}: cannot be read as a table: duplicate column names")
    return names, len(line)


def _coerce(values: pa.Array, kind: str) -> tuple[pa.Array, Unparsable]:
    """Text values as `kind` (int or float); the values that do not parse become null."""
    text = values.to_pandas()
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna() & text.notna()
    if kind == "int":
        fractional = numbers.notna() & (numbers != np.floor(numbers.fillna(0)))
        bad |= fractional
        numbers = numbers.where(~bad)
    found = text[bad]
    unparsable = Unparsable(int(bad.sum()), sorted(set(found.astype(str)))[:EXAMPLES])
    target = _ARROW_TYPES[kind]
    return pa.array(numbers.to_numpy(dtype="float64"), from_pandas=True).cast(
        target, safe=False
    ), unparsable


def _strip(values: pa.Array, tokens: frozenset[str]) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(values)
    if tokens:
        trimmed = pc.if_else(pc.is_in(trimmed, pa.array(sorted(tokens))), None, trimmed)
    return trimmed


def normalise(
    data: pa.Table | pa.RecordBatch, types: Mapping[str, str], tokens: frozenset[str]
) -> Batch:
    """Every typed column in its type (unparsable values null and counted), text trimmed,
    missing tokens null."""
    return _normalise_columns(list(data.schema.names), list(data.columns), types, tokens)


def _normalise_columns(
    read: list[str], originals: list[Any], types: Mapping[str, str], tokens: frozenset[str]
) -> Batch:
    """normalise, on columns the caller no longer holds otherwise: each one read is freed as
    soon as its normalised copy is made (the read's peak: one column copied at a time)."""
    columns, names, unparsable = [], [], {}
    originals.reverse()
    for name in read:
        values = originals.pop()
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        if pa.types.is_large_string(values.type):
            values = values.cast(pa.string())
        kind = types.get(name)
        if pa.types.is_string(values.type):
            values = _strip(values, tokens)
            if kind in ("int", "float"):
                values, bad = _coerce(values, kind)
                if bad.count:
                    unparsable[name] = bad
        elif kind in ("int", "float") and not values.type.equals(_ARROW_TYPES[kind]):
            if kind == "int" and pa.types.is_floating(values.type):
                values, bad = _coerce(values.cast(pa.string()), kind)
                if bad.count:
                    unparsable[name] = bad
            else:
                values = values.cast(_ARROW_TYPES[kind])
        elif kind == "string" and not pa.types.is_string(values.type):
            values = values.cast(pa.string())
        columns.append(values)
        names.append(name)
    return Batch(pa.RecordBatch.from_arrays(columns, names=names), unparsable)


def _convert_options(
    names: list[str], types: Mapping[str, str], numeric_as_text: set[str]
) -> pacsv.ConvertOptions:
    arrow_types = {
        n: pa.string() if n in numeric_as_text else _ARROW_TYPES[types.get(n, "string")]
        for n in names
    }
    return pacsv.ConvertOptions(
        column_types=arrow_types,
        null_values=list(NULL_VALUES),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def _failed_column(error: pa.ArrowInvalid, names: list[str]) -> str | None:
    """The column a CSV conversion error names ("In CSV column #3: ..."), if any."""
    message = str(error)
    marker = "In CSV column #"
    if marker not in message or "conversion error" not in message.lower():
        return None
    index = int(message.split(marker, 1)[1].split(":", 1)[0])
    return names[index] if 0 <= index < len(names) else None


def _parse_csv(
    source: Any, names: list[str], types: Mapping[str, str], skip: int, threads: bool
) -> pa.Table:
    """Parse CSV bytes with the declared types; a numeric column that does not convert is read
    as text (normalise then coerces it, counting what does not parse)."""
    numeric_as_text: set[str] = set()
    while True:
        if hasattr(source, "seek"):
            source.seek(0)
        try:
            return pacsv.read_csv(
                source,
                read_options=pacsv.ReadOptions(
                    column_names=names, skip_rows=skip, use_threads=threads, block_size=1 << 24
                ),
                convert_options=_convert_options(names, types, numeric_as_text),
            )
        except pa.ArrowInvalid as exc:
            failed = _failed_column(exc, names)
            if failed is None or failed in numeric_as_text:
                raise
            numeric_as_text.add(failed)


def _return_freed_memory() -> None:
    """Arrow's allocator (jemalloc) gives freed pages back to the system at once instead of
    after its default delay: the read's intermediate copies are freed before the tally and
    TFDV's statistics allocate theirs, which bounds the gate's peak memory."""
    with contextlib.suppress(NotImplementedError):  # pyarrow without jemalloc: as it is
        pa.jemalloc_set_decay_ms(0)


def read_arrow(path: Path, types: Mapping[str, str], missing_values: tuple[str, ...] = ()) -> Batch:
    """The whole source as one normalised, typed table (multi-threaded reader)."""
    _return_freed_memory()
    suffix = _check_suffix(path)
    tokens = frozenset(missing_values)
    try:
        if suffix == ".parquet":
            table = pq.read_table(path)
            table = table.rename_columns([str(n).strip() for n in table.column_names])
        else:
            names, _ = csv_header(path)
            with path.open("rb") as handle:
                table = _parse_csv(handle, names, types, 1, True)
        if table.num_rows == 0:
            raise DataSourceError(f"{path.name}: cannot be read as a table: no rows")
        read, originals = list(table.schema.names), list(table.columns)
        del table
        batch = _normalise_columns(read, originals, types, tokens)
    except DataSourceError:
        raise
    except (pa.ArrowException, ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"{path.name}: cannot be read as a table: {exc}") from exc
    return batch


def split_source(path: Path, chunk_bytes: int) -> list[tuple[int, int]]:
    """The source's read tasks: byte ranges of a CSV (a line belongs to the range it starts
    in; quoted fields holding line breaks are not supported, as with TFDV's own CSV reader),
    row groups of a Parquet file ((index, index + 1))."""
    suffix = _check_suffix(path)
    if suffix == ".parquet":
        try:
            groups = pq.ParquetFile(path).metadata.num_row_groups
        except (pa.ArrowException, OSError) as exc:
            raise DataSourceError(f"{path.name}: cannot be read as a table: {exc}") from exc
        return [(g, g + 1) for g in range(groups)]
    _, header = csv_header(path)
    size = path.stat().st_size
    step = max(chunk_bytes, 1)
    return [(start, min(start + step, size)) for start in range(header, size, step)] or [
        (header, size)
    ]


def _range_bytes(path: Path, start: int, end: int, header: int) -> bytes:
    with path.open("rb") as handle:
        position = start
        if start > header:
            handle.seek(start - 1)
            position = start - 1 + len(handle.readline())  # the line that began before: skipped
        else:
            handle.seek(start)
        if position >= end:
            return b""
        data = handle.read(end - position)
        if data and not data.endswith(b"\n"):
            data += handle.readline()
        return data


def read_task(
    path: Path,
    task: tuple[int, int],
    types: Mapping[str, str],
    missing_values: tuple[str, ...] = (),
    batch_rows: int = 200_000,
) -> Iterator[Batch]:
    """The normalised batches of one read task (split_source), single-threaded (a Beam worker
    is one of several)."""
    tokens = frozenset(missing_values)
    try:
        if path.suffix.lower() == ".parquet":
            parquet = pq.ParquetFile(path)
            for part in parquet.iter_batches(batch_size=batch_rows, row_groups=[task[0]]):
                renamed = part.rename_columns([str(n).strip() for n in part.schema.names])
                yield normalise(renamed, types, tokens)
            return
        names, header = csv_header(path)
        data = _range_bytes(path, task[0], task[1], header)
        if not data.strip():
            return
        table = _parse_csv(io.BytesIO(data), names, types, 0, False)
    except DataSourceError:
        raise
    except (pa.ArrowException, ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"{path.name}: cannot be read as a table: {exc}") from exc
    for part in table.to_batches(max_chunksize=batch_rows):
        yield normalise(part, types, tokens)
