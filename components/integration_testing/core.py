"""Integration tests against a running model server: readiness, input contract, rejection of
bad requests, regression against offline predictions, and latency."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiact.model_package import ModelPackage
from aiact.policy import Check, GateResult, at_most, must_hold

GATE = "integration"
TOLERANCE = 1e-6


@dataclass(frozen=True)
class ServerHandle:
    """Where a started model server listens."""

    base_url: str
    model_name: str


class ServerStartError(RuntimeError):
    """The model server did not come up."""


@contextmanager
def model_server(
    model_dir: Path, model_name: str, timeout_s: float = 60.0
) -> Iterator[ServerHandle]:
    """Start `python -m aiact.serving` on a free loopback port; stop it afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "aiact.serving", "--model-dir", str(model_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            _, err = process.communicate(timeout=timeout_s)
            raise ServerStartError(f"model server exited before listening: {err[-2000:]}")
        port = json.loads(line)["port"]
        yield ServerHandle(f"http://127.0.0.1:{port}", model_name)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _request(url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records: NaN becomes null."""
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def run_integration_tests(
    server: ServerHandle,
    package: ModelPackage,
    sample: pd.DataFrame,
    expected: np.ndarray,
    thresholds: dict[str, Any],
) -> tuple[GateResult, dict[str, Any]]:
    """Every integration test; returns the gate and the per-test evidence.

    `expected` holds the probabilities evaluation saw for the sample's rows (scored from the
    feature set's matrix), so the regression test catches any transform drift between
    training and serving, not only between two copies of the served code path."""
    model_url = f"{server.base_url}/v1/models/{server.model_name}"
    checks: list[Check] = []
    evidence: dict[str, Any] = {}

    status, body = _request(model_url)
    checks.append(must_hold("readiness", status == 200 and body.get("ready") is True, f"{status}"))

    status, metadata = _request(f"{model_url}/metadata")
    served_inputs = sorted(i["name"] for i in metadata.get("inputs", []))
    expected_inputs = sorted(package.transform.raw_columns)
    checks.append(
        must_hold("contract_inputs", served_inputs == expected_inputs, f"served {served_inputs}")
    )

    columns = package.transform.raw_columns
    records = _records(sample[columns])
    status, body = _request(f"{model_url}:predict", json.dumps({"instances": records}).encode())
    predictions = body.get("predictions", []) if status == 200 else []
    well_formed = len(predictions) == len(records) and all(
        0.0 <= p["probability"] <= 1.0 and p["decision"] in (0, 1) for p in predictions
    )
    checks.append(
        must_hold(
            "contract_outputs", well_formed, f"status {status}, {len(predictions)} predictions"
        )
    )

    offline = expected
    served = (
        np.array([p["probability"] for p in predictions])
        if well_formed
        else np.full(len(offline), np.nan)
    )
    mismatch = float(np.mean(~(np.abs(served - offline) <= TOLERANCE)))
    checks.append(
        at_most(
            "prediction_mismatch_rate",
            round(mismatch, 6),
            thresholds["max_prediction_mismatch_rate"],
            f"served vs evaluated probabilities, {len(records)} holdout rows, tol {TOLERANCE}",
        )
    )

    bad_requests = {
        "missing_column": json.dumps(
            {"instances": [{k: v for k, v in records[0].items() if k != columns[0]}]}
        ).encode(),
        "non_numeric": json.dumps({"instances": [{**records[0], columns[0]: "abc"}]}).encode(),
        "malformed_json": b"{not json",
    }
    rejected = {}
    for name, payload in bad_requests.items():
        status, body = _request(f"{model_url}:predict", payload)
        rejected[name] = {"status": status, "error": body.get("error", "")}
        checks.append(must_hold(f"rejects[{name}]", status == 400, f"status {status}"))
    evidence["bad_requests"] = rejected

    latencies = []
    for record in records[:50]:
        started = time.perf_counter()
        _request(f"{model_url}:predict", json.dumps({"instances": [record]}).encode())
        latencies.append((time.perf_counter() - started) * 1000)
    p95 = float(np.percentile(latencies, 95))
    checks.append(at_most("latency_ms_p95", round(p95, 3), thresholds["max_latency_ms_p95"]))
    evidence.update(
        sample_rows=len(records),
        max_abs_difference=float(np.nanmax(np.abs(served - offline))) if well_formed else None,
        latency_ms={"p50": float(np.percentile(latencies, 50)), "p95": p95},
    )
    return GateResult(GATE, tuple(checks)), evidence
