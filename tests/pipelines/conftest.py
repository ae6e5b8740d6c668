"""A clean end-to-end run shared by the pipeline tests (one kfp.local run per session)."""

from __future__ import annotations

import pytest

from pipelines.local_run import LocalRunConfig, LocalRunResult, run_local


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalRunConfig, LocalRunResult]:
    config = LocalRunConfig(workdir=tmp_path_factory.mktemp("clean"), demo_approver="dana")
    return config, run_local(config)
