"""Integration tests against KServe's own model server (Open Inference Protocol v2 over HTTP):
readiness, the published input contract, rejection of bad requests with 4xx, regression of the
served predictions against the evaluated ones, and latency.

Locally the stage starts `python -m aiact.kserve_model` (KServe's `ModelServer`) from the
KServe virtual environment on 127.0.0.1 (`local_model_server`): the process starts first
(`start_server_process`) and loads kserve and torch while the stage verifies the model's chain
of custody, and is sent the options naming the model only after that; on a cluster it creates an
InferenceService (components/integration_testing/cluster.py). Either way the tests here talk
HTTP to a base URL. Every wait has a deadline: the server start, each request (a server that
accepts but never answers fails the request within `request_timeout_s`), and the whole
latency run is bounded by its request count times that timeout.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

import aiact
from aiact import serving
from aiact.policy import Check, GateResult, at_most, must_hold

if TYPE_CHECKING:  # torch and pandas: imported only where the model and data are loaded
    import pandas as pd

    from aiact.model_package import ModelPackage

GATE = "integration"
# Served vs evaluated probabilities: the same weights, float32 arithmetic, two processes.
TOLERANCE = 1e-6
SERVING_PYTHON_ENV = "AIACT_SERVING_PYTHON"
SERVING_VENV = ".venv-serving"
SERVER_MODULE = "aiact.kserve_model"
SERVER_LOG = "aiact.ModelServerLog"
# The checkout (or site-packages) the stage's own `aiact` package was imported from.
PACKAGE_ROOT = Path(aiact.__file__).resolve().parent.parent
REGRESSION_BATCH = 500


@dataclass(frozen=True)
class ServingOptions:
    """Where the model server comes from and how long each wait may take.

    Attributes:
        python: The KServe environment's interpreter ('' = AIACT_SERVING_PYTHON, else
            .venv-serving/bin/python of the source checkout).
        start_timeout_s: Longest wait for a local server (or an InferenceService) to be ready.
        request_timeout_s: Longest wait for any one HTTP answer.
        latency_requests: Single-record requests timed for the latency check.
        latency_budget_s: Longest the whole latency run may take (a slow server that answers
            every request just within its timeout still fails in bounded time).
        namespace: Kubernetes namespace of the integration InferenceService ('' = the pod's).
        image: The model-server image of the InferenceService ('' = the suite's aiact-serving).
        service_account: Service account of the predictor, for storage credentials ('' = none).
        stop_grace_s: How long a local server may take to stop after SIGTERM before SIGKILL.
    """

    python: str = ""
    start_timeout_s: float = 180.0
    request_timeout_s: float = 10.0
    latency_requests: int = 1000
    latency_budget_s: float = 300.0
    namespace: str = ""
    image: str = ""
    service_account: str = ""
    stop_grace_s: float = 10.0


@dataclass(frozen=True)
class ServerHandle:
    """Where a started model server listens."""

    base_url: str
    model_name: str


class ServingSetupError(RuntimeError):
    """The model server cannot be started here at all (no KServe environment)."""


class ServingError(RuntimeError):
    """The model server did not come up, died, or stopped answering: a finding, recorded as a
    failed check of the gate."""


class ServingTimeout(ServingError):
    """The model server did not answer a request within its timeout."""


def serving_python(configured: str = "") -> Path:
    """The interpreter of the KServe environment.

    Raises:
        ServingSetupError: When it does not exist (one line saying how to create it).
    """
    value = configured or os.environ.get(SERVING_PYTHON_ENV, "")
    path = Path(value) if value else PACKAGE_ROOT / SERVING_VENV / "bin" / "python"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ServingSetupError(
            f"KServe model server interpreter {path} not found: run `bash hack/setup.sh` "
            f"(creates {SERVING_VENV}) or set {SERVING_PYTHON_ENV}"
        )
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 1) -> str:
    """The last non-empty lines of a log file, on one line (for error messages)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-400:] or "(empty log)"


class Endpoint:
    """HTTP/1.1 client of one server (kept-alive connection, every request with a timeout)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServingError(f"model server URL {base_url!r} is not an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = (
                http.client.HTTPSConnection
                if self.scheme == "https"
                else http.client.HTTPConnection
            )
            self._connection = kind(self.host, self.port, timeout=timeout_s)
        self._connection.timeout = timeout_s
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout_s)
        return self._connection

    def close(self) -> None:
        """Close the kept-alive connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout_s: float | None = None
    ) -> tuple[int, Any]:
        """(status, decoded JSON or {'error': text}) of one request.

        Raises:
            ServingTimeout: No answer within the timeout.
            ServingError: The connection failed twice (refused, reset).
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        headers = {"Content-Type": "application/json"} if body is not None else {}
        failure: Exception | None = None
        for _ in range(2):  # one reconnect: a kept-alive connection may have been closed
            connection = self._connect(timeout)
            try:
                connection.request(method, self.prefix + path, body=body, headers=headers)
                response = connection.getresponse()
                raw = response.read()
            except TimeoutError:
                self.close()
                raise ServingTimeout(
                    f"{method} {self.base_url}{path} got no answer within {timeout:g} s"
                ) from None
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self.close()
                failure = exc
                continue
            try:
                return response.status, json.loads(raw)
            except ValueError:
                return response.status, {"error": raw.decode(errors="replace")[:500]}
        raise ServingError(
            f"{method} {self.base_url}{path} failed: {type(failure).__name__}: {failure}"
        )


def wait_ready(
    endpoint: Endpoint,
    model_name: str,
    timeout_s: float,
    alive: Any = None,
) -> float:
    """Poll `GET /v2/models/NAME/ready` until it answers 200 `ready: true`; the seconds it took.

    `alive`, when given, is called on every poll and raises when the server has died.

    Raises:
        ServingError: Not ready within `timeout_s` (or `alive` raised).
    """
    started = time.monotonic()
    deadline = started + timeout_s
    last = "no answer yet"
    while True:
        if alive is not None:
            alive()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServingError(
                f"model server {endpoint.base_url} was not ready within {timeout_s:g} s "
                f"(last: {last})"
            )
        try:
            status, body = endpoint.request(
                "GET", f"/v2/models/{model_name}/ready", timeout_s=min(2.0, remaining)
            )
            if status == 200 and isinstance(body, dict) and body.get("ready") is True:
                return time.monotonic() - started
            last = f"HTTP {status}"
        except ServingError as exc:
            last = str(exc)
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM (KServe shuts down gracefully), then SIGKILL of its process group."""
    if process.poll() is None:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class ServerProcess:
    """A local model server started ahead of its model (`start_server_process`): its
    libraries load while the stage verifies the model's chain of custody; it reads no model
    and binds no port until `local_model_server` sends it the options naming the model."""

    process: subprocess.Popen[bytes]
    port: int

    def close(self, grace_s: float = 10.0) -> None:
        """End it (end of its input: it exits without serving; then as `_stop`)."""
        if self.process.stdin is not None:
            with suppress(OSError):
                self.process.stdin.close()
        _stop(self.process, grace_s)


def start_server_process(
    log_path: Path, options: ServingOptions = ServingOptions(), *, module: str = SERVER_MODULE
) -> ServerProcess:
    """Start `module` from the KServe environment waiting for its options on stdin
    (`aiact.serving.ARGUMENTS_ON_STDIN`), its stdout and stderr appended to `log_path`, and
    pick its port (127.0.0.1, free now).

    Raises:
        ServingSetupError: No KServe environment.
    """
    python = serving_python(options.python)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if (PACKAGE_ROOT / "pyproject.toml").is_file():
        # A source checkout: the server imports this very `aiact` (not the pinned env's other
        # packages: site-packages is never put on its path).
        env["PYTHONPATH"] = str(PACKAGE_ROOT)
    else:
        env.pop("PYTHONPATH", None)
    command = [str(python), "-m", module, serving.ARGUMENTS_ON_STDIN]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    return ServerProcess(process, free_port())


@contextmanager
def local_model_server(
    model_dir: Path,
    model_name: str,
    log_path: Path,
    options: ServingOptions = ServingOptions(),
    *,
    module: str = SERVER_MODULE,
    started: ServerProcess | None = None,
) -> Iterator[ServerHandle]:
    """Serve a model package with KServe's ModelServer on 127.0.0.1 from the KServe
    environment: the process `started` ahead (`start_server_process`), or one started now; wait
    until the model is ready, stop it afterwards (also on failure). Its stdout and stderr go
    to `log_path`.

    Raises:
        ServingSetupError: No KServe environment.
        ServingError: It exited, or was not ready within `options.start_timeout_s`.
    """
    server = started or start_server_process(log_path, options, module=module)
    process = server.process
    arguments = [
        "--model_dir",
        str(model_dir),
        "--model_name",
        model_name,
        "--http_host",
        "127.0.0.1",
        "--http_port",
        str(server.port),
        "--enable_grpc",
        "false",
        "--workers",
        "1",
    ]
    base_url = f"http://127.0.0.1:{server.port}"
    endpoint = Endpoint(base_url, options.request_timeout_s)

    def alive() -> None:
        code = process.poll()
        if code is not None:
            raise ServingError(
                f"model server exited with status {code} before it was ready: {log_tail(log_path)}"
            )

    try:
        with log_path.open("ab") as log:
            log.write(f"$ (options on stdin) {' '.join(arguments)}\n".encode())
        assert process.stdin is not None
        with suppress(OSError):  # it has exited: alive() reports how
            process.stdin.write(json.dumps(arguments).encode() + b"\n")
            process.stdin.close()
        wait_ready(endpoint, model_name, options.start_timeout_s, alive)
        endpoint.close()
        yield ServerHandle(base_url, model_name)
    finally:
        endpoint.close()
        server.close(options.stop_grace_s)


def _error_message(body: Any) -> str:
    """The server's reason for a refusal: KServe's {'error': ...} or FastAPI's {'detail': ...}."""
    if isinstance(body, dict):
        if body.get("error"):
            return str(body["error"])
        detail = body.get("detail")
        if isinstance(detail, list):
            return "; ".join(
                str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail
            )
        if detail:
            return str(detail)
    return ""


def _field(body: Any, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else None


def bad_requests(package: ModelPackage, record: pd.DataFrame) -> dict[str, bytes]:
    """Requests that break the contract, by name; each must be refused with a 4xx."""
    transform = package.transform
    good = serving.v2_request(transform, record, "bad-request")
    numeric = next(iter(transform.numeric))
    categorical = next(iter(transform.categorical), None)

    def altered(name: str, **changes: Any) -> dict[str, Any]:
        inputs = [dict(t, **changes) if t["name"] == name else t for t in good["inputs"]]
        return {**good, "inputs": inputs}

    cases = {
        "malformed_json": b'{"inputs": [{"name": ',
        "missing_feature": json.dumps(
            {**good, "inputs": [t for t in good["inputs"] if t["name"] != numeric]}
        ).encode(),
        "wrong_type": json.dumps(altered(numeric, data=["not a number"])).encode(),
        "wrong_datatype": json.dumps(altered(numeric, datatype="BYTES")).encode(),
        "wrong_shape": json.dumps(altered(numeric, shape=[2])).encode(),
        "unknown_feature": json.dumps(
            {**good, "inputs": [*good["inputs"], {**good["inputs"][0], "name": "zz_unknown"}]}
        ).encode(),
        "not_v2": json.dumps({"instances": [{numeric: 1.0}]}).encode(),
    }
    if categorical is not None:
        cases["wrong_type_categorical"] = json.dumps(altered(categorical, data=[7])).encode()
    return cases


def run_integration_tests(
    server: ServerHandle,
    package: ModelPackage,
    holdout: pd.DataFrame,
    expected: np.ndarray,
    thresholds: dict[str, Any],
    options: ServingOptions = ServingOptions(),
) -> tuple[GateResult, dict[str, Any]]:
    """Every integration test against a ready server; returns the gate and the evidence.

    `holdout` holds the raw records of the feature set's test split and `expected` the
    probabilities evaluation computed for them from the feature set's matrix, so the regression
    test catches any drift between training-time and serving-time transforms, not only between
    two copies of the served code. A server that stops answering (ServingError) ends the tests
    with a failed `server_responsive` check naming the request that hung."""
    checks: list[Check] = []
    evidence: dict[str, Any] = {
        "endpoint": server.base_url,
        "protocol": "Open Inference Protocol v2 (KServe ModelServer)",
        "request_timeout_s": options.request_timeout_s,
        "tolerance_abs": TOLERANCE,
    }
    endpoint = Endpoint(server.base_url, options.request_timeout_s)
    try:
        _run_checks(
            endpoint,
            server.model_name,
            package,
            holdout,
            expected,
            thresholds,
            options,
            checks,
            evidence,
        )
    except ServingError as exc:
        checks.append(must_hold("server_responsive", False, str(exc)))
    finally:
        endpoint.close()
    return GateResult(GATE, tuple(checks)), evidence


def _run_checks(
    endpoint: Endpoint,
    name: str,
    package: ModelPackage,
    holdout: pd.DataFrame,
    expected: np.ndarray,
    thresholds: dict[str, Any],
    options: ServingOptions,
    checks: list[Check],
    evidence: dict[str, Any],
) -> None:
    transform = package.transform
    model_path = f"/v2/models/{name}"

    # Readiness: the server and the model.
    server_status, _server_body = endpoint.request("GET", "/v2/health/ready")
    status, body = endpoint.request("GET", f"{model_path}/ready")
    ready = server_status == 200 and status == 200 and _field(body, "ready") is True
    checks.append(must_hold("readiness", ready, f"server {server_status}, model {status}"))

    # Contract: the metadata lists exactly the expected inputs and outputs.
    status, metadata = endpoint.request("GET", model_path)
    metadata = metadata if isinstance(metadata, dict) else {}
    served_inputs = [(i.get("name"), i.get("datatype")) for i in metadata.get("inputs", [])]
    wanted_inputs = [(i["name"], i["datatype"]) for i in serving.input_types(transform)]
    checks.append(
        must_hold(
            "contract_inputs",
            status == 200 and sorted(map(str, served_inputs)) == sorted(map(str, wanted_inputs)),
            f"served {[n for n, _ in served_inputs]}",
        )
    )
    served_outputs = [(o.get("name"), o.get("datatype")) for o in metadata.get("outputs", [])]
    wanted_outputs = [(o["name"], o["datatype"]) for o in serving.OUTPUT_TYPES]
    checks.append(
        must_hold("contract_outputs", served_outputs == wanted_outputs, f"served {served_outputs}")
    )
    evidence["metadata"] = metadata

    # Regression: the whole holdout, served vs evaluated probabilities.
    records = holdout[transform.raw_columns].reset_index(drop=True)
    served = np.full(len(records), np.nan)
    decisions = np.full(len(records), np.nan)
    problems: list[str] = []
    for start in range(0, len(records), REGRESSION_BATCH):
        chunk = records.iloc[start : start + REGRESSION_BATCH]
        request_id = f"regression-{start}"
        body_bytes = json.dumps(serving.v2_request(transform, chunk, request_id)).encode()
        status, response = endpoint.request("POST", f"{model_path}/infer", body_bytes)
        if status != 200:
            problems.append(f"rows {start}+: HTTP {status} {_error_message(response)[:200]}")
            continue
        try:
            probabilities, chunk_decisions = serving.outputs_of(response, len(chunk))
        except serving.ContractError as exc:
            problems.append(f"rows {start}+: {exc}")
            continue
        if response.get("id") != request_id:
            problems.append(f"rows {start}+: response id {response.get('id')!r}")
        served[start : start + len(chunk)] = probabilities
        decisions[start : start + len(chunk)] = chunk_decisions
    scored = ~np.isnan(served)
    in_range = bool(np.all((served[scored] >= 0.0) & (served[scored] <= 1.0)))
    consistent = bool(
        np.array_equal(decisions[scored], (served[scored] >= package.threshold).astype(float))
    )
    checks.append(
        must_hold(
            "contract_responses",
            not problems and in_range and consistent,
            "; ".join(problems)[:500]
            or f"{len(records)} records scored, probabilities in [0, 1], decisions at "
            f"threshold {package.threshold:g}",
        )
    )
    difference = np.abs(served - expected[: len(records)])
    mismatch = float(np.mean(~(difference <= TOLERANCE))) if len(records) else 1.0
    checks.append(
        at_most(
            "prediction_mismatch_rate",
            round(mismatch, 6),
            thresholds["max_prediction_mismatch_rate"],
            f"served vs evaluated probabilities, {len(records)} holdout records, "
            f"|difference| <= {TOLERANCE:g}",
        )
    )
    evidence["regression"] = {
        "records": len(records),
        "mismatched": int(np.sum(~(difference <= TOLERANCE))),
        "max_abs_difference": float(np.nanmax(difference)) if scored.any() else None,
        "tolerance_abs": TOLERANCE,
    }

    # Bad requests: each refused with a 4xx and a message, never a 5xx.
    rejected: dict[str, dict[str, Any]] = {}
    for case, payload in bad_requests(package, records.iloc[:1]).items():
        status, response = endpoint.request("POST", f"{model_path}/infer", payload)
        message = _error_message(response)
        rejected[case] = {"status": status, "error": message[:500]}
        checks.append(
            must_hold(
                f"rejects[{case}]",
                400 <= status < 500 and bool(message),
                f"HTTP {status}: {message[:160]}",
            )
        )
    evidence["bad_requests"] = rejected

    # Latency: single-record requests over one kept-alive connection.
    latencies: list[float] = []
    failures = 0
    bodies = [
        json.dumps(serving.v2_request(transform, records.iloc[[i % len(records)]], f"l{i}"))
        for i in range(min(len(records), options.latency_requests))
    ]
    budget_ends = time.monotonic() + options.latency_budget_s
    for i in range(options.latency_requests):
        if time.monotonic() > budget_ends:
            raise ServingTimeout(
                f"the latency run took more than {options.latency_budget_s:g} s "
                f"({i} of {options.latency_requests} requests answered)"
            )
        payload = bodies[i % len(bodies)].encode()
        started = time.perf_counter()
        status, _ = endpoint.request("POST", f"{model_path}/infer", payload)
        latencies.append((time.perf_counter() - started) * 1000)
        failures += status != 200
    p50, p95, p99 = (float(np.percentile(latencies, q)) for q in (50, 95, 99))
    checks.append(
        must_hold(
            "latency_requests_answered",
            failures == 0,
            f"{failures} of {len(latencies)} single-record requests not answered 200",
        )
    )
    checks.append(
        at_most(
            "latency_ms_p95",
            round(p95, 3),
            thresholds["max_latency_ms_p95"],
            f"{len(latencies)} single-record requests, one at a time",
        )
    )
    evidence["latency_ms"] = {
        "requests": len(latencies),
        "p50": round(p50, 3),
        "p95": round(p95, 3),
        "p99": round(p99, 3),
        "max": round(max(latencies), 3),
    }
