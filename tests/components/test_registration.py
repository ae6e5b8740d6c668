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


def _card(report: dict, intended_use: dict | None = None) -> dict:
    from aiact.model_card import build_model_card

    return build_model_card(
        model_name="credit-scoring",
        model_sha256="a" * 64,
        manifest={"threshold": 0.5, "feature_names": ["x", "y"]},
        code_commit="abc",
        run_id="run-1",
        environment="production",
        use_case="credit",
        use_case_sha256="u" * 64,
        intended_use=intended_use,
        data_card={"name": "cards", "licence": "CC0-1.0", "known_limitations": ["synthetic"]},
        data_card_sha256="c" * 64,
        dataset_sha256="d" * 64,
        dataset_rows=100,
        dataset_columns=5,
        evaluation_report=report,
        evaluation_report_uri="/eval",
        evaluation_report_sha256="e" * 64,
        required_approvals=2,
        approver_group="approvers",
        acknowledgements_required=["insufficient_data[age_band]"],
        approval_timeout_s=3600.0,
    )


def test_model_card_says_what_is_undeclared_and_lists_every_limitation() -> None:
    from aiact.model_card import UNDECLARED

    report = {
        "gate": {"passed": True, "checks": [{"name": "accuracy", "passed": True}]},
        "sections": {
            "model_sha256": "a" * 64,
            "performance": {"accuracy": 0.81},
            "fairness": {
                "age_band": {"insufficient_data": ["61+"], "min_group_size": 60, "by_group": {}}
            },
        },
    }
    card = _card(report)
    assert card["intended_use"] == {
        "declared": False,
        "purpose": UNDECLARED,
        "users": [],
        "affected_persons": [],
        "out_of_scope": [],
        "limitations": [],
        "source": "use case credit",
    }
    assert [(item["source"], item["text"]) for item in card["limitations"]] == [
        ("data card", "synthetic"),
        ("evaluation", "age_band=61+: fewer than 60 holdout rows, too few to conclude on fairness"),
    ]
    oversight = card["human_oversight"]
    assert oversight["required_approvals"] == 2
    assert any("insufficient_data[age_band]" in measure for measure in oversight["measures"])
    declared = _card(report, {"purpose": "score applicants", "limitations": ["small groups"]})
    assert declared["intended_use"]["purpose"] == "score applicants"
    assert declared["limitations"][0] == {"source": "use case", "text": "small groups"}


def test_model_card_refuses_a_report_about_another_model() -> None:
    from aiact.model_card import ModelCardError

    with pytest.raises(ModelCardError, match="is about model bbbbbbbbbbbb, not aaaaaaaaaaaa"):
        _card({"gate": {"passed": True}, "sections": {"model_sha256": "b" * 64}})
