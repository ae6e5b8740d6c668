"""Local approval backend: one JSON file per request in a directory, decisions appended under a
file lock so that two approvers deciding at once cannot lose a decision. Serves
`aiact run-local` and the approver CLI.

It applies the same rules as the Kubernetes backend (`check_decision`): N distinct approvers,
no decision after settlement or expiry, none by the requester. It cannot verify who an approver
is: locally the name is whatever the approver types.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiact.approval import (
    ApprovalError,
    ApprovalRequest,
    Decision,
    check_approver_group,
    check_decision,
    is_pending,
    parse_time,
    tally,
    to_dict,
)

POLL_INTERVAL_S = 0.2
_REQUEST_FIELDS = {f.name for f in fields(ApprovalRequest)}


def _request_of(document: dict[str, Any]) -> ApprovalRequest:
    return ApprovalRequest(**{k: v for k, v in document["request"].items() if k in _REQUEST_FIELDS})


def _decisions_of(document: dict[str, Any]) -> list[Decision]:
    stored = document.get("decisions")
    if stored is None:  # a file written before N-of-M: one optional decision
        stored = [document["decision"]] if document.get("decision") else []
    return [Decision(**entry) for entry in stored]


class LocalApprovalBackend:
    """File-backed approvals in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.directory / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, name: str) -> dict[str, Any]:
        path = self._path(name)
        if not path.is_file():
            raise ApprovalError(f"no approval request named {name!r} in {self.directory}")
        document: dict[str, Any] = json.loads(path.read_text())
        return document

    def _write(self, name: str, document: dict[str, Any]) -> None:
        temporary = self._path(name).with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self._path(name))

    def ensure_request(self, request: ApprovalRequest) -> ApprovalRequest:
        """Create the request, or return the existing one of that name.

        Raises:
            ApprovalError: when the approver group would admit anyone.
        """
        check_approver_group(request.approver_group)
        with self._locked():
            if self._path(request.name).is_file():
                return _request_of(self._read(request.name))
            self._write(request.name, {"request": to_dict(request), "decisions": []})
            return request

    def request(self, name: str) -> ApprovalRequest:
        """A stored request."""
        return _request_of(self._read(name))

    def decide(self, name: str, decision: Decision) -> None:
        """Append one decision.

        Raises:
            ApprovalError: when the request is settled or expired, the approver requested it or
                has already decided it (`check_decision`).
        """
        with self._locked():
            document = self._read(name)
            if document.get("withdrawn"):
                raise ApprovalError(
                    f"approval {name!r} was withdrawn ({document['withdrawn']['reason']}): "
                    "it can no longer be decided"
                )
            decisions = _decisions_of(document)
            check_decision(_request_of(document), decisions, decision)
            document.pop("decision", None)
            document["decisions"] = [to_dict(d) for d in [*decisions, decision]]
            self._write(name, document)

    def withdraw(self, name: str, reason: str) -> None:
        """Withdraw an unsettled request (its run was abandoned, see `aiact resume`): it is no
        longer pending and can no longer be decided."""
        with self._locked():
            document = self._read(name)
            document["withdrawn"] = {
                "reason": reason,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self._write(name, document)

    def decisions(self, name: str) -> list[Decision]:
        """The decisions on a request, oldest first."""
        return _decisions_of(self._read(name))

    def wait(self, name: str, timeout_s: float) -> list[Decision]:
        """Poll until the request settles; at the timeout or the request's expiry, whichever
        comes first, return the decisions recorded by then."""
        request = self.request(name)
        until_expiry = (parse_time(request.expires_at) - datetime.now(UTC)).total_seconds()
        deadline = time.monotonic() + max(0.0, min(timeout_s, until_expiry))
        while True:
            found = self.decisions(name)
            if tally(request, found).settled or time.monotonic() >= deadline:
                return found
            time.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))

    def pending(self) -> list[ApprovalRequest]:
        """Unsettled, unexpired requests, by name."""
        now = datetime.now(UTC)
        documents = (self._read(p.stem) for p in sorted(self.directory.glob("*.json")))
        return [
            request
            for document in documents
            if not document.get("withdrawn")
            and is_pending(request := _request_of(document), _decisions_of(document), now)
        ]
