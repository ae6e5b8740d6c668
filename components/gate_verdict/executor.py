"""Gate verdict executor: the second half of every gate.

A KFP task publishes its outputs (metrics, HTML, Markdown) only when it returns, so a gate that
raised would show the KFP UI none of its evidence exactly when a reviewer needs it. Each gate is
therefore two tasks: the gate itself always completes, recording its evidence and its verdict
(`passed` or `breached`), and this task reads the gate's report, checks it against the gate's
recorded execution (same run, re-hashed from storage, recorded verdict agreeing with the
report's), writes a verdict artefact and fails (halting the run) on a breach. The stage after
the gate consumes the verdict artefact, so the order holds by data dependencies, and the
custody verifier requires a passed verdict, consumed by that stage, for every gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.custody import GATE_REPORTS, verdict_stage
from aiact.evidence import write_json
from aiact.lineage import RunInfo
from aiact.policy import GateResult
from aiact.stage import stage_execution

# The MLMD type of each gate's report (what the verdict task reads).
REPORT_TYPES = {
    "data_preparation": lineage.DATA_VALIDATION_REPORT,
    "feature_engineering": lineage.DATA_VALIDATION_REPORT,
    "evaluation": lineage.EVALUATION_REPORT,
    "integration_testing": lineage.INTEGRATION_TEST_REPORT,
}


def run_gate_verdict(
    *,
    run: RunInfo,
    metadata_uri: str,
    gate: str,
    report_path: Path,
    report_uri: str,
    verdict_path: Path,
    verdict_uri: str,
) -> dict[str, Any]:
    """Judge one gate's report; returns the verdict document. Raises GateFailed on a breach
    (after recording the verdict), CustodyError when the report is not the gate's own."""
    if gate not in GATE_REPORTS:
        raise ValueError(f"unknown gate {gate!r}: one of {', '.join(sorted(GATE_REPORTS))}")
    role = GATE_REPORTS[gate]
    with stage_execution(verdict_stage(gate), run, metadata_uri) as stage:
        record = stage.read(REPORT_TYPES[gate], report_path, report_uri, role)
        evidence, report = stage.verifier.gate_evidence(
            stage.run.run_id, gate, record.content_sha256
        )
        result = GateResult.from_dict(report.get("gate") or {})
        verdict = {
            "gate": gate,
            "verdict": result.verdict,
            "breaches": [check.name for check in result.breaches],
            "pipeline_run_id": stage.run.run_id,
            "report_sha256": record.content_sha256,
            "evidence_execution_id": evidence.execution_id,
            "policy_sha256": report.get("policy_sha256", ""),
        }
        write_json(verdict_path, verdict)
        stage.wrote(
            lineage.GATE_VERDICT,
            verdict_path,
            verdict_uri,
            verdict_stage(gate),
            {"gate": gate, "verdict": result.verdict, "report_sha256": record.content_sha256},
        )
        stage.properties["evidence_execution_id"] = evidence.execution_id
        stage.record_verdict(result)
        result.raise_if_failed()
        return verdict
