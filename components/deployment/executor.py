"""Deployment executor: verify the whole chain of custody and the approval (defence in depth),
have the deployer roll the model out, record the deployment, mark the model `production`.

The stage never writes production serving or the ledger itself on a cluster:

- **Cluster** (the platform's approval backend is `kubernetes://`, always so in staging and
  production): it creates a DeploymentRequest (aiact.eu/v1) in its own namespace and watches
  its status until the deployer controller in aiact-system (aiact/deployer) reports Succeeded
  or Failed. The controller re-verifies everything, applies the InferenceService, waits for
  Ready and appends the ledger entry with its own credentials; the stage records that entry.
- **No cluster** (the local approval backend, development: `aiact run-local`): the stage runs
  the same reconcile function in-process (`aiact.deployer.reconcile`) with nothing to apply
  to: the registry entry is promoted, the local ledger entry appended, and both say that
  nothing was applied to a cluster.

Crash safety: the request's name and the ledger entry are keyed by a deterministic deployment
key (run, model, approval, rollout plan). A rerun after a crash at any point finds the request
and the entry the first attempt made and completes the MLMD record instead of deploying twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.deployer import SUCCEEDED
from aiact.deployer.authorise import authorise_deployment
from aiact.deployer.reconcile import (
    Deployer,
    NoCluster,
    deploy_request,
    deployment_key,
    production_models,
    reconcile,
)
from aiact.evidence import write_atomic, write_json
from aiact.ledger import entry_hash
from aiact.lineage import PropertyValue, RunInfo
from aiact.observability import log_event
from aiact.platform import KUBERNETES_BACKEND, PlatformConfig
from aiact.stage import stage_execution
from components.deployment import core

STAGE = "deployment"
# How long the stage waits for the deployer controller (its own Ready timeout included).
TIMEOUT_ENV = "AIACT_DEPLOYMENT_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0

__all__ = ["deployment_key", "production_models", "run_deployment"]


def _through_controller(request: dict[str, Any]) -> dict[str, Any]:
    """Create the DeploymentRequest and wait for the controller's verdict."""
    from aiact.deployer.kube import DeploymentRequests, api_client_from_environment

    api_client, _ = api_client_from_environment()
    requests = DeploymentRequests(request["metadata"]["namespace"], api_client)
    requests.submit(request)
    timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    return requests.wait(request["metadata"]["name"], timeout)


def deployment_summary(properties: Mapping[str, PropertyValue]) -> str:
    """The deployment as Markdown for the KFP run page: what was rolled out, where, and the
    ledger entry that records it (or that nothing was applied, without a cluster)."""
    applied = properties.get("applied_to_cluster")
    where = (
        f"applied to namespace `{properties.get('serving_namespace')}`"
        if applied
        else "nothing applied to a cluster (reconciled in-process: the registry was promoted)"
    )
    rows = [
        ("model", f"`{properties.get('model_sha256')}`"),
        ("strategy", f"{properties.get('strategy')} ({properties.get('traffic_percent')} %)"),
        ("environment", str(properties.get("environment"))),
        ("ledger", f"`{properties.get('ledger_uri')}`"),
        (
            "ledger entry",
            f"#{properties.get('ledger_sequence')} `{properties.get('ledger_entry_sha256')}`",
        ),
        (
            "ledger head",
            f"#{properties.get('ledger_head_sequence')} `{properties.get('ledger_head_sha256')}`",
        ),
        ("deployment key", f"`{properties.get('deployment_key')}`"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"## Deployment\n\n**Rolled out**: {where}.\n\n| | |\n|---|---|\n{table}\n"


def run_deployment(
    *,
    run: RunInfo,
    metadata_uri: str,
    model_dir: Path,
    model_uri: str,
    approval_path: Path,
    approval_uri: str,
    strategy: str,
    canary_percent: int,
    ledger_uri: str,
    deployment_path: Path,
    deployment_uri: str,
    summary_path: Path | None = None,
) -> dict[str, PropertyValue]:
    """Run the stage; returns the ledger entry's key facts (`summary_path`: the same as
    Markdown for the KFP run page)."""
    with stage_execution(STAGE, run, metadata_uri) as stage:
        assert stage.platform is not None
        platform: PlatformConfig = stage.platform
        model = stage.read(lineage.MODEL, model_dir, model_uri, "model")
        approval_record = stage.read(lineage.APPROVAL, approval_path, approval_uri, "approval")
        custody = stage.verify_upstream(
            through="approval", model=model.content_sha256, approval=approval_record.content_sha256
        )
        plan = core.rollout_plan(strategy, canary_percent)
        # The controller decides again; the stage refuses early what it would refuse.
        authorisation = authorise_deployment(
            stage.verifier, custody, platform, ledger_uri=ledger_uri
        )
        settings = authorisation.settings
        manifest = json.loads((model_dir / "model.json").read_text())
        key = deployment_key(
            stage.run.run_id, model.content_sha256, approval_record.content_sha256, plan
        )
        request = deploy_request(
            namespace=platform.namespace,
            key=key,
            model_name=manifest["model_name"],
            model_sha256=model.content_sha256,
            run_id=stage.run.run_id,
            approval_name=str(authorisation.approval["request"]["name"]),
            approval_sha256=approval_record.content_sha256,
            strategy=plan["strategy"],
            canary_percent=canary_percent if plan["strategy"] == "canary" else 0,
        )
        on_cluster = settings.approval_backend.startswith(KUBERNETES_BACKEND)
        if on_cluster:
            status = _through_controller(request)
        else:
            request["metadata"]["uid"] = f"in-process-{key[:16]}"
            status = reconcile(
                request,
                Deployer(
                    lineage=stage.lineage,
                    platform_for=lambda _namespace: platform,
                    applier=NoCluster(),
                    ledger_uri=ledger_uri,
                    verifier=stage.verifier,
                ),
            )
        name = request["metadata"]["name"]
        if status.get("phase") != SUCCEEDED:
            raise core.DeploymentRefused(
                f"deployment request {name}: {status.get('message') or 'failed'}"
            )
        entry: dict[str, Any] = json.loads(status["entry"])
        if entry.get("entry_sha256") != entry_hash(entry) or entry.get("deployment_key") != key:
            raise core.DeploymentRefused(
                f"deployment request {name} reports a ledger entry that is not this deployment's"
            )
        if not on_cluster:
            log_event(
                STAGE,
                "not_applied",
                request=name,
                reason="no cluster: the deployment was reconciled in-process, nothing applied",
            )
        ledger = status["ledger"]
        write_json(deployment_path, entry)
        properties: dict[str, PropertyValue] = {
            "strategy": plan["strategy"],
            "traffic_percent": plan["traffic_percent"],
            "environment": settings.environment,
            "model_sha256": model.content_sha256,
            "pipeline_run_id": stage.run.run_id,
            "deployment_key": key,
            "deployment_request": f"{request['metadata']['namespace']}/{name}",
            "applied_to_cluster": bool(status.get("appliedToCluster")),
            "serving_namespace": str(status.get("servingNamespace", "")),
            "ledger_uri": ledger["uri"],
            "ledger_sequence": entry["sequence"],
            "ledger_entry_sha256": entry["entry_sha256"],
            "ledger_head_sequence": ledger["headSequence"],
            "ledger_head_sha256": ledger["headSha256"],
        }
        stage.properties.update(
            ledger_sequence=entry["sequence"],
            deployment_key=key,
            ledger_uri=ledger["uri"],
            applied_to_cluster=bool(status.get("appliedToCluster")),
            deployment_message=str(status.get("message", "")),
        )
        stage.wrote(lineage.DEPLOYMENT, deployment_path, deployment_uri, "deployment", properties)
        stored = stage.lineage.require_artifact(lineage.MODEL, model.content_sha256)
        stage.lineage.update_artifact(stored.id, {"stage": "production"})
        archived = set(entry.get("archives") or ())
        for previous in production_models(stage.lineage):
            if previous.id != stored.id and lineage.version_of(previous.name) in archived:
                stage.lineage.update_artifact(previous.id, {"stage": "archived"})
        if summary_path is not None:
            write_atomic(summary_path, deployment_summary(properties))
        return properties
