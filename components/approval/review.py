"""What the approval review page shows, gathered by the approval stage from the chain of custody
it has just verified: every gate's report (re-hashed from storage by the verifier), the model
card registration wrote, and the current production model's evaluation from ML Metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage, review_page
from aiact.approval import ApprovalBackend, ApprovalError, ApprovalRequest, to_dict
from aiact.custody import GATE_REPORTS, Custody
from aiact.evidence import write_atomic
from aiact.hashing import sha256_path
from aiact.lineage import ArtifactRecord, properties_of
from aiact.review_page import REVIEW_PAGE, GateEvidence, ReviewEvidence
from aiact.stage import StageContext

GATE_TITLES = {
    "data_preparation": "Data validation",
    "feature_engineering": "Feature checks",
    "evaluation": "Evaluation",
    "integration_testing": "Integration tests",
}
COMPARED = ("accuracy", "roc_auc", "expected_calibration_error")


def _gates(stage: StageContext, custody: Custody) -> list[GateEvidence]:
    gates = []
    for gate, role in GATE_REPORTS.items():
        link = custody.links.get(gate)
        artifact = link.outputs.get(role) if link is not None else None
        if link is None or artifact is None:
            continue
        report = stage.verifier.document(artifact)
        passed = bool((report.get("gate") or {}).get("passed"))
        verdict = str(link.properties.get("verdict") or ("passed" if passed else "breached"))
        gates.append(
            GateEvidence(
                stage=gate,
                title=GATE_TITLES[gate],
                verdict=verdict,
                execution_id=link.execution_id,
                report_uri=artifact.uri,
                report_sha256=artifact.name,
                report=report,
            )
        )
    return gates


def _model_card(stage: StageContext, custody: Custody) -> tuple[dict[str, Any] | None, str]:
    link = custody.links.get("registration")
    artifact = link.outputs.get("model_card") if link is not None else None
    if artifact is None:
        return None, ""
    return stage.verifier.document(artifact), artifact.name


def _evaluation_of(store: lineage.LineageStore, model: mlmd_pb.Artifact) -> mlmd_pb.Artifact | None:
    """The newest passed evaluation report of `model` written by a completed evaluation."""
    mlmd = store.store
    readers = [
        e.execution_id
        for e in mlmd.get_events_by_artifact_ids([model.id])
        if e.type == mlmd_pb.Event.INPUT
    ]
    if not readers:
        return None
    types = {t.id: t.name for t in mlmd.get_execution_types()}
    evaluations = [
        e.id
        for e in mlmd.get_executions_by_id(readers)
        if types.get(e.type_id) == "aiact.evaluation"
        and e.last_known_state == mlmd_pb.Execution.COMPLETE
    ]
    if not evaluations:
        return None
    written = [
        e.artifact_id
        for e in mlmd.get_events_by_execution_ids(evaluations)
        if e.type == mlmd_pb.Event.OUTPUT
    ]
    report_type = mlmd.get_artifact_type(lineage.EVALUATION_REPORT).id
    reports = [
        a
        for a in mlmd.get_artifacts_by_id(written)
        if a.type_id == report_type and properties_of(a).get("passed") is True
    ]
    return max(reports, key=lambda a: a.id, default=None)


def production_comparison(
    stage: StageContext, evaluation: Mapping[str, Any], candidate: Mapping[str, Any]
) -> dict[str, Any]:
    """The production model the evaluation compared the candidate with (its drift reference),
    with its own evaluation's figures beside the candidate's; or why there is none."""
    sections = evaluation.get("sections") or {}
    reference = (sections.get("drift") or {}).get("production_model") or {}
    version = str(reference.get("version", ""))
    if not version:
        return {
            "status": str(
                reference.get("status") or "no production model was compared in the evaluation"
            )
        }
    models = [
        m
        for m in stage.lineage.store.get_artifacts_by_type(lineage.MODEL)
        if m.name.startswith(version)
    ]
    if not models:
        return {"status": f"production model {version} is not in the metadata store"}
    model = models[0]
    comparison: dict[str, Any] = {
        "model_sha256": model.name,
        "model_name": str(properties_of(model).get("model_name", "")),
    }
    report = _evaluation_of(stage.lineage, model)
    if report is None:
        comparison["note"] = "no passed evaluation of the production model is recorded"
        return comparison
    recorded = properties_of(report)
    comparison["evaluation_report_sha256"] = report.name
    contexts = stage.lineage.store.get_contexts_by_artifact(report.id)
    comparison["run_id"] = contexts[0].name if contexts else ""
    metrics: dict[str, Any] = {}
    for name in COMPARED:
        ours, theirs = candidate.get(name), recorded.get(name)
        if isinstance(ours, int | float) and isinstance(theirs, int | float):
            metrics[name] = {"candidate": ours, "production": theirs, "delta": ours - theirs}
    comparison["metrics"] = metrics
    comparison["note"] = (
        "Each model's figures are from its own evaluation, on its own run's holdout; the drift "
        "below compares the two on this run's holdout."
    )
    return comparison


def acknowledgement_details(evaluation: Mapping[str, Any]) -> dict[str, str]:
    """Each acknowledgement-required check's detail, by check name."""
    checks = (evaluation.get("gate") or {}).get("checks") or []
    return {str(c.get("name")): str(c.get("detail", "")) for c in checks}


def write_review_page(
    stage: StageContext,
    custody: Custody,
    *,
    request: ApprovalRequest,
    backend_uri: str,
    evaluation: Mapping[str, Any],
    integration: Mapping[str, Any],
    path: Path,
    uri: str,
) -> ArtifactRecord:
    """Render the review page of `request` to `path`, make it readable at `uri` and record it
    as an output of the stage. Returns its record (its content hash is the request's)."""
    card, card_sha256 = _model_card(stage, custody)
    sections = evaluation.get("sections") or {}
    candidate = {
        **(sections.get("performance") or {}),
        **(sections.get("calibration") or {}),
    }
    evidence = ReviewEvidence(
        request=to_dict(request),
        backend_uri=backend_uri,
        gates=_gates(stage, custody),
        evaluation=evaluation,
        integration=integration,
        model_card=card,
        model_card_sha256=card_sha256,
        production=production_comparison(stage, evaluation, candidate),
        acknowledgement_details=acknowledgement_details(evaluation),
        custody_sha256=custody.sha256(),
    )
    write_atomic(path, review_page.render(evidence))
    review_page.publish(path, uri)
    return stage.wrote(
        REVIEW_PAGE,
        path,
        uri,
        "review_page",
        {
            "approval_name": request.name,
            "model_sha256": request.model_sha256,
            "model_card_sha256": card_sha256,
            "custody_sha256": custody.sha256(),
            "sha256": sha256_path(path),
        },
    )


def _existing(backend: ApprovalBackend, name: str) -> ApprovalRequest | None:
    try:
        return backend.request(name)
    except ApprovalError:
        return None


def raise_request(
    stage: StageContext,
    custody: Custody,
    backend: ApprovalBackend,
    proposed: ApprovalRequest,
    *,
    backend_uri: str,
    evaluation: Mapping[str, Any],
    integration: Mapping[str, Any],
    page_path: Path,
    page_uri: str,
) -> ApprovalRequest:
    """Render the review page, then create the request naming it (or find the one a previous
    attempt of this stage created: the page is rendered from that request, so it is the same
    page, byte for byte).

    Raises:
        ApprovalError: when an existing request names a different review page.
    """
    existing = _existing(backend, proposed.name)
    basis = replace(existing or proposed, review_page_uri="", review_page_sha256="")
    page = write_review_page(
        stage,
        custody,
        request=basis,
        backend_uri=backend_uri,
        evaluation=evaluation,
        integration=integration,
        path=page_path,
        uri=page_uri,
    )
    request = backend.ensure_request(
        replace(basis, review_page_uri=page_uri, review_page_sha256=page.content_sha256)
    )
    if request.review_page_sha256 and request.review_page_sha256 != page.content_sha256:
        raise ApprovalError(
            f"approval {request.name!r} already names review page "
            f"{request.review_page_sha256[:12]} ({request.review_page_uri}), not the page this "
            f"stage renders ({page.content_sha256[:12]}): the evidence changed since it was raised"
        )
    return request
