"""The served model's contract on the Open Inference Protocol v2 (KServe's "v2" REST protocol):
one input tensor per raw column of the fitted transform, two output tensors.

Shared by the model server (`aiact.kserve_model`, run in the KServe virtual environment, where
it decodes requests) and the integration-testing stage (pinned environment, where it encodes
requests and reads responses). Plain numpy/pandas and `aiact.transform` only: no kserve and no
torch, so both environments import it.

A request carries, for N records, one tensor per raw column, each of shape ``[N]``:

    {"id": "...", "inputs": [
        {"name": "age", "datatype": "FP64", "shape": [2], "data": [41.0, null]},
        {"name": "purpose", "datatype": "BYTES", "shape": [2], "data": ["car", "education"]},
        ...]}

Numeric columns are FP64 (FP32, INT64 and INT32 are accepted as well); `null` is a missing
value, imputed with the fitted median. Categorical columns are BYTES (strings); `null` or a
value outside the vocabulary encodes as all zeros, exactly as in training. The response holds
`probability` (FP64, the favourable class) and `decision` (INT64, probability >= threshold).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from aiact.transform import FittedTransform

if TYPE_CHECKING:
    import pandas as pd

PROBABILITY, DECISION = "probability", "decision"
# The model server's flag (aiact.kserve_model): its options come as one JSON line on stdin.
ARGUMENTS_ON_STDIN = "--arguments-on-stdin"
NUMERIC_DATATYPE, CATEGORICAL_DATATYPE = "FP64", "BYTES"
NUMERIC_ACCEPTED = frozenset({"FP64", "FP32", "INT64", "INT32"})
MAX_ROWS = 10_000
OUTPUT_TYPES: tuple[dict[str, Any], ...] = (
    {"name": PROBABILITY, "datatype": "FP64", "shape": [-1]},
    {"name": DECISION, "datatype": "INT64", "shape": [-1]},
)


class ContractError(ValueError):
    """A request breaks the model's input contract; the server answers 400 with this message."""


@dataclass(frozen=True)
class Tensor:
    """One input tensor of a v2 request, as decoded from the JSON body."""

    name: str
    datatype: str
    shape: Sequence[int]
    data: Any


def input_types(transform: FittedTransform) -> list[dict[str, Any]]:
    """The model's inputs as v2 model metadata lists them (`GET /v2/models/NAME`)."""
    return [
        {"name": name, "datatype": NUMERIC_DATATYPE, "shape": [-1]} for name in transform.numeric
    ] + [
        {"name": name, "datatype": CATEGORICAL_DATATYPE, "shape": [-1]}
        for name in transform.categorical
    ]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _column(tensor: Tensor, numeric: bool) -> np.ndarray:
    """One tensor's values as a column: float64 (None -> NaN) or object (str or None)."""
    for index, value in enumerate(tensor.data):
        if value is None:
            continue
        if numeric and not (_is_number(value) and math.isfinite(value)):
            raise ContractError(
                f"input {tensor.name!r} must hold numbers or null, got {value!r} at index {index}"
            )
        if not numeric and not isinstance(value, str):
            raise ContractError(
                f"input {tensor.name!r} must hold strings or null, got {value!r} at index {index}"
            )
    if numeric:
        return np.array([np.nan if v is None else float(v) for v in tensor.data], dtype=np.float64)
    return np.array(list(tensor.data), dtype=object)


def frame_from_inputs(transform: FittedTransform, tensors: Sequence[Tensor]) -> pd.DataFrame:
    """The raw records a v2 request carries, validated against the contract.

    Raises:
        ContractError: A missing, unknown or repeated input, a wrong datatype or shape, a
            value of the wrong type, or inputs of different lengths (one line, naming it).
    """
    if not tensors:
        raise ContractError("the request has no inputs")
    names = [t.name for t in tensors]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ContractError(f"input(s) given more than once: {', '.join(repeated)}")
    expected = transform.raw_columns
    missing = [c for c in expected if c not in names]
    if missing:
        raise ContractError(
            f"missing input(s): {', '.join(missing)} (the model needs {', '.join(expected)})"
        )
    unknown = [n for n in names if n not in expected]
    if unknown:
        raise ContractError(f"unknown input(s): {', '.join(unknown)}")
    by_name = {t.name: t for t in tensors}
    rows = -1
    columns: dict[str, np.ndarray] = {}
    for name in expected:
        tensor = by_name[name]
        numeric = name in transform.numeric
        datatype = str(tensor.datatype).upper()
        if numeric and datatype not in NUMERIC_ACCEPTED:
            raise ContractError(f"input {name!r} has datatype {datatype}, expected FP64")
        if not numeric and datatype != CATEGORICAL_DATATYPE:
            raise ContractError(f"input {name!r} has datatype {datatype}, expected BYTES")
        if not isinstance(tensor.data, list | tuple):
            raise ContractError(f"input {name!r} carries no JSON data list (binary data?)")
        if any(isinstance(v, list | tuple | dict) for v in tensor.data):
            raise ContractError(f"input {name!r} must be a flat list of shape [N]")
        shape = list(tensor.shape)
        if shape != [len(tensor.data)]:
            raise ContractError(
                f"input {name!r} has shape {shape} but {len(tensor.data)} values; "
                "expected shape [N] with N values"
            )
        if rows < 0:
            rows = len(tensor.data)
        elif len(tensor.data) != rows:
            raise ContractError(
                f"input {name!r} has {len(tensor.data)} values, the others {rows}: "
                "every input carries one value per record"
            )
        columns[name] = _column(tensor, numeric)
    if rows == 0:
        raise ContractError("the request holds no records (every input is empty)")
    if rows > MAX_ROWS:
        raise ContractError(f"the request holds {rows} records, at most {MAX_ROWS} are allowed")
    import pandas as pd  # only where a frame is built: the stage's client imports it later

    return pd.DataFrame(columns)


def _json_value(value: Any, numeric: bool) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if numeric:
        return float(value)
    return str(value)


def v2_request(
    transform: FittedTransform, records: pd.DataFrame, request_id: str
) -> dict[str, Any]:
    """A v2 inference request for `records` (a frame holding every raw column)."""
    inputs = []
    for name in transform.raw_columns:
        numeric = name in transform.numeric
        values = [_json_value(v, numeric) for v in records[name].tolist()]
        inputs.append(
            {
                "name": name,
                "datatype": NUMERIC_DATATYPE if numeric else CATEGORICAL_DATATYPE,
                "shape": [len(values)],
                "data": values,
            }
        )
    return {"id": request_id, "inputs": inputs}


def outputs_of(response: Any, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, decisions) from a v2 inference response for `rows` records.

    Raises:
        ContractError: When the response lacks either output, or its datatypes, shapes or
            lengths differ from the contract.
    """
    if not isinstance(response, dict) or not isinstance(response.get("outputs"), list):
        raise ContractError("the response has no 'outputs' list")
    outputs = {o.get("name"): o for o in response["outputs"] if isinstance(o, dict)}
    found = []
    for spec in OUTPUT_TYPES:
        output = outputs.get(spec["name"])
        if output is None:
            raise ContractError(f"the response lacks output {spec['name']!r}")
        if output.get("datatype") != spec["datatype"]:
            raise ContractError(
                f"output {spec['name']!r} has datatype {output.get('datatype')}, "
                f"expected {spec['datatype']}"
            )
        data = output.get("data")
        if output.get("shape") != [rows] or not isinstance(data, list) or len(data) != rows:
            raise ContractError(
                f"output {spec['name']!r} has shape {output.get('shape')}, expected [{rows}]"
            )
        found.append(np.asarray(data, dtype=np.float64))
    return found[0], found[1]
