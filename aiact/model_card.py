"""The model card (AI Act Art. 11 / Annex IV): what a registered model is for, what it was
trained on, how it performed, where it falls short and how humans oversee it.

Registration writes one per model it promotes to `staging`: a JSON document (the registered
artefact, `aiact.ModelCard`, recorded in MLMD with its content hash) and its HTML rendering for
the KFP UI. Every field is copied from a record the chain of custody has verified: the use case
declaration (`intended_use` of usecase.yaml), the data card and size of the dataset, the
evaluation report, the platform's approval settings and the model package's manifest. The
approval review page embeds the same card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiact import pages

MODEL_CARD = "aiact.ModelCard"
MODEL_CARD_PAGE = "aiact.ModelCardPage"
SCHEMA = "aiact-model-card/1"
UNDECLARED = "not declared in the use case (usecase.yaml has no intended_use)"
# Data card fields shown on the card, in this order.
DATA_CARD_FIELDS = (
    "name",
    "version",
    "description",
    "owner",
    "origin",
    "licence",
    "collection_date",
    "use_case",
    "intended_use",
)
FAIRNESS_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
)
GROUP_RATES = ("count", "selection_rate", "true_positive_rate", "false_positive_rate", "accuracy")


class ModelCardError(ValueError):
    """A model card cannot be built from the evidence given."""


def _texts(value: Any) -> list[str]:
    """A card field as a list of strings (a string becomes one entry, None none)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [str(item) for item in value]
    return [str(value)]


def _intended_use(declared: Mapping[str, Any] | None, use_case: str) -> dict[str, Any]:
    if not declared:
        return {
            "declared": False,
            "purpose": UNDECLARED,
            "users": [],
            "affected_persons": [],
            "out_of_scope": [],
            "limitations": [],
            "source": f"use case {use_case}",
        }
    return {
        "declared": True,
        "purpose": str(declared.get("purpose", "")),
        "users": _texts(declared.get("users")),
        "affected_persons": _texts(declared.get("affected_persons")),
        "out_of_scope": _texts(declared.get("out_of_scope")),
        "limitations": _texts(declared.get("limitations")),
        "source": f"usecase.yaml of use case {use_case}",
    }


def _fairness(report_fairness: Mapping[str, Any]) -> dict[str, Any]:
    """Per protected attribute: fairlearn's metrics with their intervals, group rates."""
    result: dict[str, Any] = {}
    for attribute, found in report_fairness.items():
        intervals = found.get("confidence_intervals") or {}
        result[attribute] = {
            **{m: found.get(m) for m in FAIRNESS_METRICS},
            "confidence": intervals.get("confidence"),
            "confidence_intervals": {
                m: {k: intervals[m].get(k) for k in ("low", "high")}
                for m in FAIRNESS_METRICS
                if isinstance(intervals.get(m), Mapping)
            },
            "insufficient_data": _texts(found.get("insufficient_data")),
            "min_group_size": found.get("min_group_size"),
            "by_group": {
                str(group): {k: rates.get(k) for k in GROUP_RATES if k in rates}
                for group, rates in (found.get("by_group") or {}).items()
            },
        }
    return result


def _evaluation(report: Mapping[str, Any], uri: str, sha256: str) -> dict[str, Any]:
    sections = report.get("sections") or {}
    gate = report.get("gate") or {}
    checks = gate.get("checks") or []
    calibration = sections.get("calibration") or {}
    robustness = {
        scenario: {k: v for k, v in values.items() if k.endswith("_drop")}
        for scenario, values in (sections.get("robustness") or {}).items()
        if isinstance(values, Mapping) and any(k.endswith("_drop") for k in values)
    }
    drift = {
        reference: {
            "prediction_psi": (values.get("predictions") or {}).get("psi"),
            "max_feature_psi": max(
                (f.get("psi", 0.0) for f in (values.get("features") or {}).values()),
                default=None,
            ),
        }
        for reference, values in (sections.get("drift") or {}).items()
        if isinstance(values, Mapping) and "predictions" in values
    }
    return {
        "report_uri": uri,
        "report_sha256": sha256,
        "passed": bool(gate.get("passed")),
        "checks_passed": sum(1 for c in checks if c.get("passed")),
        "checks": len(checks),
        "policy_sha256": str(report.get("policy_sha256", "")),
        "holdout_rows": sections.get("holdout_rows"),
        "decision_threshold": sections.get("decision_threshold"),
        "performance": dict(sections.get("performance") or {}),
        "baseline": dict(sections.get("baseline") or {}),
        "calibration": {
            k: calibration.get(k) for k in ("expected_calibration_error", "brier_score", "bins")
        },
        "robustness": robustness,
        "drift": drift,
        "fairness": _fairness(sections.get("fairness") or {}),
    }


def _limitations(
    intended: Mapping[str, Any], data_card: Mapping[str, Any], evaluation: Mapping[str, Any]
) -> list[dict[str, str]]:
    """Every known limitation with where it is documented."""
    found = [{"source": "use case", "text": text} for text in intended["limitations"]]
    found += [
        {"source": "data card", "text": text} for text in _texts(data_card.get("known_limitations"))
    ]
    for attribute, fairness in evaluation["fairness"].items():
        for group in fairness["insufficient_data"]:
            found.append(
                {
                    "source": "evaluation",
                    "text": f"{attribute}={group}: fewer than {fairness['min_group_size']} holdout "
                    "rows, too few to conclude on fairness",
                }
            )
    return found


def build_model_card(
    *,
    model_name: str,
    model_sha256: str,
    manifest: Mapping[str, Any],
    code_commit: str,
    run_id: str,
    environment: str,
    use_case: str,
    use_case_sha256: str,
    intended_use: Mapping[str, Any] | None,
    data_card: Mapping[str, Any],
    data_card_sha256: str,
    dataset_sha256: str,
    dataset_rows: int | None,
    dataset_columns: int | None,
    evaluation_report: Mapping[str, Any],
    evaluation_report_uri: str,
    evaluation_report_sha256: str,
    required_approvals: int,
    approver_group: str,
    acknowledgements_required: Sequence[str],
    approval_timeout_s: float | None,
) -> dict[str, Any]:
    """The model card of a registered model (JSON-ready, deterministic for the same evidence).

    Args:
        model_name: Registry name of the model.
        model_sha256: Content SHA-256 of the model package (its MLMD identity).
        manifest: The package's model.json (architecture, hyperparameters, seed, threshold).
        code_commit: The commit the run's code was built from.
        run_id: The pipeline run that trained and evaluated the model.
        environment: The run's environment.
        use_case: The use case's name.
        use_case_sha256: Content hash of the use case folder data preparation read.
        intended_use: The declaration's `intended_use` block (None: not declared).
        data_card: The data card of the training data.
        data_card_sha256: Its content hash.
        dataset_sha256: Content hash of the prepared dataset.
        dataset_rows: Rows of the prepared dataset (None: not recorded).
        dataset_columns: Its columns (None: not recorded).
        evaluation_report: The passing evaluation report of this model.
        evaluation_report_uri: Where that report is stored.
        evaluation_report_sha256: Its content hash.
        required_approvals: Distinct human approvals a deployment needs.
        approver_group: The group whose members may decide.
        acknowledgements_required: Findings every approver must acknowledge.
        approval_timeout_s: How long a request waits for decisions (None: not set).

    Returns:
        The card; `schema` names its format.

    Raises:
        ModelCardError: when the evaluation report is not about this model.
    """
    sections = evaluation_report.get("sections") or {}
    if sections.get("model_sha256") != model_sha256:
        raise ModelCardError(
            f"evaluation report is about model {str(sections.get('model_sha256'))[:12]}, "
            f"not {model_sha256[:12]}: no model card"
        )
    intended = _intended_use(intended_use, use_case)
    evaluation = _evaluation(evaluation_report, evaluation_report_uri, evaluation_report_sha256)
    acknowledgements = list(acknowledgements_required)
    measures = [
        f"deployment needs {required_approvals} distinct human approver(s) of group "
        f"{approver_group!r}; any one rejection stops it",
        "the requester cannot approve (four-eyes); demo approvals are refused outside development",
        "every approver reviews the approval review page (this card, every gate's evidence, the "
        "comparison with the production model) before deciding",
        "deployment re-reads the decisions from the approval backend and verifies the whole "
        "chain of custody before it writes the ledger entry",
    ]
    if acknowledgements:
        measures.append(
            "every approving decision must explicitly acknowledge: " + ", ".join(acknowledgements)
        )
    return {
        "schema": SCHEMA,
        "model": {
            "name": model_name,
            "version": model_sha256[:16],
            "sha256": model_sha256,
            "code_commit": code_commit,
            "pipeline_run_id": run_id,
            "environment": environment,
            "registered_stage": "staging",
            "decision_threshold": manifest.get("threshold"),
            "architecture": dict(manifest.get("architecture") or {}),
            "hyperparameters": dict(manifest.get("hyperparameters") or {}),
            "seed": manifest.get("seed"),
            "inputs": len(manifest.get("feature_names") or ()),
        },
        "intended_use": intended,
        "use_case": {"name": use_case, "sha256": use_case_sha256},
        "training_data": {
            "dataset_sha256": dataset_sha256,
            "dataset_version": dataset_sha256[:16],
            "rows": dataset_rows,
            "columns": dataset_columns,
            "data_card_sha256": data_card_sha256,
            "data_card": {k: data_card[k] for k in DATA_CARD_FIELDS if data_card.get(k)},
            "out_of_scope_use": _texts(data_card.get("out_of_scope_use")),
            "label": dict(data_card.get("label") or {}),
            "protected_attributes": _texts(data_card.get("protected_attributes")),
        },
        "evaluation": evaluation,
        "limitations": _limitations(intended, data_card, evaluation),
        "human_oversight": {
            "required_approvals": required_approvals,
            "approver_group": approver_group,
            "acknowledgements_required": acknowledgements,
            "approval_timeout_s": approval_timeout_s,
            "measures": measures,
        },
    }


def render_html(card: Mapping[str, Any]) -> str:
    """The card as one self-contained HTML page (for the KFP UI's artifact viewer)."""
    model = card["model"]
    return pages.render(
        "model_card.html.j2",
        title=f"Model card: {model['name']} {model['version']}",
        card=card,
    )
