"""Lineage store against real ML Metadata (in-memory fake database and embedded SQLite)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage
from aiact.lineage import ArtifactRecord, LineageError, LineageStore, RunInfo, connection_config


def _record(type_name: str, digest: str, role: str) -> ArtifactRecord:
    return ArtifactRecord(type_name, f"/data/{digest}", digest, role, {"rows": 10})


def test_record_execution_links_inputs_outputs_and_run(
    memory_store: LineageStore, run: RunInfo
) -> None:
    run = replace(run, code_commit="abc123")
    execution_id, ids = memory_store.record_execution(
        run=run,
        stage="data_preparation",
        inputs=[_record(lineage.RAW_DATASET, "a" * 64, "source")],
        outputs=[_record(lineage.DATASET, "b" * 64, "dataset")],
        succeeded=True,
        properties={"duration_s": 1.5},
    )
    events = memory_store.store.get_events_by_execution_ids([execution_id])
    kinds = {(e.artifact_id, e.type, e.path.steps[0].key) for e in events}
    assert kinds == {
        (ids["source"], mlmd_pb.Event.INPUT, "source"),
        (ids["dataset"], mlmd_pb.Event.OUTPUT, "dataset"),
    }
    context = memory_store.run_context("test-run")
    props = lineage.properties_of(context)
    assert props["code_commit"] == "abc123" and props["pipeline_spec_sha256"] == "f" * 64
    dataset = memory_store.require_artifact(lineage.DATASET, "b" * 64)
    assert lineage.properties_of(dataset)["version"] == "b" * 16
    assert [e.stage for e in memory_store.executions_of_run("test-run")] == ["data_preparation"]


def test_same_content_is_one_artifact(memory_store: LineageStore, run: RunInfo) -> None:
    for _ in range(2):
        memory_store.record_execution(
            run=run,
            stage="data_preparation",
            inputs=[],
            outputs=[_record(lineage.DATASET, "c" * 64, "dataset")],
            succeeded=True,
            properties={},
        )
    assert len(memory_store.store.get_artifacts_by_type(lineage.DATASET)) == 1
    assert len(memory_store.executions_of_run("test-run")) == 2


def test_existing_input_keeps_its_uri_and_properties(
    memory_store: LineageStore, run: RunInfo
) -> None:
    produced = _record(lineage.DATASET, "d" * 64, "dataset")
    memory_store.record_execution(
        run=run, stage="a", inputs=[], outputs=[produced], succeeded=True, properties={}
    )
    consumed = ArtifactRecord(lineage.DATASET, "/elsewhere", "d" * 64, "dataset")
    memory_store.record_execution(
        run=run, stage="b", inputs=[consumed], outputs=[], succeeded=True, properties={}
    )
    stored = memory_store.require_artifact(lineage.DATASET, "d" * 64)
    assert stored.uri == "/data/" + "d" * 64
    assert lineage.properties_of(stored)["rows"] == 10


def test_output_of_a_failed_execution_is_refused_downstream(
    memory_store: LineageStore, run: RunInfo
) -> None:
    memory_store.record_execution(
        run=run,
        stage="evaluation",
        inputs=[],
        outputs=[_record(lineage.EVALUATION_REPORT, "e" * 64, "report")],
        succeeded=False,
        properties={"error": "gate failed"},
    )
    with pytest.raises(LineageError, match="did not pass its gate"):
        memory_store.require_passed(lineage.EVALUATION_REPORT, "e" * 64)
    with pytest.raises(LineageError, match="no recorded lineage"):
        memory_store.require_passed(lineage.MODEL, "0" * 64)


def test_sqlite_store_persists_across_connections(sqlite_uri: str, run: RunInfo) -> None:
    LineageStore.connect(sqlite_uri).record_execution(
        run=run,
        stage="training",
        inputs=[],
        outputs=[_record(lineage.MODEL, "f" * 64, "model")],
        succeeded=True,
        properties={},
    )
    reopened = LineageStore.connect(sqlite_uri)
    assert reopened.require_passed(lineage.MODEL, "f" * 64).uri == "/data/" + "f" * 64


def test_connection_config_by_uri(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(lineage.METADATA_PASSWORD_ENV, "from-env")
    mysql = connection_config("mysql://mlmd@db.example:3307/aiact")
    assert (mysql.mysql.host, mysql.mysql.port, mysql.mysql.database, mysql.mysql.user) == (
        "db.example",
        3307,
        "aiact",
        "mlmd",
    )
    assert mysql.mysql.password == "from-env"
    grpc = connection_config("grpc://metadata.aiact-system:8080")
    assert (grpc.host, grpc.port) == ("metadata.aiact-system", 8080)
    sqlite = connection_config(f"sqlite://{tmp_path}/x/m.sqlite")
    assert sqlite.sqlite.filename_uri == f"{tmp_path}/x/m.sqlite"
    monkeypatch.delenv(lineage.METADATA_URI_ENV, raising=False)
    with pytest.raises(LineageError, match="no metadata store configured"):
        connection_config("")
    with pytest.raises(LineageError, match="unsupported metadata URI scheme 'postgres'"):
        connection_config("postgres://x")


def test_empty_uri_falls_back_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lineage.METADATA_URI_ENV, "grpc://from-env:9090")
    assert connection_config("").port == 9090
