"""Deployment: rollout plans and the approval it requires."""

from __future__ import annotations

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from components.deployment.core import (
    DeploymentRefused,
    authorise,
    replaced_by_full_rollout,
    rollout_plan,
)


def test_rollout_plans() -> None:
    assert rollout_plan("canary", 10) == {
        "strategy": "canary",
        "traffic_percent": 10,
        "mirrored": False,
    }
    assert rollout_plan("shadow", 10)["mirrored"] is True
    assert rollout_plan("full", 10)["traffic_percent"] == 100
    with pytest.raises(DeploymentRefused, match="unknown strategy 'blue'"):
        rollout_plan("blue", 10)
    with pytest.raises(DeploymentRefused, match=r"canary_percent must be 1\.\.50, got 90"):
        rollout_plan("canary", 90)


def test_deployment_requires_approval_of_this_model() -> None:
    approval = {
        "request": {"model_sha256": "a" * 64},
        "decision": {"decision": "approved", "approver": "bob"},
    }
    assert authorise(approval, "a" * 64)["approver"] == "bob"
    with pytest.raises(DeploymentRefused, match="not sha256:bbbb"):
        authorise(approval, "b" * 64)
    rejected = {**approval, "decision": {"decision": "rejected"}}
    with pytest.raises(DeploymentRefused, match="no approving decision"):
        authorise(rejected, "a" * 64)
    with pytest.raises(DeploymentRefused, match="no approving decision"):
        authorise({"request": {"model_sha256": "a" * 64}, "decision": None}, "a" * 64)


def _model(artifact_id: int, name: str) -> mlmd_pb.Artifact:
    artifact = mlmd_pb.Artifact(id=artifact_id)
    artifact.custom_properties["model_name"].string_value = name
    return artifact


def test_only_a_full_rollout_retires_the_previous_production_model() -> None:
    production = [
        _model(1, "credit-scoring"),
        _model(2, "other-model"),
        _model(3, "credit-scoring"),
    ]
    retired = replaced_by_full_rollout(rollout_plan("full", 10), 3, "credit-scoring", production)
    assert [a.id for a in retired] == [1]
    assert (
        replaced_by_full_rollout(rollout_plan("canary", 10), 3, "credit-scoring", production) == []
    )
    assert (
        replaced_by_full_rollout(rollout_plan("shadow", 10), 3, "credit-scoring", production) == []
    )
