"""Content hashes: the identity of every artefact the suite records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Stable JSON bytes: sorted keys, no insignificant whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def sha256_json(value: Any) -> str:
    """Hex SHA-256 of a value's canonical JSON."""
    return sha256_bytes(canonical_json(value))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of one file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_path(path: Path) -> str:
    """Hex SHA-256 of a file, or of a directory tree (relative names and file hashes, sorted).

    A directory's hash changes when any file is added, removed, renamed or edited, and does not
    depend on file modification times or on the order the filesystem lists entries.
    """
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"cannot hash {path}: no such file or directory")
    entries = [
        f"{child.relative_to(path).as_posix()}\0{sha256_file(child)}"
        for child in sorted(path.rglob("*"))
        if child.is_file()
    ]
    return sha256_bytes("\n".join(entries).encode())
