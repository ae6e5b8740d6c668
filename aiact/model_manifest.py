"""A model package's manifest (`model.json`: name, architecture, threshold, versions), read
without torch: the integration-testing stage starts its model server from it before it loads
the model itself (aiact.model_package)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "model.json"


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of the package in `directory`.

    Raises:
        FileNotFoundError: `directory` holds no model package.
    """
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a model package (no {MANIFEST})")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest
