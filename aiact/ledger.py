"""The deployment ledger: an append-only, hash-chained record of every deployment.

Each entry carries the hash of the entry before it, so editing, removing or reordering any
past entry breaks every hash after it and `verify()` names the first broken sequence number.
The file backend (`file:///path/ledger.jsonl` or a path) appends under an exclusive lock.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aiact.hashing import sha256_json

LEDGER_URI_ENV = "AIACT_LEDGER_URI"
GENESIS = "0" * 64


class LedgerError(RuntimeError):
    """The ledger is unavailable or its chain is broken."""


def entry_hash(entry: dict[str, Any]) -> str:
    """The hash of an entry's content (everything but its own hash)."""
    return sha256_json({k: v for k, v in entry.items() if k != "entry_sha256"})


class FileLedger:
    """A JSON-lines ledger on a local (or mounted) filesystem."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[dict[str, Any]]:
        """All entries, oldest first."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Chain and append one record; returns the stored entry."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self.verify()
                previous = self.entries()
                entry = {
                    **record,
                    "sequence": len(previous) + 1,
                    "previous_sha256": previous[-1]["entry_sha256"] if previous else GENESIS,
                }
                entry["entry_sha256"] = entry_hash(entry)
                handle.write(json.dumps(entry, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return entry

    def verify(self) -> int:
        """Check the whole chain; returns the number of entries, raises on the first break."""
        expected_previous = GENESIS
        entries = self.entries()
        for position, entry in enumerate(entries, start=1):
            if entry.get("sequence") != position:
                raise LedgerError(f"ledger entry {position}: sequence is {entry.get('sequence')}")
            if entry.get("previous_sha256") != expected_previous:
                raise LedgerError(f"ledger entry {position}: chain broken (previous hash differs)")
            if entry_hash(entry) != entry.get("entry_sha256"):
                raise LedgerError(f"ledger entry {position}: content altered (hash mismatch)")
            expected_previous = entry["entry_sha256"]
        return len(entries)


def ledger_from_uri(uri: str) -> FileLedger:
    """The ledger named by `uri`, or by AIACT_LEDGER_URI when empty."""
    uri = uri or os.environ.get(LEDGER_URI_ENV, "")
    if not uri:
        raise LedgerError(
            f"no deployment ledger configured: pass ledger_uri or set {LEDGER_URI_ENV}"
        )
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return FileLedger(Path(parsed.path if parsed.scheme else uri))
    raise LedgerError(
        f"ledger backend {parsed.scheme!r} is not available in this release (file ledger only)"
    )
