"""Artefact storage: read sources from a local path or from S3-compatible object storage, and
keep content-addressed artefacts (datasets) under their version in a configured store.

S3 endpoint and credentials come only from the environment (``AIACT_S3_ENDPOINT``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AIACT_S3_SECURE``), never from pipeline
parameters, so they never appear in a compiled pipeline or a run's recorded inputs. The store
for versioned datasets is ``AIACT_DATASET_STORE``: ``s3://bucket/prefix`` or a local directory;
unset, a dataset stays only where the pipeline wrote it (the local filesystem default).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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
