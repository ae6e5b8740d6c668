"""Structured logs: one JSON object per line on stderr, ready for any log pipeline."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def log_event(stage: str, event: str, **fields: Any) -> None:
    """Emit one structured log record for a stage."""
    record = {"ts": round(time.time(), 3), "stage": stage, "event": event, **fields}
    print(json.dumps(record, default=str, sort_keys=True), file=sys.stderr, flush=True)
