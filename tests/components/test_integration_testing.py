"""Integration testing against a live KServe ModelServer process (kserve 0.21 from .venv-serving,
created by hack/setup.sh) on 127.0.0.1: the passing case, a served model that differs from the
evaluated one, a hung server, malformed payloads, and the stage executor with its lineage."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from aiact import serving
from aiact.featureset import FeatureSplit
from aiact.model_package import ModelPackage
from aiact.transform import FittedTransform
from components.integration_testing import core
from components.integration_testing.core import (
    Endpoint,
    ServingError,
    ServingOptions,
    local_model_server,
    run_integration_tests,
)
from tests.chain import server_processes

FAST = ServingOptions(latency_requests=200, request_timeout_s=10.0)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _bound_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on `port` (from /proc/net/tcp)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, hex_port = fields[1].split(":")
        if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
            addresses.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return addresses


@pytest.fixture(scope="module")
def served(
    clean_package: tuple[Path, ModelPackage], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[core.ServerHandle, Path]]:
    """One live KServe ModelServer of the clean package for the tests that only talk to it."""
    directory, _ = clean_package
    log = tmp_path_factory.mktemp("serving") / "server.log"
    with local_model_server(directory, "credit-scoring", log, FAST) as server:
        yield server, log


def test_served_model_passes_contract_regression_rejection_and_latency(
    served: tuple[core.ServerHandle, Path],
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    server, log = served
    _, package = clean_package
    holdout = clean_features[1]["test"]
    expected = package.predict_proba(holdout.features)
    options = ServingOptions(latency_requests=1000)
    gate, evidence = run_integration_tests(
        server, package, holdout.raw, expected, policy["integration"], options
    )
    assert gate.passed, [c.describe() for c in gate.breaches]
    names = {c.name for c in gate.checks}
    assert {"readiness", "contract_inputs", "contract_outputs", "latency_ms_p95"} <= names
    regression = evidence["regression"]
    assert regression["records"] == len(holdout.raw) and regression["mismatched"] == 0
    assert regression["max_abs_difference"] <= 1e-6
    assert evidence["latency_ms"]["requests"] == 1000
    assert 0 < evidence["latency_ms"]["p50"] <= evidence["latency_ms"]["p95"]
    served_inputs = [i["name"] for i in evidence["metadata"]["inputs"]]
    assert served_inputs == package.transform.raw_columns
    rejected = evidence["bad_requests"]
    assert rejected["malformed_json"]["status"] == 422
    assert "JSON decode error" in rejected["malformed_json"]["error"]
    assert rejected["missing_feature"]["status"] == 400
    assert rejected["missing_feature"]["error"].startswith("missing input(s): age ")
    assert rejected["wrong_type"] == {
        "status": 400,
        "error": "input 'age' must hold numbers or null, got 'not a number' at index 0",
    }
    assert "has datatype BYTES, expected FP64" in rejected["wrong_datatype"]["error"]
    assert all(400 <= r["status"] < 500 for r in rejected.values()), rejected
    # KServe's own server wrote the log: one access-log line per request at least.
    text = log.read_text()
    assert "aiact.kserve_model" in text and text.count("/infer") >= 1000


def test_the_server_listens_on_loopback_only(served: tuple[core.ServerHandle, Path]) -> None:
    server, _ = served
    port = int(server.base_url.rsplit(":", 1)[1])
    assert _bound_addresses(port) == {"127.0.0.1"}


def test_malformed_payloads_get_4xx_with_a_clear_message_never_a_5xx(
    served: tuple[core.ServerHandle, Path],
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
) -> None:
    server, _ = served
    endpoint = Endpoint(server.base_url, 10.0)
    infer = "/v2/models/credit-scoring/infer"
    row = {"name": "age", "datatype": "FP64", "shape": [1], "data": [42.0]}
    good = serving.v2_request(
        clean_package[1].transform, clean_features[1]["test"].raw.iloc[:1], "one"
    )
    boolean_age = {
        **good,
        "inputs": [dict(t, data=[True]) if t["name"] == "age" else t for t in good["inputs"]],
    }
    got, body = endpoint.request("POST", infer, json.dumps(good).encode())
    assert got == 200 and body["id"] == "one", body
    cases = {
        b"not json at all": (422, "JSON decode error"),
        b"[]": (422, ""),
        json.dumps({"inputs": []}).encode(): (400, "the request has no inputs"),
        json.dumps({"inputs": [row]}).encode(): (400, "missing input(s): dependents"),
        json.dumps(boolean_age).encode(): (400, "input 'age' must hold numbers or null, got True"),
    }
    for payload, (status, message) in cases.items():
        got, body = endpoint.request("POST", infer, payload)
        text = json.dumps(body)
        assert got == status, (payload, got, body)
        assert message in text, (payload, body)
    # The v1 route reaches the model too, and is refused as such.
    got, body = endpoint.request("POST", "/v1/models/credit-scoring:predict", b'{"instances": []}')
    assert got == 400 and "Open Inference Protocol v2 only" in body["error"]
    endpoint.close()


def test_a_different_model_behind_the_endpoint_fails_regression(
    tmp_path: Path,
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    """The served package's weights are tampered with after evaluation: the served
    probabilities differ from the evaluated ones and only the regression check fails."""
    directory, package = clean_package
    tampered = tmp_path / "served"
    shutil.copytree(directory, tampered)
    weights = dict(package.model.state_dict())
    weights["network.0.bias"] = weights["network.0.bias"] + 0.05
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    (tampered / "weights.pt").write_bytes(buffer.getvalue())
    holdout = clean_features[1]["test"]
    expected = package.predict_proba(holdout.features)
    with local_model_server(tampered, "credit-scoring", tmp_path / "server.log", FAST) as server:
        gate, evidence = run_integration_tests(
            server, package, holdout.raw, expected, policy["integration"], FAST
        )
    assert [c.name for c in gate.breaches] == ["prediction_mismatch_rate"]
    assert evidence["regression"]["mismatched"] > 0
    assert evidence["regression"]["max_abs_difference"] > 1e-6


def test_a_server_hung_in_predict_fails_within_its_request_timeout(
    tmp_path: Path,
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    """A live KServe server whose model sleeps in predict: readiness and metadata answer,
    the first inference request times out, the gate fails naming it, and the server process
    (deaf to SIGTERM while it sleeps) is killed when the stop grace runs out."""
    directory, package = clean_package
    holdout = clean_features[1]["test"]
    options = ServingOptions(request_timeout_s=2.0, stop_grace_s=2.0)
    log = tmp_path / "server.log"
    started = time.monotonic()
    with local_model_server(
        directory, "credit-scoring", log, options, module="tests.components.kserve_sleeping_model"
    ) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        tests_started = time.monotonic()
        gate, _ = run_integration_tests(
            server, package, holdout.raw, package.predict_proba(holdout.features),
            policy["integration"], options,
        )  # fmt: skip
        assert time.monotonic() - tests_started < 10
    assert time.monotonic() - started < 120
    assert not _listening(port), "the hung server was not stopped"
    (breach,) = gate.breaches
    assert breach.name == "server_responsive"
    assert "/v2/models/credit-scoring/infer got no answer within 2 s" in breach.detail
    assert [c.name for c in gate.checks][:3] == ["readiness", "contract_inputs", "contract_outputs"]


def test_a_server_that_accepts_but_never_answers_is_not_ready_within_its_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])  # and never answer
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        started = time.monotonic()
        try:
            with pytest.raises(ServingError) as raised:
                core.wait_ready(Endpoint(f"http://127.0.0.1:{port}", 1.0), "m", timeout_s=3.0)
        finally:
            stop.set()
            thread.join(5)
            for connection in accepted:
                connection.close()
    assert time.monotonic() - started < 6
    message = str(raised.value)
    assert "\n" not in message and "was not ready within 3 s" in message
    assert "got no answer within" in message and accepted


def test_a_server_that_cannot_load_its_model_fails_fast_with_its_log_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{not json")
    log = tmp_path / "server.log"
    started = time.monotonic()
    with (
        pytest.raises(ServingError, match=r"exited with status 1 before it was ready: .*JSON"),
        local_model_server(broken, "credit-scoring", log, FAST),
    ):
        pass
    assert time.monotonic() - started < 60
    assert "Traceback" in log.read_text()


def test_a_server_started_ahead_loads_nothing_and_exits_when_never_told_its_model(
    tmp_path: Path,
) -> None:
    """The stage starts its local server before the model's custody is verified: until it is
    sent its options, the process holds no model and no port; at end of input it exits 0."""
    log = tmp_path / "server.log"
    server = core.start_server_process(log, FAST)
    # Listed among this process's servers started ahead (polled: /proc is read while other
    # servers of earlier tests may still be ending; one CI run saw the new one missing once).
    deadline = time.monotonic() + 10
    while server.process.pid not in server_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.process.pid in server_processes(), (server.process.poll(), log.read_text())
    time.sleep(1.0)
    assert not _listening(server.port)
    assert server.process.stdin is not None
    server.process.stdin.close()
    assert server.process.wait(timeout=120) == 0
    text = log.read_text()
    assert serving.ARGUMENTS_ON_STDIN in text.splitlines()[0]
    assert "Registering model" not in text and "Uvicorn running" not in text
    assert server.process.pid not in server_processes()


def test_a_missing_serving_environment_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(core.ServingSetupError, match=r"run `bash hack/setup.sh`") as raised:
        core.serving_python(str(tmp_path / "nowhere" / "python"))
    assert "\n" not in str(raised.value)


def test_the_stage_records_report_and_server_log_in_lineage(tmp_path: Path) -> None:
    """The executor through a real chain: local ModelServer, report, log artefact in MLMD."""
    from aiact.lineage import LineageStore
    from tests.chain import Chain

    chain = Chain(tmp_path, f"sqlite://{tmp_path / 'mlmd.sqlite'}", "integration-run")
    before = set(server_processes())
    chain.through_integration()
    document = chain.document("integration_report")
    assert document["gate"]["passed"] is True
    report = document["sections"]
    assert report["environment"] == "local-process"
    log = chain.paths["integration_report"].with_name("integration_report.server.log")
    digest = hashlib.sha256(log.read_bytes()).hexdigest()
    assert report["server_log_sha256"] == digest
    lines = log.read_text().splitlines()
    assert "Uvicorn running on http://127.0.0.1:" in "\n".join(lines)
    # started ahead, then told its model: the options line comes before the model is loaded
    told = next(i for i, line in enumerate(lines) if line.startswith("$ (options on stdin)"))
    assert f"--model_dir {chain.paths['model']}" in lines[told]
    assert told < next(i for i, line in enumerate(lines) if "Registering model" in line)
    assert set(server_processes()) <= before  # its server stopped
    store = LineageStore.connect(chain.metadata_uri)
    logs = store.store.get_artifacts_by_type(core.SERVER_LOG)
    assert [a.uri for a in logs] == [str(log)]
    assert report["regression"]["mismatched"] == 0
    assert report["latency_ms"]["requests"] == 1000
