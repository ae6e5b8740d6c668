"""The production metadata path: ML Metadata's MySQL backend against a real MariaDB server
(Debian's mariadb-server, installed by hack/setup-services.sh), started on 127.0.0.1 by the
fixture. Same stage code, only the metadata URI differs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiact import lineage
from aiact.lineage import ArtifactRecord, LineageStore, RunInfo


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def mariadb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    assert Path(server).exists(), "mariadb-server missing: run hack/setup-services.sh"
    root = tmp_path_factory.mktemp("mariadb")
    datadir, port = root / "data", _free_port()
    subprocess.run(
        [
            "mariadb-install-db",
            f"--datadir={datadir}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )
    process = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={root / 'mysqld.sock'}",
            "--user=root",
            f"--pid-file={root / 'mysqld.pid'}",
            "--skip-grant-tables",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.2)
    try:
        yield f"mysql://root@127.0.0.1:{port}/aiact_metadata"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_lineage_round_trips_through_mysql(mariadb_uri: str) -> None:
    run = RunInfo(run_id="mysql-run", code_commit="abc", environment="production")
    store = LineageStore.connect(mariadb_uri)
    store.record_execution(
        run=run,
        stage="data_preparation",
        inputs=[],
        outputs=[ArtifactRecord(lineage.DATASET, "/d", "1" * 64, "dataset", {"rows": 5})],
        succeeded=True,
        properties={},
    )
    store.record_execution(
        run=run,
        stage="feature_engineering",
        inputs=[ArtifactRecord(lineage.DATASET, "/d", "1" * 64, "dataset")],
        outputs=[],
        succeeded=False,
        properties={"error": "gate failed"},
    )
    reopened = LineageStore.connect(mariadb_uri)
    assert reopened.require_passed(lineage.DATASET, "1" * 64).uri == "/d"
    assert [(e.stage, e.state) for e in reopened.executions_of_run("mysql-run")] == [
        ("data_preparation", "COMPLETE"),
        ("feature_engineering", "FAILED"),
    ]
    assert lineage.properties_of(reopened.run_context("mysql-run"))["environment"] == "production"


def test_a_stage_execution_records_on_mysql(mariadb_uri: str, tmp_path: Path) -> None:
    """The stage runtime's own properties fit MLMD's MySQL schema (its int column is 32-bit: a
    millisecond timestamp is recorded as a double)."""
    from aiact.stage import stage_execution

    run = RunInfo(run_id="mysql-stage", pipeline_name="test")
    report = tmp_path / "report.json"
    report.write_text("{}")
    with stage_execution("data_preparation", run, mariadb_uri) as stage:
        stage.wrote(lineage.DATA_VALIDATION_REPORT, report, str(report), "validation_report")
    [execution] = LineageStore.connect(mariadb_uri).executions_of_run("mysql-stage")
    assert execution.state == "COMPLETE"
    assert float(execution.properties["started_at_ms"]) > 1.7e12
