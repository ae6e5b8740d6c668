"""Object storage through the minio client, against an S3 server on 127.0.0.1 that the fixture
starts and stops: tested against S3 via Ceph RGW (Debian radosgw 16.2, installed by
hack/setup-services.sh; one monitor and a memory-backed OSD)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiact import lineage
from aiact.hashing import sha256_path
from aiact.lineage import LineageStore, RunInfo
from aiact.policy import load_policy
from aiact.refdata import data_card, generate_credit_data
from aiact.storage import StorageError, fetch, fetch_tree, s3_client, store_version
from tests.aiact.s3_server import ACCESS_KEY, SECRET_KEY, start_s3


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3 server on free ports of 127.0.0.1 for this module."""
    server = start_s3(tmp_path_factory.mktemp("s3"))
    print(f"S3 server: {server.kind} at {server.endpoint}")
    yield server.endpoint
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """Environment pointing the suite at the server (the only way credentials reach it), and
    fresh buckets `sources` and `datasets`."""
    monkeypatch.setenv("AIACT_S3_ENDPOINT", s3_endpoint)
    monkeypatch.setenv("AIACT_S3_SECURE", "false")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    client = s3_client()
    for bucket in ("sources", "datasets"):
        if client.bucket_exists(bucket):
            for item in client.list_objects(bucket, recursive=True):
                client.remove_object(bucket, item.object_name)
        else:
            client.make_bucket(bucket)
    return client


def test_fetch_reads_an_object_and_names_a_missing_one(s3: object, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("a,b\n1,2\n")
    s3.fput_object("sources", "raw/in.csv", str(source))  # type: ignore[attr-defined]
    fetched = fetch("s3://sources/raw/in.csv", tmp_path / "work")
    assert fetched.read_text() == "a,b\n1,2\n"
    with pytest.raises(StorageError, match=r"cannot fetch 's3://sources/raw/none\.csv': NoSuchKey"):
        fetch("s3://sources/raw/none.csv", tmp_path / "work")


def test_s3_without_endpoint_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIACT_S3_ENDPOINT", raising=False)
    with pytest.raises(StorageError, match="AIACT_S3_ENDPOINT is not set"):
        fetch("s3://sources/x.csv", tmp_path)
    with pytest.raises(StorageError, match="unsupported source scheme 'gs'"):
        fetch("gs://b/x.csv", tmp_path)


def test_store_version_in_s3_is_idempotent(s3: object, tmp_path: Path) -> None:
    directory = tmp_path / "dataset"
    (directory / "sub").mkdir(parents=True)
    (directory / "data.csv").write_text("x\n1\n")
    (directory / "sub" / "card.yaml").write_text("name: x\n")
    uri = store_version(directory, "0123456789abcdef", "s3://datasets/credit")
    assert uri == "s3://datasets/credit/0123456789abcdef/"
    names = sorted(o.object_name for o in s3.list_objects("datasets", recursive=True))  # type: ignore[attr-defined]
    assert names == ["credit/0123456789abcdef/data.csv", "credit/0123456789abcdef/sub/card.yaml"]
    first = s3.stat_object("datasets", names[0]).last_modified  # type: ignore[attr-defined]
    assert store_version(directory, "0123456789abcdef", "s3://datasets/credit") == uri
    assert s3.stat_object("datasets", names[0]).last_modified == first  # type: ignore[attr-defined]


def test_store_version_local_and_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "dataset"
    directory.mkdir()
    (directory / "data.csv").write_text("x\n1\n")
    monkeypatch.delenv("AIACT_DATASET_STORE", raising=False)
    assert store_version(directory, "v1") is None
    monkeypatch.setenv("AIACT_DATASET_STORE", str(tmp_path / "store"))
    assert store_version(directory, "v1") == f"{tmp_path / 'store' / 'v1'}/"
    assert (tmp_path / "store" / "v1" / "data.csv").read_text() == "x\n1\n"


def test_data_preparation_reads_parquet_from_s3_and_stores_the_version(
    s3: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.data_preparation.executor import run_data_preparation

    generate_credit_data(1500, seed=2).to_parquet(tmp_path / "credit.parquet", index=False)
    (tmp_path / "card.yaml").write_text(json.dumps(data_card(1500, seed=2)))
    s3.fput_object("sources", "credit/credit.parquet", str(tmp_path / "credit.parquet"))  # type: ignore[attr-defined]
    s3.fput_object("sources", "credit/card.yaml", str(tmp_path / "card.yaml"))  # type: ignore[attr-defined]
    monkeypatch.setenv("AIACT_DATASET_STORE", "s3://datasets/prepared")
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    versions = []
    for attempt in range(2):
        out = tmp_path / f"out{attempt}"
        metadata = run_data_preparation(
            run=RunInfo(run_id=f"run-{attempt}"),
            metadata_uri=uri,
            source_uri="s3://sources/credit/credit.parquet",
            data_card_uri="s3://sources/credit/card.yaml",
            use_case_uri="",
            policy=load_policy(),
            dataset_dir=out / "dataset",
            dataset_uri=str(out / "dataset"),
            report_path=out / "report.json",
            report_uri=str(out / "report.json"),
            report_html_path=out / "report.html",
        )
        versions.append(metadata["version"])
    assert versions[0] == versions[1]
    stored = f"s3://datasets/prepared/{versions[0]}/"
    [dataset] = LineageStore.connect(uri).store.get_artifacts_by_type(lineage.DATASET)
    assert lineage.properties_of(dataset)["stored_uri"] == stored
    names = {o.object_name for o in s3.list_objects("datasets", recursive=True)}  # type: ignore[attr-defined]
    assert names == {
        f"prepared/{versions[0]}/{n}" for n in ("data.csv", "data_card.yaml", "schema.pbtxt")
    }
    assert lineage.properties_of(dataset)["source_uri"] == "s3://sources/credit/credit.parquet"


def test_fetch_tree_downloads_a_kfp_style_artifact_directory(s3: object, tmp_path: Path) -> None:
    """A directory artefact stored under a prefix (as KFP stores outputs in MinIO) comes back
    byte-identical, under s3:// and KFP's minio:// scheme alike."""
    source = tmp_path / "model"
    (source / "nested").mkdir(parents=True)
    (source / "model.json").write_text("{}\n")
    (source / "nested" / "weights.pt").write_bytes(b"\x00\x01" * 100)
    client = s3_client()
    for path in source.rglob("*"):
        if path.is_file():
            key = f"runs/1/model/{path.relative_to(source).as_posix()}"
            client.fput_object("datasets", key, str(path))
    for scheme in ("s3", "minio"):
        fetched = fetch_tree(f"{scheme}://datasets/runs/1/model", tmp_path / scheme)
        assert sha256_path(fetched) == sha256_path(source)
    with pytest.raises(StorageError, match="no objects under"):
        fetch_tree("s3://datasets/runs/2/model", tmp_path / "missing")


def test_a_use_case_is_read_from_object_storage(s3: object, tmp_path: Path) -> None:
    """On a cluster a data scientist points use_case_uri at object storage: the folder loads
    from s3:// with the same identity (content hash) as the local copy, and feature
    engineering and the other stages compare that hash with what data preparation read."""
    from aiact.usecase import BUNDLED_USE_CASE, UseCaseError, load_use_case

    client = s3_client()
    for path in BUNDLED_USE_CASE.iterdir():
        if path.is_file():
            client.fput_object("sources", f"usecases/credit/{path.name}", str(path))
    remote = load_use_case("s3://sources/usecases/credit", tmp_path / "work")
    local = load_use_case("", tmp_path / "local")
    assert remote.sha256 == local.sha256 == sha256_path(BUNDLED_USE_CASE)
    assert remote.uri == "s3://sources/usecases/credit" and remote.name == "credit"
    with pytest.raises(UseCaseError, match=r"use case s3://sources/usecases/none: .*no objects"):
        load_use_case("s3://sources/usecases/none", tmp_path / "none")
