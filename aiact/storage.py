"""Artefact storage: read sources from a local path or from S3-compatible object storage, and
keep content-addressed artefacts (datasets) under their version in a configured store.

S3 endpoint and credentials come only from the environment (``AIACT_S3_ENDPOINT``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AIACT_S3_SECURE``), never from pipeline
parameters, so they never appear in a compiled pipeline or a run's recorded inputs. The store
for versioned datasets is ``AIACT_DATASET_STORE``: ``s3://bucket/prefix`` or a local directory;
unset, a dataset stays only where the pipeline wrote it (the local filesystem default).

Every output a stage records is also kept as a content-addressed object (``keep_object``,
below; ``AIACT_OBJECT_STORE``, else the output's own bucket, else beside the SQLite store), so
that an artefact two runs share never depends on one run's folder.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aiact.hashing import sha256_path

S3_ENDPOINT_ENV = "AIACT_S3_ENDPOINT"
DATASET_STORE_ENV = "AIACT_DATASET_STORE"


class StorageError(RuntimeError):
    """A URI cannot be resolved, fetched or written."""


def s3_client() -> Any:
    """A MinIO client configured from the environment."""
    from minio import Minio

    endpoint = os.environ.get(S3_ENDPOINT_ENV, "")
    if not endpoint:
        raise StorageError(f"s3:// URI given but {S3_ENDPOINT_ENV} is not set")
    return Minio(
        endpoint,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        secure=os.environ.get("AIACT_S3_SECURE", "true").lower() == "true",
    )


def _bucket_key(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.strip("/")


def fetch(uri: str, workdir: Path) -> Path:
    """A local path holding the content of `uri` (``s3://bucket/key``, ``file://`` or a path)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme else uri)
        if not path.exists():
            raise StorageError(f"source {uri!r} does not exist")
        return path
    if parsed.scheme == "s3":
        from minio.error import S3Error

        bucket, key = _bucket_key(uri)
        target = workdir / bucket / key
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            s3_client().fget_object(bucket, key, str(target))
        except S3Error as exc:
            raise StorageError(f"cannot fetch {uri!r}: {exc.code}: {exc.message}") from exc
        return target
    raise StorageError(f"unsupported source scheme {parsed.scheme!r} in {uri!r} (path or s3://)")


def fetch_tree(uri: str, workdir: Path) -> Path:
    """A local directory (or file) holding the artefact at `uri`: a path, or every object under
    an ``s3://`` / ``minio://`` prefix (KFP stores output artefacts in MinIO as ``minio://``)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return fetch(uri, workdir)
    if parsed.scheme not in ("s3", "minio"):
        raise StorageError(f"unsupported artefact scheme {parsed.scheme!r} in {uri!r}")
    from minio.error import S3Error

    bucket, prefix = _bucket_key(uri)
    target = workdir / bucket / prefix
    client = s3_client()
    try:
        objects = [o for o in client.list_objects(bucket, prefix=prefix, recursive=True)]
        if not objects:
            raise StorageError(f"no objects under {uri!r}")
        for item in objects:
            relative = item.object_name[len(prefix) :].lstrip("/")
            destination = target / relative if relative else target
            client.fget_object(bucket, item.object_name, str(destination))
    except S3Error as exc:
        raise StorageError(f"cannot fetch {uri!r}: {exc.code}: {exc.message}") from exc
    return target


def store_version(directory: Path, version: str, store: str | None = None) -> str | None:
    """Copy a content-addressed artefact directory to ``<store>/<version>/`` and return that
    URI; None when no store is configured (`store`, else ``AIACT_DATASET_STORE``).

    Idempotent: a version's content never changes, so files already stored are not rewritten.
    """
    store = store if store is not None else os.environ.get(DATASET_STORE_ENV, "")
    if not store:
        return None
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    parsed = urlparse(store)
    if parsed.scheme == "s3":
        from minio.error import S3Error

        bucket, prefix = _bucket_key(store)
        base = f"{prefix}/{version}" if prefix else version
        client = s3_client()
        try:
            for path in files:
                key = f"{base}/{path.relative_to(directory).as_posix()}"
                if not _object_exists(client, bucket, key):
                    client.fput_object(bucket, key, str(path))
        except S3Error as exc:
            raise StorageError(f"cannot store {version} in {store!r}: {exc.code}") from exc
        return f"s3://{bucket}/{base}/"
    if parsed.scheme not in ("", "file"):
        raise StorageError(f"unsupported store scheme {parsed.scheme!r} in {store!r}")
    target = Path(parsed.path if parsed.scheme else store) / version
    for path in files:
        destination = target / path.relative_to(directory)
        if not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    return str(target) + "/"


def _object_exists(client: Any, bucket: str, key: str) -> bool:
    from minio.error import S3Error

    try:
        client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
            return False
        raise
    return True


# -- content-addressed objects ---------------------------------------------------------------
#
# Every output a stage records is also kept as an object named by its content:
# ``<root>/sha256/<first two hex digits>/<sha256>/<name>`` (a file, or a directory tree for
# directory artefacts; `name` is the output's own file name, so names inside a tree hash the
# same). An MLMD artefact recorded by more than one run names this object as its `uri` (see
# `LineageStore.record_execution`), so deleting one run's folder never breaks another run's
# evidence. Objects are copies (never hard links: a stage re-run that rewrote its output file in
# place would rewrite the object too), assembled beside their place and renamed into it, and
# never rewritten.

OBJECT_STORE_ENV = "AIACT_OBJECT_STORE"
OBJECT_PREFIX = "sha256"
# The default object prefix inside the bucket of a KFP (minio:// or s3://) output.
BUCKET_OBJECTS = "aiact-objects"


def object_store_root(metadata_uri: str, output_uri: str = "") -> str:
    """Where content-addressed objects live: ``AIACT_OBJECT_STORE`` (``s3://bucket/prefix`` or
    a directory) when set; else, for an output KFP stores in object storage (``minio://`` or
    ``s3://``), ``s3://<its bucket>/aiact-objects``; else, for an embedded SQLite metadata
    store, the folder ``objects`` beside it; else '' (no object store: artefacts keep the
    location their producer wrote)."""
    configured = os.environ.get(OBJECT_STORE_ENV, "")
    if configured:
        return configured
    output = urlparse(output_uri)
    if output.scheme in ("minio", "s3") and output.netloc:
        return f"s3://{output.netloc}/{BUCKET_OBJECTS}"
    uri = metadata_uri or os.environ.get("AIACT_METADATA_URI", "")
    parsed = urlparse(uri)
    if uri and uri != "memory:" and parsed.scheme in ("", "sqlite", "file"):
        return str(Path(parsed.path if parsed.scheme else uri).parent / "objects")
    return ""


def object_uri(root: str, content_sha256: str, name: str) -> str:
    """The URI of the object holding `content_sha256` under `name` in the store at `root`."""
    if not name or "/" in name or name in (".", ".."):
        raise StorageError(f"object name {name!r} must be a plain file name")
    relative = f"{OBJECT_PREFIX}/{content_sha256[:2]}/{content_sha256}/{name}"
    parsed = urlparse(root)
    if parsed.scheme == "s3":
        bucket, prefix = _bucket_key(root)
        return f"s3://{bucket}/{prefix}/{relative}" if prefix else f"s3://{bucket}/{relative}"
    if parsed.scheme not in ("", "file"):
        raise StorageError(f"unsupported object store scheme {parsed.scheme!r} in {root!r}")
    return str(Path(parsed.path if parsed.scheme else root) / relative)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def place(source: Path, target: Path) -> None:
    """Copy the file or tree `source` to `target`, complete or not at all: it is assembled
    beside `target` and renamed into place."""
    if not source.exists():
        raise StorageError(f"cannot store {source}: no such file or directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.partial"
    try:
        if source.is_dir():
            staging.mkdir()
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    _copy(path, staging / path.relative_to(source))
        else:
            _copy(source, staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.exists():
                raise
    finally:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        elif staging.exists():
            staging.unlink()


def keep_object(source: Path, content_sha256: str, name: str, root: str) -> str:
    """Store the content of `source` (a file or directory whose hash is `content_sha256`) as an
    object under `root`; returns its URI. Idempotent: an object already stored is kept as it is
    (its content is named by its hash), unless it no longer hashes to its name: then it is set
    aside and stored again from `source`."""
    uri = object_uri(root, content_sha256, name)
    if urlparse(uri).scheme != "s3":
        target = Path(uri)
        if target.exists() and sha256_path(target) != content_sha256:
            # An altered object is set aside (kept for the investigation), never served again.
            target.rename(target.with_name(f".{target.name}.altered.{time.time_ns()}"))
        if not target.exists():
            place(source, target)
        return uri
    from minio.error import S3Error

    bucket, key = _bucket_key(uri)
    client = s3_client()
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    try:
        for path in files:
            object_key = key if path == source else f"{key}/{path.relative_to(source).as_posix()}"
            if not _object_exists(client, bucket, object_key):
                client.fput_object(bucket, object_key, str(path))
    except S3Error as exc:
        raise StorageError(f"cannot store object {uri}: {exc.code}: {exc.message}") from exc
    return uri + ("/" if source.is_dir() else "")


def is_object_uri(uri: str) -> bool:
    """Whether `uri` names a content-addressed object (of any store)."""
    parts = urlparse(uri).path.rstrip("/").split("/")
    return (
        len(parts) >= 4
        and parts[-4] == OBJECT_PREFIX
        and len(parts[-2]) == 64
        and parts[-3] == parts[-2][:2]
    )
