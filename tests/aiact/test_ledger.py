"""The deployment ledger proves it is complete and survives crashes, on both backends: a local
directory of write-once files, and S3 with object lock, tested against S3 via Ceph RGW (Debian
radosgw 16.2, started once for this module by tests/aiact/s3_server.py).

The attacker is played with plain file operations and with the minio client directly."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aiact.hashing import canonical_json
from aiact.ledger import (
    GENESIS,
    RETENTION_DAYS_ENV,
    Ledger,
    LedgerError,
    LedgerHead,
    LocalLedger,
    RecordedDeployment,
    S3Ledger,
    cross_check,
    entry_hash,
    entry_name,
    ledger_from_uri,
)
from aiact.storage import s3_client
from tests.aiact.s3_server import ACCESS_KEY, SECRET_KEY, start_s3

# --------------------------------------------------------------------------------------------
# fixtures: one Ceph RGW per module; a backend abstraction for the parametrised tests


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Ceph RGW on free ports of 127.0.0.1, started once for this module."""
    server = start_s3(tmp_path_factory.mktemp("s3"))
    yield server.endpoint
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The environment pointing the suite at the server; returns the attacker's own client."""
    monkeypatch.setenv("AIACT_S3_ENDPOINT", s3_endpoint)
    monkeypatch.setenv("AIACT_S3_SECURE", "false")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv(RETENTION_DAYS_ENV, "1")
    return s3_client()


def _locked_bucket(client: Any) -> str:
    bucket = f"ledger-{uuid.uuid4().hex[:12]}"
    client.make_bucket(bucket, object_lock=True)
    return bucket


def _one_day() -> Any:
    from minio.commonconfig import COMPLIANCE
    from minio.retention import Retention

    return Retention(COMPLIANCE, datetime.now(UTC) + timedelta(days=1))


@dataclass
class Backend:
    """How to make a ledger on one backend, and how an attacker (or a crash) writes to it."""

    name: str
    new: Callable[[], Ledger]
    #: store these raw entries (by sequence) as a whole ledger: local in place (the attacker
    #: rewrites the directory), S3 under a fresh prefix (locked entries cannot be replaced, so
    #: the attacker forges a copy and repoints the configuration at it)
    forge: Callable[[Ledger, dict[int, bytes]], Ledger]
    #: store bytes under a name inside the ledger (plainly: a file, or a locked S3 object)
    put: Callable[[Ledger, str, bytes], None]
    names: Callable[[Ledger], list[str]]


def _local_backend(tmp_path: Path) -> Backend:
    def new() -> Ledger:
        return ledger_from_uri(f"file://{tmp_path / uuid.uuid4().hex}")

    def put(ledger: Ledger, name: str, data: bytes) -> None:
        assert isinstance(ledger, LocalLedger)
        ledger.directory.mkdir(parents=True, exist_ok=True)
        path = ledger.directory / name
        if path.exists():
            path.chmod(0o644)
        path.write_bytes(data)

    def forge(ledger: Ledger, raw: dict[int, bytes]) -> Ledger:
        assert isinstance(ledger, LocalLedger)
        shutil.rmtree(ledger.directory, ignore_errors=True)
        for sequence, data in raw.items():
            put(ledger, entry_name(sequence), data)
        return ledger

    def names(ledger: Ledger) -> list[str]:
        assert isinstance(ledger, LocalLedger)
        return sorted(os.listdir(ledger.directory)) if ledger.directory.exists() else []

    return Backend("local", new, forge, put, names)


def _s3_backend(client: Any) -> Backend:
    def new() -> Ledger:
        return ledger_from_uri(f"s3://{_locked_bucket(client)}/deployments")

    def put_at(bucket: str, key: str, data: bytes) -> None:
        client.put_object(bucket, key, io.BytesIO(data), len(data), retention=_one_day())

    def put(ledger: Ledger, name: str, data: bytes) -> None:
        assert isinstance(ledger, S3Ledger)
        put_at(ledger.bucket, f"{ledger.prefix}/{name}", data)

    def forge(ledger: Ledger, raw: dict[int, bytes]) -> Ledger:
        assert isinstance(ledger, S3Ledger)
        prefix = f"forged-{uuid.uuid4().hex[:8]}"
        for sequence, data in raw.items():
            put_at(ledger.bucket, f"{prefix}/{entry_name(sequence)}", data)
        return ledger_from_uri(f"s3://{ledger.bucket}/{prefix}")

    def names(ledger: Ledger) -> list[str]:
        assert isinstance(ledger, S3Ledger)
        listing = client.list_objects(ledger.bucket, prefix=f"{ledger.prefix}/", recursive=True)
        return sorted(o.object_name.split("/", 1)[1] for o in listing)

    return Backend("s3", new, forge, put, names)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each parametrised test runs on a local directory and on S3 (Ceph RGW)."""
    if request.param == "local":
        return _local_backend(tmp_path)
    return _s3_backend(request.getfixturevalue("s3"))


# --------------------------------------------------------------------------------------------
# helpers


def _model(index: int) -> str:
    return hashlib.sha256(f"model-{index}".encode()).hexdigest()


def _fill(ledger: Ledger, count: int) -> list[dict[str, Any]]:
    return [
        ledger.append(
            {"model_sha256": _model(i), "strategy": "canary", "run_id": f"run-{i}"},
            key=f"run-{i}/{_model(i)}",
        )
        for i in range(1, count + 1)
    ]


def _raw(entry: dict[str, Any]) -> bytes:
    return canonical_json(entry) + b"\n"


def _raw_all(entries: list[dict[str, Any]]) -> dict[int, bytes]:
    return {e["sequence"]: _raw(e) for e in entries}


def _rechain(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a careful attacker does after editing: recompute every hash after the edit."""
    previous = GENESIS
    rechained = []
    for entry in entries:
        entry = {**entry, "previous_sha256": previous}
        entry["entry_sha256"] = entry_hash(entry)
        previous = entry["entry_sha256"]
        rechained.append(entry)
    return rechained


def _recorded(entries: list[dict[str, Any]]) -> list[RecordedDeployment]:
    """What ML Metadata recorded for each deployment (head right after each append)."""
    return [
        RecordedDeployment(
            sequence=e["sequence"],
            entry_sha256=e["entry_sha256"],
            deployment_key=e["deployment_key"],
            model_sha256=e["model_sha256"],
            head_sequence=e["sequence"],
            head_sha256=e["entry_sha256"],
        )
        for e in entries
    ]


# --------------------------------------------------------------------------------------------
# both backends


def test_entries_are_chained_write_once_objects_named_by_sequence(backend: Backend) -> None:
    ledger = backend.new()
    assert ledger.verify() == LedgerHead(0, GENESIS)
    entries = _fill(ledger, 3)
    assert [e["sequence"] for e in entries] == [1, 2, 3]
    assert entries[0]["previous_sha256"] == GENESIS
    assert entries[1]["previous_sha256"] == entries[0]["entry_sha256"]
    assert entries[2]["previous_sha256"] == entries[1]["entry_sha256"]
    assert all(e["entry_sha256"] == entry_hash(e) for e in entries)
    assert entries[1]["deployment_key"] == f"run-2/{_model(2)}"
    assert ledger.entries() == entries
    assert ledger.verify() == LedgerHead(3, entries[2]["entry_sha256"])
    assert backend.names(ledger) == ["000000000001.json", "000000000002.json", "000000000003.json"]
    assert ledger_from_uri(ledger.location).entries() == entries  # location is the identity


def test_edited_entry_is_detected_and_nothing_is_appended_to_it(backend: Backend) -> None:
    ledger = backend.new()
    entries = _fill(ledger, 3)
    edited = {**entries[1], "strategy": "full"}
    forged = backend.forge(ledger, {**_raw_all(entries), 2: _raw(edited)})
    with pytest.raises(LedgerError, match=r"ledger entry 2 was altered \(hash mismatch"):
        forged.verify()
    with pytest.raises(LedgerError, match="ledger entry 2 was altered"):
        forged.append({"model_sha256": _model(4)}, key="run-4")
    assert len(backend.names(forged)) == 3


def test_removed_last_entry_is_caught_by_the_recorded_head(backend: Backend) -> None:
    ledger = backend.new()
    entries = _fill(ledger, 3)
    head = ledger.verify()
    forged = backend.forge(ledger, _raw_all(entries[:2]))
    # the chain alone cannot see a removed tail: that is what the recorded head is for
    assert forged.verify() == LedgerHead(2, entries[1]["entry_sha256"])
    with pytest.raises(
        LedgerError,
        match="ledger has 2 entries but the metadata store recorded head 3: entries were removed",
    ):
        forged.verify(expected_head=head)
    with pytest.raises(
        LedgerError,
        match=rf"MLMD deployment of model {_model(3)[:12]}\.\.\. \(ledger sequence 3\) has no"
        " ledger entry",
    ):
        cross_check(forged, _recorded(entries))


def test_deleted_ledger_is_caught_by_cross_check(backend: Backend) -> None:
    ledger = backend.new()
    entries = _fill(ledger, 3)
    gone = backend.forge(ledger, {})
    assert gone.verify() == LedgerHead(0, GENESIS)
    with pytest.raises(LedgerError, match=r"\(ledger sequence 1\) has no ledger entry"):
        cross_check(gone, _recorded(entries))
    with pytest.raises(LedgerError, match=r"ledger has 0 entries .* recorded head 3"):
        gone.verify(expected_head=LedgerHead(3, entries[2]["entry_sha256"]))


def test_rewritten_ledger_with_recomputed_hashes_is_caught_by_cross_check(
    backend: Backend,
) -> None:
    ledger = backend.new()
    entries = _fill(ledger, 3)
    head = ledger.verify()
    rewritten = _rechain([entries[0], {**entries[1], "strategy": "full"}, entries[2]])
    forged = backend.forge(ledger, _raw_all(rewritten))
    assert forged.verify().sequence == 3  # internally consistent
    with pytest.raises(
        LedgerError, match="ledger entry 2 differs from the recorded head: ledger rewritten"
    ):
        cross_check(forged, _recorded(entries))
    with pytest.raises(
        LedgerError, match="ledger entry 3 differs from the recorded head: ledger rewritten"
    ):
        forged.verify(expected_head=head)


def test_gap_in_the_sequence_is_named(backend: Backend) -> None:
    ledger = backend.new()
    entries = _fill(ledger, 5)
    raw = _raw_all(entries)
    del raw[3]
    with pytest.raises(LedgerError, match=r"ledger entry 3 is missing \(entries up to 5 exist\)"):
        backend.forge(ledger, raw).verify()


def test_moved_or_unchained_entries_are_named(backend: Backend) -> None:
    ledger = backend.new()
    entries = _fill(ledger, 3)
    moved = backend.forge(ledger, {1: _raw(entries[0]), 2: _raw(entries[2])})
    with pytest.raises(LedgerError, match="ledger entry 2 says it is sequence 3"):
        moved.verify()
    relinked = {**entries[1], "previous_sha256": "f" * 64}
    relinked["entry_sha256"] = entry_hash(relinked)
    unchained = backend.forge(ledger, {**_raw_all(entries), 2: _raw(relinked)})
    with pytest.raises(LedgerError, match="ledger entry 2 breaks the chain"):
        unchained.verify()


def test_truncated_entry_is_reported_unparsable(backend: Backend) -> None:
    ledger = backend.new()
    _fill(ledger, 2)
    half = _raw({"model_sha256": _model(3), "sequence": 3})[:25]
    backend.put(ledger, entry_name(3), half)  # a non-atomic writer that died mid-write
    with pytest.raises(LedgerError, match="ledger entry 3 is unparsable"):
        ledger.verify()
    with pytest.raises(LedgerError, match="ledger entry 3 is unparsable"):
        ledger.append({"model_sha256": _model(4)}, key="run-4")


def test_unexpected_object_is_named(backend: Backend) -> None:
    ledger = backend.new()
    _fill(ledger, 1)
    backend.put(ledger, "notes.txt", b"hello")
    with pytest.raises(LedgerError, match=r"unexpected object '.*notes\.txt' in the ledger"):
        ledger.verify()


def test_append_is_idempotent_by_deployment_key(backend: Backend) -> None:
    ledger = backend.new()
    first = ledger.append({"model_sha256": _model(1), "strategy": "canary"}, key="run-1/m")
    # a rerun after a crash between the ledger write and the metadata record
    again = ledger_from_uri(ledger.location).append(
        {"model_sha256": _model(1), "strategy": "canary"}, key="run-1/m"
    )
    assert again == first
    assert ledger.entries() == [first]
    assert backend.names(ledger) == ["000000000001.json"]
    assert ledger.find("run-1/m") == first
    assert ledger.find("run-2/m") is None
    second = ledger.append({"model_sha256": _model(2)}, key="run-2/m")
    assert second["sequence"] == 2


def _append_many(uri: str, worker: int, count: int, barrier: Any) -> list[int]:
    ledger = ledger_from_uri(uri)
    barrier.wait()
    sequences = [
        ledger.append({"model_sha256": _model(worker * 100 + i)}, key=f"w{worker}-{i}")["sequence"]
        for i in range(count)
    ]
    shared = ledger.append({"model_sha256": _model(0)}, key="same-deployment")
    return [*sequences, shared["sequence"]]


def test_concurrent_appenders_get_distinct_contiguous_sequences(backend: Backend) -> None:
    ledger = backend.new()
    workers, count = (4, 4) if backend.name == "local" else (3, 3)
    if backend.name == "local":  # separate processes racing for os.link
        context = multiprocessing.get_context("fork")
        barrier: Any = context.Barrier(workers)
        processes = [
            context.Process(target=_append_many, args=(ledger.location, w, count, barrier))
            for w in range(workers)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        assert [p.exitcode for p in processes] == [0] * workers
    else:  # threads, each with its own client (one process's appends are serialised)
        barrier = threading.Barrier(workers)
        with ThreadPoolExecutor(workers) as pool:
            futures = [
                pool.submit(_append_many, ledger.location, w, count, barrier)
                for w in range(workers)
            ]
            assert all(len(f.result(timeout=120)) == count + 1 for f in futures)
    entries = ledger.entries()
    total = workers * count + 1
    assert [e["sequence"] for e in entries] == list(range(1, total + 1))
    keys = [e["deployment_key"] for e in entries]
    assert len(set(keys)) == total
    assert keys.count("same-deployment") == 1
    assert ledger.verify().sequence == total


def test_cross_check_accepts_a_consistent_history_and_names_each_mismatch(
    backend: Backend,
) -> None:
    ledger = backend.new()
    entries = _fill(ledger, 3)
    recorded = _recorded(entries)
    assert cross_check(ledger, recorded) == LedgerHead(3, entries[2]["entry_sha256"])
    # the crash window: ledger written, metadata record not (yet) written
    with pytest.raises(
        LedgerError,
        match=rf"ledger entry 3 \(model {_model(3)[:12]}\.\.\.\) has no deployment in the"
        " metadata store",
    ):
        cross_check(ledger, recorded[:2])
    wrong_model = [*recorded[:2], RecordedDeployment(**{**vars(recorded[2]), "model_sha256": "9"})]
    with pytest.raises(
        LedgerError, match=r"\(ledger sequence 3\) does not match ledger entry 3 \(model_sha256"
    ):
        cross_check(ledger, wrong_model)
    wrong_key = [*recorded[:2], RecordedDeployment(**{**vars(recorded[2]), "deployment_key": "x"})]
    with pytest.raises(LedgerError, match=r"does not match ledger entry 3 \(deployment_key"):
        cross_check(ledger, wrong_key)
    # a head recorded later than its deployment (another deployment followed) still pins it
    later_head = [*recorded[:1], RecordedDeployment(**{**vars(recorded[1]), "head_sequence": 3})]
    with pytest.raises(LedgerError, match="ledger entry 3 differs from the recorded head"):
        cross_check(ledger, [*later_head, recorded[2]])


# --------------------------------------------------------------------------------------------
# local directory only


def test_local_entries_are_read_only_and_crash_leaves_only_an_ignored_temp_file(
    tmp_path: Path,
) -> None:
    ledger = ledger_from_uri(str(tmp_path / "ledger"))
    assert isinstance(ledger, LocalLedger)
    entries = _fill(ledger, 2)
    assert stat.S_IMODE((ledger.directory / entry_name(1)).stat().st_mode) == 0o444

    # a writer killed right before its os.link: only its (complete) temp file remains
    def crash() -> None:
        def die(*_: object) -> None:
            os._exit(3)

        os.link = die  # type: ignore[assignment]
        ledger.append({"model_sha256": _model(3)}, key="crashed")

    child = multiprocessing.get_context("fork").Process(target=crash)
    child.start()
    child.join(30)
    assert child.exitcode == 3
    # and one killed mid-write: a truncated temp file
    truncated = ledger.directory / ".tmp-000000000003.json.feedface"
    truncated.write_bytes(_raw(entries[0])[:17])
    temps = sorted(n for n in os.listdir(ledger.directory) if n.startswith(".tmp-"))
    assert len(temps) == 2
    assert ledger.verify() == LedgerHead(2, entries[1]["entry_sha256"])

    third = ledger.append({"model_sha256": _model(3)}, key="crashed")  # the rerun completes
    assert third["sequence"] == 3
    assert ledger.verify().sequence == 3
    assert sorted(n for n in os.listdir(ledger.directory) if n.startswith(".tmp-")) == temps

    old = time.time() - 3600  # once stale, the next append removes them
    for name in temps:
        os.utime(ledger.directory / name, (old, old))
    ledger.append({"model_sha256": _model(4)}, key="run-4")
    assert [n for n in os.listdir(ledger.directory) if n.startswith(".tmp-")] == []


def test_local_cleanup_spares_the_temp_file_of_a_live_writer(tmp_path: Path) -> None:
    import fcntl

    ledger = ledger_from_uri(str(tmp_path / "ledger"))
    _fill(ledger, 1)
    assert isinstance(ledger, LocalLedger)
    live = ledger.directory / ".tmp-000000000002.json.live"
    live.write_bytes(b"{")
    old = time.time() - 3600
    os.utime(live, (old, old))
    with live.open("rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        ledger.append({"model_sha256": _model(2)}, key="run-2")
        assert live.exists()
    ledger.append({"model_sha256": _model(3)}, key="run-3")
    assert not live.exists()


def test_ledger_from_uri_resolves_backends_and_refuses_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = ledger_from_uri(f"file://{tmp_path}/ledger")
    assert isinstance(local, LocalLedger)
    assert local.location == f"file://{tmp_path}/ledger"
    monkeypatch.chdir(tmp_path)
    assert ledger_from_uri("relative/ledger").location == f"file://{tmp_path}/relative/ledger"
    assert ledger_from_uri(f"file://{tmp_path}/x/../ledger/").location == local.location
    with pytest.raises(LedgerError, match=r"^no deployment ledger configured$"):
        ledger_from_uri("")
    with pytest.raises(LedgerError, match="unknown ledger scheme 'gs'"):
        ledger_from_uri("gs://bucket/ledger")
    with pytest.raises(LedgerError, match="must be file:///absolute/path"):
        ledger_from_uri("file://host/ledger")
    old_format = tmp_path / "deployments.jsonl"
    old_format.write_text("{}\n")
    with pytest.raises(LedgerError, match="is a file, but a ledger is a directory"):
        ledger_from_uri(str(old_format))
    monkeypatch.delenv("AIACT_S3_ENDPOINT", raising=False)
    with pytest.raises(LedgerError, match="AIACT_S3_ENDPOINT is not set"):
        ledger_from_uri("s3://bucket/ledger")
    monkeypatch.setenv("AIACT_S3_ENDPOINT", "127.0.0.1:1")
    s3_ledger = ledger_from_uri("s3://bucket/some/prefix/")
    assert isinstance(s3_ledger, S3Ledger)
    assert s3_ledger.location == "s3://bucket/some/prefix"
    monkeypatch.setenv(RETENTION_DAYS_ENV, "soon")
    with pytest.raises(LedgerError, match="is not a number of days"):
        ledger_from_uri("s3://bucket/ledger")


def test_records_may_not_set_the_ledgers_own_fields(tmp_path: Path) -> None:
    ledger = ledger_from_uri(str(tmp_path / "ledger"))
    with pytest.raises(LedgerError, match="must not set previous_sha256, sequence"):
        ledger.append({"sequence": 7, "previous_sha256": GENESIS}, key="k")
    with pytest.raises(LedgerError, match="non-empty deployment key"):
        ledger.append({"model_sha256": _model(1)}, key="")
    assert ledger.verify() == LedgerHead(0, GENESIS)


# --------------------------------------------------------------------------------------------
# S3 (Ceph RGW) only: object lock and versions


def _s3_ledger(client: Any, entries: int) -> tuple[S3Ledger, list[dict[str, Any]]]:
    ledger = ledger_from_uri(f"s3://{_locked_bucket(client)}/deployments")
    assert isinstance(ledger, S3Ledger)
    return ledger, _fill(ledger, entries)


def test_s3_entries_are_under_compliance_retention(s3: Any) -> None:
    ledger, _ = _s3_ledger(s3, 1)
    headers = s3.stat_object(ledger.bucket, f"deployments/{entry_name(1)}").metadata
    assert headers["x-amz-object-lock-mode"] == "COMPLIANCE"
    until = datetime.fromisoformat(headers["x-amz-object-lock-retain-until-date"][:19])
    assert timedelta(hours=23) < until.replace(tzinfo=UTC) - datetime.now(UTC) < timedelta(days=1)
    # an entry stored without retention (by something other than the ledger) is flagged
    data = _raw(_rechain([*ledger.entries(), {"model_sha256": _model(2), "sequence": 2}])[1])
    s3.put_object(ledger.bucket, f"deployments/{entry_name(2)}", io.BytesIO(data), len(data))
    with pytest.raises(LedgerError, match="ledger entry 2 is not under COMPLIANCE retention"):
        ledger.verify()


def test_s3_second_version_under_an_existing_key_is_flagged(s3: Any) -> None:
    ledger, entries = _s3_ledger(s3, 2)
    data = _raw(entries[1])  # even an identical copy: the key must have exactly one version
    s3.put_object(
        ledger.bucket,
        f"deployments/{entry_name(2)}",
        io.BytesIO(data),
        len(data),
        retention=_one_day(),
    )
    with pytest.raises(
        LedgerError, match=r"'deployments/000000000002.json' has 2 versions: entry 2 was overwr"
    ):
        ledger.verify()
    with pytest.raises(LedgerError, match="has 2 versions"):
        ledger.append({"model_sha256": _model(3)}, key="run-3")


def test_s3_locked_entry_cannot_be_deleted_and_a_delete_marker_is_flagged(s3: Any) -> None:
    from minio.error import S3Error

    ledger, _ = _s3_ledger(s3, 2)
    key = f"deployments/{entry_name(2)}"
    version = s3.stat_object(ledger.bucket, key).version_id
    with pytest.raises(S3Error) as refused:
        s3.remove_object(ledger.bucket, key, version_id=version)
    assert refused.value.code == "AccessDenied"
    s3.remove_object(ledger.bucket, key)  # allowed, but only hides it behind a delete marker
    with pytest.raises(LedgerError, match="has a delete marker: someone deleted entry 2"):
        ledger.verify()


def test_s3_bucket_without_object_lock_is_refused(s3: Any) -> None:
    bucket = f"plain-{uuid.uuid4().hex[:12]}"
    s3.make_bucket(bucket)
    with pytest.raises(LedgerError, match=f"bucket '{bucket}' has no object lock"):
        ledger_from_uri(f"s3://{bucket}/deployments").append({"model_sha256": "x"}, key="k")
    assert list(s3.list_objects(bucket, recursive=True)) == []
    with pytest.raises(LedgerError, match="NoSuchBucket"):
        ledger_from_uri("s3://no-such-bucket/deployments").verify()


def test_s3_race_the_server_does_not_prevent_fails_loudly(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RGW ignores If-None-Match in versioned buckets: two writers that both pass the
    existence check both store entry 1; the ledger must say so, never fork silently."""
    ledger, _ = _s3_ledger(s3, 1)
    late = ledger_from_uri(ledger.location)
    assert isinstance(late, S3Ledger)
    monkeypatch.setattr(late, "_snapshot", lambda: {})  # it read before the first write
    real_versions = late._versions
    seen: list[str] = []

    def versions(prefix: str) -> list[Any]:
        seen.append(prefix)
        return [] if len(seen) == 1 else real_versions(prefix)  # the check-then-put window

    monkeypatch.setattr(late, "_versions", versions)
    with pytest.raises(LedgerError, match="now has 2 versions: another writer stored entry 1"):
        late.append({"model_sha256": _model(9)}, key="other-run")
    with pytest.raises(LedgerError, match="has 2 versions: entry 1 was overwritten"):
        ledger.verify()
