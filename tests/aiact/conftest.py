"""Fixtures of the tests that raise ModelApprovals on the emulated Kubernetes API
(tests/aiact/k8s_emulator.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.aiact.k8s_emulator import NAMESPACE, EmulatedApiServer, emulated_api_server


@pytest.fixture
def api() -> Iterator[EmulatedApiServer]:
    """An emulated Kubernetes API server for ModelApprovals."""
    with emulated_api_server() as server:
        yield server


@pytest.fixture
def act_as(
    api: EmulatedApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Path]:
    """Point $KUBECONFIG at a kubeconfig authenticating as the given user in NAMESPACE."""

    def switch(user: str) -> Path:
        path = api.kubeconfig(tmp_path / f"{user.replace(':', '_')}.kubeconfig", user, NAMESPACE)
        monkeypatch.setenv("KUBECONFIG", str(path))
        return path

    return switch
