"""Approval executor: raise (or find) the request, wait until enough approvers decide, record
the decisions in MLMD."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.approval import ApprovalError, ApprovalRequest, backend_from_uri, tally, to_dict
from aiact.evidence import acknowledgements_required, write_json
from aiact.lineage import PropertyValue, RunInfo
from aiact.observability import log_event
from aiact.platform import resolve_run_settings
from aiact.policy import floor_differences
from aiact.stage import stage_execution
from components.approval import core, review

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
    integration_verdict_path: Path,
    integration_verdict_uri: str,
    review_page_path: Path | None = None,
    review_page_uri: str = "",
) -> dict[str, PropertyValue]:
    """Run the stage; raises ApprovalRejected or ApprovalExpired unless approved.
    `integration_verdict_path` is the integration gate's verdict, which must be this run's
    passed verdict on that report.

    Before the request is raised, its review page (aiact.review_page) is written to
    `review_page_path` (default: beside the approval record) and made readable at
    `review_page_uri` (default: that path); the request names its URI and SHA-256."""
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
        assert stage.platform is not None
        settings = resolve_run_settings(
            stage.platform,
            approver_group=approver_group,
            approval_backend=backend_uri,
            approval_timeout_s=timeout_s,
            demo_approver=demo_approver,
        )
        backend_uri, timeout_s = (
            settings.approval_backend or backend_uri,
            settings.approval_timeout_s,
        )
        stage.properties.update(
            approval_backend=backend_uri,
            required_approvals=settings.required_approvals,
            approver_group=settings.approver_group,
        )
        verdict = stage.read_verdict(
            "integration_testing", integration_verdict_path, integration_verdict_uri
        )
        custody = stage.verify_upstream(
            through="integration_testing",
            model=model.content_sha256,
            evaluation_report=evaluation.content_sha256,
            integration_report=integration.content_sha256,
            **verdict,
        )
        backend = backend_from_uri(backend_uri)
        model_name = model_name or json.loads((model_dir / "model.json").read_text())["model_name"]
        report = json.loads(evaluation_report_path.read_text())
        # The policy the gates applied (custody-verified as one policy for the whole run).
        policy = json.loads(
            str(
                lineage.properties_of(
                    stage.lineage.require_artifact(
                        lineage.GATE_POLICY, str(report.get("policy_sha256", ""))
                    )
                ).get("policy_json", "{}")
            )
        )
        expires = datetime.now(UTC) + timedelta(seconds=timeout_s)
        page_path = review_page_path or approval_path.with_name("review_page.html")
        request = review.raise_request(
            stage,
            custody,
            backend,
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
                approver_group=settings.approver_group,
                environment=stage.run.environment,
                expires_at=expires.replace(microsecond=0).isoformat(),
                required_approvals=core.required_approvals(
                    stage.run.environment, settings.required_approvals
                ),
                acknowledgements_required=acknowledgements_required(report),
                policy_sha256=str(report.get("policy_sha256", "")),
                policy_vs_floor=tuple(floor_differences(policy, stage.platform.policy_floor)),
            ),
            backend_uri=backend_uri,
            evaluation=report,
            integration=json.loads(integration_report_path.read_text()),
            page_path=page_path,
            page_uri=review_page_uri or str(page_path),
        )
        decided = backend.decisions(request.name)
        if demo_approver and settings.demo_allowed and not tally(request, decided).settled:
            demo = core.demo_decision(demo_approver, stage.run.environment)
            if all(d.approver != demo.approver for d in decided):
                backend.decide(request.name, demo)
        log_event(
            STAGE,
            "awaiting_decision",
            approval=request.name,
            required_approvals=request.required_approvals,
            timeout_s=timeout_s,
            approve=f"aiact approve {request.name} --approvals {backend_uri} --reason '...'",
            reject=f"aiact reject {request.name} --approvals {backend_uri} --reason '...'",
            review_page=request.review_page_uri,
            review_page_sha256=request.review_page_sha256,
        )
        if not tally(request, backend.decisions(request.name)).settled:
            where = f"{request.name} --approvals {backend_uri} --reason ..."
            print(
                f"\nApproval {request.name} awaits {request.required_approvals} distinct human "
                f"approver(s) (expires {request.expires_at})"
                f"\n  review:  {request.review_page_uri} (sha256 {request.review_page_sha256[:12]})"
                f"\n  approve: aiact approve {where}\n  reject:  aiact reject {where}\n",
                flush=True,
            )
        decisions = backend.wait(request.name, timeout_s)
        outcome = tally(request, decisions)
        decision = core.summary(outcome, decisions)
        document: dict[str, Any] = {
            "request": to_dict(request),
            "decisions": [to_dict(d) for d in decisions],
            "outcome": to_dict(outcome),
            "decision": None if decision is None else to_dict(decision),
        }
        write_json(approval_path, document)
        properties: dict[str, PropertyValue] = {
            "approval_name": request.name,
            "outcome": outcome.status,
            "required_approvals": request.required_approvals,
            "approvals": len(outcome.approvers),
        }
        if decision is not None:
            properties.update(to_dict(decision))
        stage.wrote(lineage.APPROVAL, approval_path, approval_uri, "approval", properties)
        core.settle(request.name, outcome, request.required_approvals, timeout_s)
        demo_approved = decision is not None and decision.kind == "demo"
        if demo_approved and stage.run.environment == core.PRODUCTION:
            raise ApprovalError("a demo decision cannot authorise a production deployment")
        return properties
