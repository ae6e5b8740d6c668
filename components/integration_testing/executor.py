"""Integration testing executor: deploy the staged model to a local serving process (the
integration environment), test it, record the report."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from aiact import lineage
from aiact.evidence import build_report, write_report
from aiact.featureset import load_feature_set
from aiact.lineage import PropertyValue, RunInfo
from aiact.model_package import load_model_package
from aiact.policy import section
from aiact.stage import stage_execution
from aiact.usecase import load_use_case, record_of, resolve_policy
from components.integration_testing import core

STAGE = "integration_testing"
SAMPLE_ROWS = 200


def run_integration_testing(
    *,
    run: RunInfo,
    metadata_uri: str,
    model_dir: Path,
    model_uri: str,
    registration_path: Path,
    registration_uri: str,
    feature_set_dir: Path,
    feature_set_uri: str,
    policy: dict[str, Any],
    report_path: Path,
    report_uri: str,
    use_case_uri: str = "",
) -> dict[str, PropertyValue]:
    """Run the stage; raises GateFailed when a test fails. `policy` {} = the policy.yaml of
    the use case (`use_case_uri`, '' = the bundled example)."""
    with (
        stage_execution(STAGE, run, metadata_uri) as stage,
        tempfile.TemporaryDirectory() as scratch,
    ):
        use_case = load_use_case(use_case_uri, Path(scratch))
        stage.inputs.append(record_of(use_case))
        policy = resolve_policy(policy, use_case)
        policy_digest = stage.read_policy(policy)
        model = stage.read(lineage.MODEL, model_dir, model_uri, "model")
        registration = stage.read(
            lineage.MODEL_REGISTRATION, registration_path, registration_uri, "registration"
        )
        features = stage.read(lineage.FEATURE_SET, feature_set_dir, feature_set_uri, "feature_set")
        custody = stage.verify_upstream(
            through="registration",
            model=model.content_sha256,
            feature_set=features.content_sha256,
            registration=registration.content_sha256,
            policy=policy_digest,
        )
        stage.require_same(
            "use case",
            use_case.sha256,
            custody.digest("data_preparation", "use_case"),
            "data preparation read",
        )
        package = load_model_package(model_dir)
        holdout = load_feature_set(feature_set_dir)["test"]
        sample = holdout.raw.head(SAMPLE_ROWS)
        expected = package.predict_proba(holdout.features[:SAMPLE_ROWS])
        with core.model_server(model_dir, package.manifest["model_name"]) as server:
            gate, evidence = core.run_integration_tests(
                server, package, sample, expected, section(policy, "integration")
            )
        report = build_report(
            "Integration test report",
            gate,
            {
                "model_sha256": model.content_sha256,
                "registration_sha256": registration.content_sha256,
                "feature_set_sha256": features.content_sha256,
                "environment": "local-process",
                **evidence,
            },
            policy_sha256=policy_digest,
        )
        write_report(report_path, None, report)
        stage.wrote(
            lineage.INTEGRATION_TEST_REPORT,
            report_path,
            report_uri,
            "integration_report",
            {"passed": gate.passed},
        )
        gate.raise_if_failed()
        return {"passed": True, "tests": len(gate.checks)}
