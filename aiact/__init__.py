"""Shared services of the AI Act compliance suite: lineage, storage, policy, evidence, approval."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`aiact.__version__`, looked up when asked for: reading the installed distributions'
    metadata costs ~30 ms, which every stage process would otherwise pay at import."""
    if name != "__version__":
        raise AttributeError(f"module 'aiact' has no attribute {name!r}")
    import importlib.metadata

    try:
        return importlib.metadata.version("aiact-pipelines")
    except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
        return "unknown"
