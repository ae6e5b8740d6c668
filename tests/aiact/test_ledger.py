"""The deployment ledger's hash chain detects edits, deletions and reordering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiact.ledger import GENESIS, FileLedger, LedgerError, ledger_from_uri


def _ledger(tmp_path: Path, entries: int) -> FileLedger:
    ledger = ledger_from_uri(f"file://{tmp_path / 'ledger.jsonl'}")
    for index in range(entries):
        ledger.append({"model_sha256": f"{index:064d}", "strategy": "canary"})
    return ledger


def _rewrite(ledger: FileLedger, entries: list[dict]) -> None:
    ledger.path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


def test_entries_are_chained(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, 3)
    entries = ledger.entries()
    assert [e["sequence"] for e in entries] == [1, 2, 3]
    assert entries[0]["previous_sha256"] == GENESIS
    assert entries[2]["previous_sha256"] == entries[1]["entry_sha256"]
    assert ledger.verify() == 3


def test_edited_entry_is_detected(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, 3)
    entries = ledger.entries()
    entries[1]["strategy"] = "full"
    _rewrite(ledger, entries)
    with pytest.raises(LedgerError, match="entry 2: content altered"):
        ledger.verify()
    with pytest.raises(LedgerError):
        ledger.append({"model_sha256": "x"})


def test_removed_entry_is_detected(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, 3)
    entries = ledger.entries()
    _rewrite(ledger, [entries[0], entries[2]])
    with pytest.raises(LedgerError, match="entry 2: sequence is 3"):
        ledger.verify()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(LedgerError, match="not available"):
        ledger_from_uri("s3://bucket/ledger")
