"""Registration: the record that promotes a model to `staging`, refused unless the evaluation
report is for this very model and passed its gate."""

from __future__ import annotations

from typing import Any


class RegistrationRefused(RuntimeError):
    """The evidence does not allow promotion."""


def registration_record(
    *,
    model_name: str,
    model_sha256: str,
    evaluation_report: dict[str, Any],
    evaluation_report_uri: str,
    evaluation_report_sha256: str,
    dataset_sha256: str,
    feature_set_sha256: str,
    code_commit: str,
    run_id: str,
    model_card_sha256: str = "",
) -> dict[str, Any]:
    """The staging registration, with every attachment an auditor needs (the model card's
    hash when one was written)."""
    gate = evaluation_report.get("gate", {})
    if not gate.get("passed"):
        raise RegistrationRefused("evaluation report did not pass its gate: refusing staging")
    evaluated = evaluation_report.get("sections", {}).get("model_sha256")
    if evaluated != model_sha256:
        raise RegistrationRefused(
            f"evaluation report is for model sha256:{str(evaluated)[:12]}, "
            f"not for the model being registered (sha256:{model_sha256[:12]})"
        )
    return {
        "model_name": model_name,
        "model_version": model_sha256[:16],
        "model_sha256": model_sha256,
        "stage": "staging",
        "evaluation_report_uri": evaluation_report_uri,
        "evaluation_report_sha256": evaluation_report_sha256,
        "dataset_version": dataset_sha256[:16],
        "dataset_sha256": dataset_sha256,
        "feature_set_sha256": feature_set_sha256,
        "code_commit": code_commit,
        "pipeline_run_id": run_id,
        **({"model_card_sha256": model_card_sha256} if model_card_sha256 else {}),
    }
