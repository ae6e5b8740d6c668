"""Shared fixtures: reference data written to temporary directories, an in-memory MLMD store."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiact.lineage import LineageStore, RunInfo
from aiact.policy import load_policy


@pytest.fixture
def memory_store() -> LineageStore:
    """A fresh in-memory ML Metadata store (MLMD's fake database)."""
    return LineageStore.connect("memory:")


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    """A fresh embedded SQLite MLMD store."""
    return f"sqlite://{tmp_path / 'mlmd.sqlite'}"


@pytest.fixture
def policy() -> dict:
    """The suite's default gate policy."""
    return load_policy()


@pytest.fixture
def run() -> RunInfo:
    """A run identity for stage executions."""
    return RunInfo(
        run_id="test-run",
        pipeline_name="test",
        code_commit="",  # the build's own (a parameter may only confirm it)
        pipeline_spec_sha256="f" * 64,
        environment="development",
    )
