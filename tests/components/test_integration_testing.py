"""Integration tests against a real model server process on 127.0.0.1."""

from __future__ import annotations

import io
import json
import shutil
import urllib.request
from pathlib import Path

import torch

from aiact.featureset import FeatureSplit
from aiact.model_package import ModelPackage
from aiact.transform import FittedTransform
from components.integration_testing.core import model_server, run_integration_tests


def test_served_model_passes_contract_and_regression(
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    directory, package = clean_package
    holdout = clean_features[1]["test"]
    sample, expected = holdout.raw.head(50), package.predict_proba(holdout.features[:50])
    with model_server(directory, "credit-scoring") as server:
        gate, evidence = run_integration_tests(
            server, package, sample, expected, policy["integration"]
        )
    assert gate.passed, [c.describe() for c in gate.breaches]
    assert evidence["max_abs_difference"] <= 1e-6
    non_numeric = evidence["bad_requests"]["non_numeric"]
    assert non_numeric["status"] == 400 and "'age' must be numeric" in non_numeric["error"]
    assert "lack required columns: age" in evidence["bad_requests"]["missing_column"]["error"]


def test_a_different_model_behind_the_endpoint_fails_regression(
    tmp_path: Path,
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    directory, package = clean_package
    served = tmp_path / "served"
    shutil.copytree(directory, served)
    weights = dict(package.model.state_dict())
    weights["network.0.bias"] = weights["network.0.bias"] + 1.0
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    (served / "weights.pt").write_bytes(buffer.getvalue())
    holdout = clean_features[1]["test"]
    sample, expected = holdout.raw.head(50), package.predict_proba(holdout.features[:50])
    with model_server(served, "credit-scoring") as server:
        gate, _ = run_integration_tests(server, package, sample, expected, policy["integration"])
        with urllib.request.urlopen(f"{server.base_url}/v1/models/credit-scoring") as response:
            assert json.loads(response.read())["ready"] is True
    assert [c.name for c in gate.breaches] == ["prediction_mismatch_rate"]
