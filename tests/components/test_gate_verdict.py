"""The two halves of a gate: the gate's task always completes with its evidence and verdict
(so the KFP UI can show a failed gate's metrics), and its verdict task halts the run on a
breach. Real executors, in process (tests/chain.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiact import lineage
from aiact.custody import CustodyError
from aiact.hashing import sha256_path
from aiact.lineage import LineageStore
from aiact.policy import GateFailed
from components.evaluation.executor import run_evaluation
from components.gate_verdict.executor import run_gate_verdict
from tests.chain import UNDERTRAINED, Chain


def _executions(uri: str, run_id: str) -> dict[str, lineage.ExecutionRecord]:
    return {e.stage: e for e in LineageStore.connect(uri).executions_of_run(run_id)}


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """A run whose evaluation breaches (an undertrained model on clean data)."""
    root = tmp_path_factory.mktemp("verdict")
    chain = Chain(root, f"sqlite://{root / 'mlmd.sqlite'}", "bad", hyperparameters=UNDERTRAINED)
    chain.prepare()
    chain.engineer()
    chain.train()
    return chain


def test_a_breached_gate_completes_with_its_evidence_and_its_verdict_task_halts(
    bad: Chain,
) -> None:
    summary = bad.out("evaluation_summary.md")
    report = bad.out("evaluation_report.json")
    outcome = run_evaluation(
        run=bad.run,
        metadata_uri=bad.metadata_uri,
        model_dir=bad.paths["model"],
        model_uri=str(bad.paths["model"]),
        feature_set_dir=bad.paths["features"],
        feature_set_uri=str(bad.paths["features"]),
        policy=bad.policy,
        report_path=report,
        report_uri=str(report),
        report_html_path=bad.out("evaluation_report.html"),
        summary_path=summary,
        halt=False,
    )
    # The evidence task returned (KFP publishes its outputs) with the breach in its outcome.
    assert not outcome.gate.passed
    breached = [c.name for c in outcome.gate.breaches]
    evaluation = _executions(bad.metadata_uri, "bad")["evaluation"]
    assert evaluation.state == "COMPLETE"
    assert evaluation.properties["verdict"] == "breached"
    assert evaluation.properties["gate_breaches"] == "; ".join(breached)
    assert json.loads(report.read_text())["gate"]["passed"] is False
    text = summary.read_text()
    assert "BREACHED" in text and all(f"`{name}`" in text for name in breached)
    assert outcome.evidence["performance"]["accuracy"] > 0  # the metrics the UI shows

    bad.paths["evaluation_report"] = report
    with pytest.raises(GateFailed, match="gate 'evaluation' failed"):
        bad.verdict("evaluation")
    verdict_task = _executions(bad.metadata_uri, "bad")["evaluation_verdict"]
    assert verdict_task.state == "FAILED"
    assert verdict_task.properties["outcome"] == "GateFailed"
    written = json.loads(bad.out("evaluation_verdict.json").read_text())
    assert written["verdict"] == "breached"
    assert written["breaches"] == breached
    assert written["report_sha256"] == sha256_path(report)
    assert written["evidence_execution_id"] == evaluation.id

    # Nothing downstream: registration refuses, even handed another gate's passed verdict.
    with pytest.raises(CustodyError, match="run bad's evaluation gate breached"):
        bad.register(verdict=bad.paths["feature_engineering_verdict"])


def test_a_passed_verdict_names_its_report_and_evidence(tmp_path: Path) -> None:
    chain = Chain(tmp_path, f"sqlite://{tmp_path / 'mlmd.sqlite'}", "ok")
    chain.prepare()
    verdict = json.loads(chain.paths["data_preparation_verdict"].read_text())
    executions = _executions(chain.metadata_uri, "ok")
    assert verdict == {
        "gate": "data_preparation",
        "verdict": "passed",
        "breaches": [],
        "pipeline_run_id": "ok",
        "report_sha256": sha256_path(chain.paths["validation_report"]),
        "evidence_execution_id": executions["data_preparation"].id,
        "policy_sha256": executions["data_preparation"].properties["policy_sha256"],
    }
    assert executions["data_preparation_verdict"].state == "COMPLETE"
    # A stage handed the verdict of another gate than the one before it is refused.
    chain.engineer()
    chain.train()
    chain.evaluate()
    with pytest.raises(CustodyError, match=r"evaluation verdict [0-9a-f]{12} is not the one"):
        chain.register(verdict=chain.paths["data_preparation_verdict"])


def test_a_verdict_task_refuses_a_report_its_gate_did_not_write_in_this_run(
    tmp_path: Path,
) -> None:
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    first = Chain(tmp_path, uri, "first")
    first.prepare()
    other = Chain(tmp_path, uri, "other", data_seed=8)
    other.prepare()
    with pytest.raises(
        CustodyError, match=r"validation report [0-9a-f]{12} was not written by a completed data"
    ):
        other.verdict("data_preparation", first.paths["validation_report"])
    # Nor the report of another gate of its own run.
    with pytest.raises(CustodyError, match="was not written by a completed data preparation"):
        first.engineer()
        first.verdict("data_preparation", first.paths["feature_report"])


def test_an_unknown_gate_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown gate 'training': one of data_preparation"):
        run_gate_verdict(
            run=Chain(tmp_path, "", "x").run,
            metadata_uri=f"sqlite://{tmp_path / 'mlmd.sqlite'}",
            gate="training",
            report_path=tmp_path / "r.json",
            report_uri="",
            verdict_path=tmp_path / "v.json",
            verdict_uri="",
        )
