"""Registration refuses a failed or mismatched evaluation."""

from __future__ import annotations

import pytest

from components.registration.core import RegistrationRefused, registration_record


def _register(report: dict, model_sha: str = "a" * 64) -> dict:
    return registration_record(
        model_name="credit-scoring",
        model_sha256=model_sha,
        evaluation_report=report,
        evaluation_report_uri="/eval",
        evaluation_report_sha256="e" * 64,
        dataset_sha256="d" * 64,
        feature_set_sha256="f" * 64,
        code_commit="abc",
        run_id="run-1",
    )


def test_passed_evaluation_registers_to_staging_with_attachments() -> None:
    record = _register({"gate": {"passed": True}, "sections": {"model_sha256": "a" * 64}})
    assert record["stage"] == "staging"
    assert (record["dataset_version"], record["code_commit"], record["pipeline_run_id"]) == (
        "d" * 16,
        "abc",
        "run-1",
    )
    assert record["evaluation_report_sha256"] == "e" * 64


def test_failed_evaluation_is_refused() -> None:
    with pytest.raises(RegistrationRefused, match="did not pass its gate"):
        _register({"gate": {"passed": False}, "sections": {"model_sha256": "a" * 64}})


def test_evaluation_of_another_model_is_refused() -> None:
    with pytest.raises(RegistrationRefused, match="not for the model being registered"):
        _register({"gate": {"passed": True}, "sections": {"model_sha256": "b" * 64}})
