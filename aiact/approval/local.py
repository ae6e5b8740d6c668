"""Local approval backend: one JSON file per request in a directory, decisions under a file
lock so a decision is taken at most once. Serves `aiact run-local` and the approver CLI."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from aiact.approval import ApprovalError, ApprovalRequest, Decision, to_dict

POLL_INTERVAL_S = 0.2


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
        """Create the request, or return the existing one of that name."""
        with self._locked():
            if self._path(request.name).is_file():
                return ApprovalRequest(**self._read(request.name)["request"])
            self._write(request.name, {"request": to_dict(request), "decision": None})
            return request

    def request(self, name: str) -> ApprovalRequest:
        """A stored request."""
        return ApprovalRequest(**self._read(name)["request"])

    def decide(self, name: str, decision: Decision) -> None:
        """Record a decision once; a second decision is refused."""
        with self._locked():
            document = self._read(name)
            if document["decision"] is not None:
                taken = document["decision"]
                raise ApprovalError(
                    f"approval {name!r} is already {taken['decision']} by {taken['approver']}: "
                    "decisions are final"
                )
            document["decision"] = to_dict(decision)
            self._write(name, document)

    def decision(self, name: str) -> Decision | None:
        """The decision on a request, if taken."""
        stored = self._read(name)["decision"]
        return None if stored is None else Decision(**stored)

    def wait(self, name: str, timeout_s: float) -> Decision | None:
        """Block until the request is decided; None when the timeout passes first."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.decision(name)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))

    def pending(self) -> list[ApprovalRequest]:
        """Requests still awaiting a decision, by name."""
        names = sorted(p.stem for p in self.directory.glob("*.json"))
        known = {f.name for f in fields(ApprovalRequest)}
        return [
            ApprovalRequest(**{k: v for k, v in doc["request"].items() if k in known})
            for doc in (self._read(n) for n in names)
            if doc["decision"] is None
        ]
