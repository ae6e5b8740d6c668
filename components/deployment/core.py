"""Deployment rules: a rollout plan is valid only for an approved decision on this very model."""

from __future__ import annotations

from typing import Any

from aiact.approval import APPROVED

STRATEGIES = ("canary", "shadow", "full")


class DeploymentRefused(RuntimeError):
    """The rollout is not authorised or not well formed."""


def rollout_plan(strategy: str, canary_percent: int) -> dict[str, Any]:
    """Traffic split of a strategy: canary serves a share, shadow mirrors without serving."""
    if strategy not in STRATEGIES:
        raise DeploymentRefused(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    if strategy == "canary":
        if not 1 <= canary_percent <= 50:
            raise DeploymentRefused(f"canary_percent must be 1..50, got {canary_percent}")
        return {"strategy": strategy, "traffic_percent": canary_percent, "mirrored": False}
    if strategy == "shadow":
        return {"strategy": strategy, "traffic_percent": 0, "mirrored": True}
    return {"strategy": strategy, "traffic_percent": 100, "mirrored": False}


def authorise(approval: dict[str, Any], model_sha256: str) -> dict[str, Any]:
    """The approving decision for this model; refuses anything else."""
    decision = approval.get("decision") or {}
    if decision.get("decision") != APPROVED:
        raise DeploymentRefused("no approving decision: deployment refused")
    approved_model = approval.get("request", {}).get("model_sha256")
    if approved_model != model_sha256:
        raise DeploymentRefused(
            f"approval is for model sha256:{str(approved_model)[:12]}, "
            f"not sha256:{model_sha256[:12]}"
        )
    return dict(decision)


def replaced_by_full_rollout(
    plan: dict[str, Any], model_id: int, model_name: str, production: list[Any]
) -> list[Any]:
    """The production models a full rollout retires: same model name, not the new model.
    Canary and shadow rollouts run beside the current production model and retire nothing."""
    if plan["strategy"] != "full":
        return []
    return [
        artifact
        for artifact in production
        if artifact.id != model_id
        and artifact.custom_properties["model_name"].string_value == model_name
    ]
