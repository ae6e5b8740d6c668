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


def _approval(verdict: str = "approved", model: str = "a" * 64) -> dict:
    return {
        "request": {
            "name": "credit-scoring-aaaaaaaaaaaa-12345678",
            "model_name": "credit-scoring",
            "model_sha256": model,
            "evaluation_report_uri": "/e",
            "evaluation_report_sha256": "e" * 64,
            "integration_report_uri": "/i",
            "integration_report_sha256": "i" * 64,
            "pipeline_run_id": "run-1",
            "requested_by": "ci",
            "approver_group": "aiact-approvers",
            "environment": "development",
            "expires_at": "2026-12-31T00:00:00+00:00",
            "required_approvals": 1,
        },
        "decisions": [
            {
                "decision": verdict,
                "approver": "bob",
                "reason": "reviewed",
                "decided_at": "2026-12-01T00:00:00+00:00",
                "kind": "human",
            }
        ],
    }


def _authorise(approval: dict, model: str = "a" * 64, **overrides: object) -> dict:
    settings: dict = {
        "run_id": "run-1",
        "environment": "development",
        "required_approvals": 1,
        "demo_allowed": True,
        **overrides,
    }
    return authorise(approval, model, **settings)


def test_deployment_requires_approval_of_this_model() -> None:
    assert _authorise(_approval())["approver"] == "bob"
    with pytest.raises(DeploymentRefused, match="not sha256:bbbb"):
        _authorise(_approval(), "b" * 64)
    with pytest.raises(DeploymentRefused, match=r"no approving decision \(rejected\)"):
        _authorise(_approval("rejected"))
    undecided = {**_approval(), "decisions": []}
    with pytest.raises(DeploymentRefused, match=r"no approving decision \(pending\)"):
        _authorise(undecided)
    with pytest.raises(DeploymentRefused, match="belongs to run 'run-1', not to run 'run-2'"):
        _authorise(_approval(), run_id="run-2")
    with pytest.raises(DeploymentRefused, match="requires 2"):
        _authorise(_approval(), environment="production", required_approvals=2)
    needs = _approval()
    needs["request"]["acknowledgements_required"] = ["insufficient_data[age_band]"]
    with pytest.raises(DeploymentRefused, match=r"bob \(insufficient_data\[age_band\]\)"):
        _authorise(needs)
    needs["decisions"][0]["acknowledged"] = ["insufficient_data[age_band]"]
    assert _authorise(needs)["approver"] == "bob"


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
