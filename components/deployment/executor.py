"""Deployment executor: verify the whole chain of custody, re-check the approval against the
approval backend and the platform, append to the write-once ledger (idempotently), record the
deployment, mark the model `production`.

Crash safety: the ledger entry is keyed by a deterministic deployment key (run, model, approval,
rollout plan). A rerun after a crash at any point finds the entry the first attempt wrote and
completes the MLMD record instead of adding a second entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.approval import backend_from_uri, to_dict
from aiact.custody import Custody
from aiact.evidence import acknowledgements_required, write_json
from aiact.hashing import sha256_json
from aiact.ledger import LedgerError, ledger_from_uri
from aiact.lineage import PropertyValue, RunInfo
from aiact.platform import resolve_run_settings
from aiact.stage import stage_execution
from components.approval.core import utc_now
from components.deployment import core

STAGE = "deployment"


def deployment_key(
    run_id: str, model_sha256: str, approval_sha256: str, plan: dict[str, Any]
) -> str:
    """The deterministic identity of one deployment: the same run, model, approval and rollout
    always map to one ledger entry."""
    return sha256_json(
        {"run": run_id, "model": model_sha256, "approval": approval_sha256, "plan": plan}
    )


def _live_approval(custody: Custody, document: dict[str, Any]) -> None:
    """Re-read the request and its decisions from the approval backend the approval stage used
    (checked against the platform by the caller) and refuse an approval artefact that differs
    from what the backend holds (on a cluster: decisions admitted under the approvers' own
    identities)."""
    backend_uri = str(custody.links["approval"].properties.get("approval_backend", ""))
    backend = backend_from_uri(backend_uri)
    name = str((document.get("request") or {}).get("name", ""))
    live_request = json.loads(json.dumps(to_dict(backend.request(name))))
    if any(document["request"].get(k) != v for k, v in live_request.items()):
        raise core.DeploymentRefused(
            f"approval artefact for {name!r} differs from the request held by {backend_uri}"
        )
    live = [json.loads(json.dumps(to_dict(d))) for d in backend.decisions(name)]
    if not core.same_decisions(document, live):
        raise core.DeploymentRefused(
            f"approval artefact for {name!r} lists decisions the approval backend "
            f"({backend_uri}) does not hold"
        )


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
        assert stage.platform is not None
        model = stage.read(lineage.MODEL, model_dir, model_uri, "model")
        approval_record = stage.read(lineage.APPROVAL, approval_path, approval_uri, "approval")
        custody = stage.verify_upstream(
            through="approval", model=model.content_sha256, approval=approval_record.content_sha256
        )
        # The approval backend the approval stage recorded must still be the platform's.
        settings = resolve_run_settings(
            stage.platform,
            ledger_uri=ledger_uri,
            approval_backend=str(custody.links["approval"].properties.get("approval_backend", "")),
        )
        plan = core.rollout_plan(strategy, canary_percent)
        document = json.loads(approval_path.read_text())
        decision = core.authorise(
            document,
            model.content_sha256,
            run_id=stage.run.run_id,
            environment=settings.environment,
            required_approvals=settings.required_approvals,
            demo_allowed=settings.demo_allowed,
        )
        evaluation = stage.verifier.document(
            custody.links["evaluation"].outputs["evaluation_report"]
        )
        omitted = sorted(
            set(acknowledgements_required(evaluation))
            - set(document["request"].get("acknowledgements_required") or ())
        )
        if omitted:
            raise core.DeploymentRefused(
                f"the approval request omits findings of the evaluation every approver must "
                f"acknowledge: {', '.join(omitted)}"
            )
        _live_approval(custody, document)
        if not settings.ledger_uri:
            raise LedgerError(
                "no deployment ledger configured: the platform names none and the run gave none"
            )
        ledger = ledger_from_uri(settings.ledger_uri)
        manifest = json.loads((model_dir / "model.json").read_text())
        stored = stage.lineage.require_artifact(lineage.MODEL, model.content_sha256)
        replaced = core.replaced_by_full_rollout(
            plan, stored.id, manifest["model_name"], production_models(stage.lineage)
        )
        key = deployment_key(
            stage.run.run_id, model.content_sha256, approval_record.content_sha256, plan
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
                "environment": settings.environment,
                "pipeline_run_id": stage.run.run_id,
                "custody_sha256": custody.sha256(),
                "platform_sha256": settings.platform_sha256,
                "deployed_at": utc_now(),
                "archives": [lineage.version_of(a.name) for a in replaced],
                **plan,
            },
            key=key,
        )
        head = ledger.verify()
        write_json(deployment_path, entry)
        properties: dict[str, PropertyValue] = {
            "strategy": plan["strategy"],
            "traffic_percent": plan["traffic_percent"],
            "environment": settings.environment,
            "model_sha256": model.content_sha256,
            "pipeline_run_id": stage.run.run_id,
            "deployment_key": key,
            "ledger_uri": ledger.location,
            "ledger_sequence": entry["sequence"],
            "ledger_entry_sha256": entry["entry_sha256"],
            "ledger_head_sequence": head.sequence,
            "ledger_head_sha256": head.entry_sha256,
        }
        stage.properties.update(
            ledger_sequence=entry["sequence"], deployment_key=key, ledger_uri=ledger.location
        )
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
