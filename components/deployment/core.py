"""Deployment rules: a rollout plan is valid only for an approved decision on this very model."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from aiact.approval import (
    APPROVED,
    DEMO,
    HUMAN,
    ApprovalError,
    ApprovalRequest,
    Decision,
    missing_acknowledgements,
    tally,
)

REQUEST_FIELDS = {f.name for f in fields(ApprovalRequest)}

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


def authorise(
    approval: dict[str, Any],
    model_sha256: str,
    *,
    run_id: str,
    environment: str,
    required_approvals: int,
    demo_allowed: bool,
) -> dict[str, Any]:
    """The approving decision for this model in this run, re-derived from the recorded
    decisions (not from the approval stage's verdict); refuses anything else.

    Args:
        approval: The approval artefact (request, decisions).
        model_sha256: The model being deployed.
        run_id: The run deploying it; the approval must be this run's.
        environment: The platform's environment of this deployment.
        required_approvals: The platform's number of distinct human approvers.
        demo_allowed: Whether the platform allows demo approvals (local backend, development).

    Returns:
        The settled decision: approvers (comma-separated), reason, time and kind.
    """
    raw_request = approval.get("request") or {}
    approved_model = raw_request.get("model_sha256")
    if approved_model != model_sha256:
        raise DeploymentRefused(
            f"approval is for model sha256:{str(approved_model)[:12]}, "
            f"not sha256:{model_sha256[:12]}"
        )
    if raw_request.get("pipeline_run_id") != run_id:
        raise DeploymentRefused(
            f"approval belongs to run {raw_request.get('pipeline_run_id')!r}, not to run "
            f"{run_id!r}: an approval authorises only the run that requested it"
        )
    try:
        request = ApprovalRequest(**{k: v for k, v in raw_request.items() if k in REQUEST_FIELDS})
        decisions = [Decision(**d) for d in approval.get("decisions") or []]
    except (TypeError, ApprovalError) as exc:
        raise DeploymentRefused(f"approval record is malformed: {exc}") from exc
    demos = [d.approver for d in decisions if d.kind == DEMO]
    if demos and not demo_allowed:
        raise DeploymentRefused(
            f"a demo approval ({', '.join(demos)}) cannot authorise a deployment in "
            f"{environment!r}: demo approvals exist only with the local backend in development"
        )
    unacknowledged = [
        f"{d.approver} ({', '.join(missing_acknowledgements(request, d))})"
        for d in decisions
        if missing_acknowledgements(request, d)
    ]
    if unacknowledged:
        raise DeploymentRefused(
            f"approvals without the acknowledgements the request requires: "
            f"{'; '.join(unacknowledged)}: deployment refused"
        )
    outcome = tally(request, decisions)
    if outcome.status != APPROVED:
        raise DeploymentRefused(f"no approving decision ({outcome.status}): deployment refused")
    humans = {d.approver for d in decisions if d.decision == APPROVED and d.kind == HUMAN}
    humans.discard(request.requested_by)
    counted = len(humans) if not demo_allowed else len(outcome.approvers)
    if counted < required_approvals:
        raise DeploymentRefused(
            f"{counted} distinct human approver(s) ({', '.join(sorted(humans)) or 'none'}), but "
            f"{environment!r} requires {required_approvals}: deployment refused"
        )
    return {
        "decision": APPROVED,
        "approver": ", ".join(outcome.approvers),
        "approvers": list(outcome.approvers),
        "reason": outcome.reason,
        "kind": DEMO if demos else HUMAN,
        "required_approvals": request.required_approvals,
    }


def same_decisions(recorded: dict[str, Any], live: list[dict[str, Any]]) -> bool:
    """Whether the approval artefact's decisions are the ones the approval backend holds."""

    def key(d: dict[str, Any]) -> tuple[str, str, str]:
        return (str(d.get("approver")), str(d.get("decision")), str(d.get("decided_at")))

    return sorted(map(key, recorded.get("decisions") or [])) == sorted(map(key, live))


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
