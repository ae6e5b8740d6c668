"""Artefact storage: read sources from a local path or from S3-compatible object storage.

S3 endpoint and credentials come only from the environment (``AIACT_S3_ENDPOINT``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AIACT_S3_SECURE``), never from pipeline
parameters, so they never appear in a compiled pipeline or a run's recorded inputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

S3_ENDPOINT_ENV = "AIACT_S3_ENDPOINT"


class StorageError(RuntimeError):
    """A source URI cannot be resolved or fetched."""


def s3_client() -> object:
    """A MinIO client configured from the environment."""
    from minio import Minio

    endpoint = os.environ.get(S3_ENDPOINT_ENV, "")
    if not endpoint:
        raise StorageError(f"s3:// source given but {S3_ENDPOINT_ENV} is not set")
    return Minio(
        endpoint,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        secure=os.environ.get("AIACT_S3_SECURE", "true").lower() == "true",
    )


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

        target = workdir / parsed.netloc / parsed.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            s3_client().fget_object(parsed.netloc, parsed.path.lstrip("/"), str(target))  # type: ignore[attr-defined]
        except S3Error as exc:
            raise StorageError(f"cannot fetch {uri!r}: {exc.code}: {exc.message}") from exc
        return target
    raise StorageError(f"unsupported source scheme {parsed.scheme!r} in {uri!r} (path or s3://)")
