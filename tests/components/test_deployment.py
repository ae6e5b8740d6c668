"""Deployment: rollout plans and the approval it requires."""

from __future__ import annotations

import pytest

from components.deployment.core import DeploymentRefused, authorise, rollout_plan


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
