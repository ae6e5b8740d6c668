"""Deployment executor: check the approval, append to the immutable ledger, record the
deployment, mark the model `production`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.evidence import write_json
from aiact.ledger import ledger_from_uri
from aiact.lineage import PropertyValue, RunInfo
from aiact.stage import stage_execution
from components.approval.core import utc_now
from components.deployment import core

STAGE = "deployment"


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
) -> dict[str, PropertyValue]:
    """Run the stage; returns the ledger entry's key facts."""
    with stage_execution(STAGE, run, metadata_uri) as stage:
        model = stage.read(lineage.MODEL, model_dir, model_uri, "model")
        approval_record = stage.read(lineage.APPROVAL, approval_path, approval_uri, "approval")
        plan = core.rollout_plan(strategy, canary_percent)
        decision = core.authorise(json.loads(approval_path.read_text()), model.content_sha256)
        manifest = json.loads((model_dir / "model.json").read_text())
        ledger = ledger_from_uri(ledger_uri)
        stored = stage.lineage.require_artifact(lineage.MODEL, model.content_sha256)
        replaced = core.replaced_by_full_rollout(
            plan, stored.id, manifest["model_name"], production_models(stage.lineage)
        )
        entry: dict[str, Any] = ledger.append(
            {
                "model_name": manifest["model_name"],
                "model_version": lineage.version_of(model.content_sha256),
                "model_sha256": model.content_sha256,
                "model_uri": model_uri,
                "approval_sha256": approval_record.content_sha256,
                "approved_by": decision["approver"],
                "approval_kind": decision["kind"],
                "environment": stage.run.environment,
                "pipeline_run_id": stage.run.run_id,
                "deployed_at": utc_now(),
                "archives": [lineage.version_of(a.name) for a in replaced],
                **plan,
            }
        )
        write_json(deployment_path, entry)
        properties: dict[str, PropertyValue] = {
            "strategy": plan["strategy"],
            "traffic_percent": plan["traffic_percent"],
            "environment": stage.run.environment,
            "ledger_sequence": entry["sequence"],
            "ledger_entry_sha256": entry["entry_sha256"],
            "ledger_uri": str(ledger.path),
        }
        stage.wrote(lineage.DEPLOYMENT, deployment_path, deployment_uri, "deployment", properties)
        stage.lineage.update_artifact(stored.id, {"stage": "production"})
        for previous in replaced:
            stage.lineage.update_artifact(previous.id, {"stage": "archived"})
        return properties


def production_models(store: lineage.LineageStore) -> list[Any]:
    """Every Model artefact currently in the `production` stage."""
    return [
        artifact
        for artifact in store.store.get_artifacts_by_type(lineage.MODEL)
        if lineage.properties_of(artifact).get("stage") == "production"
    ]
