"""Approval executor: raise (or find) the request, wait for the decision, record it in MLMD."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.approval import ApprovalError, ApprovalRequest, backend_from_uri, to_dict
from aiact.evidence import write_json
from aiact.lineage import PropertyValue, RunInfo
from aiact.observability import log_event
from aiact.stage import stage_execution
from components.approval import core

STAGE = "approval"


def run_approval(
    *,
    run: RunInfo,
    metadata_uri: str,
    backend_uri: str,
    model_name: str,
    model_dir: Path,
    model_uri: str,
    evaluation_report_path: Path,
    evaluation_report_uri: str,
    integration_report_path: Path,
    integration_report_uri: str,
    requested_by: str,
    approver_group: str,
    demo_approver: str,
    timeout_s: float,
    approval_path: Path,
    approval_uri: str,
) -> dict[str, PropertyValue]:
    """Run the stage; raises ApprovalRejected or ApprovalExpired unless approved."""
    with stage_execution(STAGE, run, metadata_uri) as stage:
        model = stage.read(lineage.MODEL, model_dir, model_uri, "model")
        evaluation = stage.read(
            lineage.EVALUATION_REPORT,
            evaluation_report_path,
            evaluation_report_uri,
            "evaluation_report",
        )
        integration = stage.read(
            lineage.INTEGRATION_TEST_REPORT,
            integration_report_path,
            integration_report_uri,
            "integration_report",
        )
        backend = backend_from_uri(backend_uri)
        expires = datetime.now(UTC) + timedelta(seconds=timeout_s)
        request = backend.ensure_request(
            ApprovalRequest(
                name=core.approval_name(model_name, model.content_sha256, stage.run.run_id),
                model_name=model_name,
                model_sha256=model.content_sha256,
                evaluation_report_uri=evaluation_report_uri,
                evaluation_report_sha256=evaluation.content_sha256,
                integration_report_uri=integration_report_uri,
                integration_report_sha256=integration.content_sha256,
                pipeline_run_id=stage.run.run_id,
                requested_by=requested_by or f"pipeline-run:{stage.run.run_id}",
                approver_group=approver_group,
                environment=stage.run.environment,
                expires_at=expires.replace(microsecond=0).isoformat(),
            )
        )
        if demo_approver and backend.decision(request.name) is None:
            backend.decide(request.name, core.demo_decision(demo_approver, stage.run.environment))
        log_event(
            STAGE,
            "awaiting_decision",
            approval=request.name,
            timeout_s=timeout_s,
            approve=f"aiact approve {request.name} --approvals {backend_uri} --reason '...'",
            reject=f"aiact reject {request.name} --approvals {backend_uri} --reason '...'",
        )
        if backend.decision(request.name) is None:
            where = f"{request.name} --approvals {backend_uri} --reason ..."
            print(
                f"\nApproval {request.name} awaits a human decision (expires {request.expires_at})"
                f"\n  approve: aiact approve {where}\n  reject:  aiact reject {where}\n",
                flush=True,
            )
        decision = backend.wait(request.name, timeout_s)
        document: dict[str, Any] = {
            "request": to_dict(request),
            "decision": None if decision is None else to_dict(decision),
        }
        write_json(approval_path, document)
        properties: dict[str, PropertyValue] = {"approval_name": request.name}
        if decision is not None:
            properties.update(to_dict(decision))
        stage.wrote(lineage.APPROVAL, approval_path, approval_uri, "approval", properties)
        settled = core.settle(request.name, decision, timeout_s)
        if settled.kind == "demo" and stage.run.environment == core.PRODUCTION:
            raise ApprovalError("a demo decision cannot authorise a production deployment")
        return properties
