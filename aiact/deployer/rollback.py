"""`aiact rollback NAME`: restore the previous production model of NAME through the deployer.

On a cluster (`--deployments kubernetes://NAMESPACE`) it creates a DeploymentRequest with
action rollback in that namespace, under the caller's own Kubernetes identity, and waits for the
controller's verdict; the controller picks the model to restore from the ledger, re-verifies
its chain and approval, applies it and appends the rollback's own ledger entry. Without a
cluster the same reconcile runs in-process against the local ledger (nothing is applied).
Either way the rollback is then recorded in the metadata store, as its own execution
(`aiact.rollback`, in a context of its own) with a Deployment artefact pinning its ledger
entry, and the model stages follow: the restored model `production`, the replaced `archived`;
so `aiact verify-ledger` still finds one recorded deployment per entry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.deployer import SUCCEEDED
from aiact.deployer.reconcile import Deployer, NoCluster, reconcile, rollback_request
from aiact.evidence import write_json
from aiact.hashing import sha256_path
from aiact.ledger import entry_hash
from aiact.lineage import ArtifactRecord, LineageStore, RunInfo
from aiact.platform import KUBERNETES_BACKEND, load_platform
from components.deployment.core import DeploymentRefused

PIPELINE_NAME = "aiact-rollback"


def request_name(model_name: str, now: datetime | None = None) -> str:
    """A fresh DeploymentRequest name for a rollback of `model_name`."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%f")
    return f"rollback-{model_name}-{stamp}"


def run_rollback(
    model_name: str,
    *,
    reason: str,
    requested_by: str,
    deployments: str,
    ledger_uri: str,
    store: LineageStore,
    timeout_s: float,
) -> dict[str, Any]:
    """Ask the deployer to roll `model_name` back; returns the request's final status.

    Args:
        model_name: The model (InferenceService) to roll back.
        reason: Why (recorded in the ledger entry).
        requested_by: Who asks (recorded; on a cluster also visible in the API audit log).
        deployments: "kubernetes://NAMESPACE" for the cluster's deployer; "" in-process.
        ledger_uri: The local ledger (in-process only; a cluster uses the platform's).
        store: The metadata store.
        timeout_s: How long to wait for the controller.

    Raises:
        DeploymentRefused: when the deployer refuses or fails the rollback.
    """
    name = request_name(model_name)
    if deployments.startswith(KUBERNETES_BACKEND):
        from aiact.deployer.kube import DeploymentRequests, api_client_from_environment

        api_client, default_namespace = api_client_from_environment()
        namespace = deployments.removeprefix(KUBERNETES_BACKEND).strip("/") or default_namespace
        requests = DeploymentRequests(namespace, api_client)
        requests.submit(
            rollback_request(
                namespace=namespace,
                name=name,
                model_name=model_name,
                requested_by=requested_by,
                reason=reason,
            )
        )
        status = requests.wait(name, timeout_s)
    elif deployments:
        raise DeploymentRefused(
            f"--deployments {deployments!r}: use kubernetes://NAMESPACE, or nothing for the "
            "local (in-process) deployer"
        )
    else:
        platform = load_platform()
        request = rollback_request(
            namespace=platform.namespace,
            name=name,
            model_name=model_name,
            requested_by=requested_by,
            reason=reason,
        )
        request["metadata"]["uid"] = f"in-process-{name}"
        status = reconcile(
            request,
            Deployer(
                lineage=store,
                platform_for=lambda _namespace: platform,
                applier=NoCluster(),
                ledger_uri=ledger_uri,
            ),
        )
    if status.get("phase") != SUCCEEDED:
        raise DeploymentRefused(f"rollback {name}: {status.get('message') or 'failed'}")
    return status


def record_rollback(store: LineageStore, status: dict[str, Any], workdir: Path) -> int:
    """Record a finished rollback in the metadata store and move the model stages; returns the
    restored model's artefact id.

    Raises:
        DeploymentRefused: when the status carries no consistent ledger entry.
    """
    entry: dict[str, Any] = json.loads(status["entry"])
    if entry.get("entry_sha256") != entry_hash(entry) or entry.get("action") != "rollback":
        raise DeploymentRefused("the deployer reported a ledger entry that is not a rollback's")
    request = str(entry["deployment_request"]).replace("/", "-")
    path = workdir / "rollbacks" / f"{request}.json"
    write_json(path, entry)
    ledger = status["ledger"]
    record = ArtifactRecord(
        lineage.DEPLOYMENT,
        str(path.resolve()),
        sha256_path(path),
        "deployment",
        {
            "strategy": "full",
            "traffic_percent": 100,
            "action": "rollback",
            "environment": str(entry["environment"]),
            "model_sha256": str(entry["model_sha256"]),
            "pipeline_run_id": str(entry["pipeline_run_id"]),
            "deployment_key": str(entry["deployment_key"]),
            "deployment_request": str(entry["deployment_request"]),
            "applied_to_cluster": bool(entry.get("applied_to_cluster")),
            "ledger_uri": str(ledger["uri"]),
            "ledger_sequence": int(entry["sequence"]),
            "ledger_entry_sha256": str(entry["entry_sha256"]),
            "ledger_head_sequence": int(ledger["headSequence"]),
            "ledger_head_sha256": str(ledger["headSha256"]),
        },
    )
    store.record_execution(
        run=RunInfo(
            run_id=f"rollback-{request}",
            pipeline_name=PIPELINE_NAME,
            environment=str(entry["environment"]),
        ),
        stage="rollback",
        inputs=[],
        outputs=[record],
        succeeded=True,
        properties={
            "outcome": "completed",
            "requested_by": str(entry.get("requested_by", "")),
            "reason": str(entry.get("reason", "")),
            "rolled_back_from": str(entry.get("rolled_back_from", "")),
        },
    )
    restored = store.require_artifact(lineage.MODEL, str(entry["model_sha256"]))
    store.update_artifact(restored.id, {"stage": "production"})
    replaced = store.find_artifact(lineage.MODEL, str(entry.get("rolled_back_from", "")))
    if replaced is not None and replaced.id != restored.id:
        store.update_artifact(replaced.id, {"stage": "archived"})
    return int(restored.id)
