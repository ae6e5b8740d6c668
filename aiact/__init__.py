"""Shared services of the AI Act compliance suite: lineage, storage, policy, evidence, approval."""

import importlib.metadata

try:
    __version__ = importlib.metadata.version("aiact-pipelines")
except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "unknown"
