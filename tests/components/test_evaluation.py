"""Evaluation gate: fairness numbers are fairlearn's; biased labels, a model worse than the
baseline and a drifted holdout each fail naming the metric; a clean model passes every check;
the stage records its report in MLMD whatever the verdict."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
)
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact.featureset import FeatureSplit, save_feature_set
from aiact.lineage import LineageStore, RunInfo, properties_of
from aiact.model_package import ModelPackage, TabularMLP, save_model_package
from aiact.policy import GateFailed, load_policy
from aiact.refdata import generate_credit_data
from aiact.specs import load_feature_spec
from aiact.transform import FittedTransform
from components.evaluation.core import EvaluationOutcome, NoProductionReference, evaluate
from components.evaluation.executor import run_evaluation
from components.evaluation.reference import NO_PRODUCTION_MODEL
from components.evaluation.robustness import feature_blocks
from tests.chain import record_upstream
from tests.components.conftest import build_features, train_package

FIRST_DEPLOYMENT = NoProductionReference(NO_PRODUCTION_MODEL)


def _evaluate(
    model: object, transform: FittedTransform, splits: dict[str, FeatureSplit], policy: dict
) -> EvaluationOutcome:
    return evaluate(
        model,  # type: ignore[arg-type]
        splits["train"],
        splits["test"],
        0.5,
        policy["evaluation"],
        feature_names=transform.feature_names,
        blocks=feature_blocks(transform),
        production=FIRST_DEPLOYMENT,
    )


def test_clean_model_passes_every_check_and_matches_fairlearn(
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    _, package = clean_package
    transform, splits = clean_features
    test = splits["test"]
    outcome = _evaluate(package.predict_proba, transform, splits, policy)
    assert outcome.gate.passed, [c.describe() for c in outcome.gate.breaches]
    names = {c.name for c in outcome.gate.checks}
    assert {
        "f1",
        "roc_auc_gap_to_baseline",
        "demographic_parity_ratio[sex]",
        "accuracy_drop[gaussian_noise]",
        "roc_auc_drop[missing_features]",
        "expected_calibration_error",
        "brier_score",
        "max_feature_psi[train_split]",
        "prediction_psi[train_split]",
        "prediction_psi[baseline]",
        "production_reference",
    } <= names
    predicted = (package.predict_proba(test.features) >= 0.5).astype(int)
    for attribute in ("sex", "age_band"):
        groups = test.groups[attribute].to_numpy()
        ours = outcome.evidence["fairness"][attribute]
        for name, function in (
            ("demographic_parity_difference", demographic_parity_difference),
            ("demographic_parity_ratio", demographic_parity_ratio),
            ("equalized_odds_difference", equalized_odds_difference),
        ):
            assert ours[name] == function(test.labels, predicted, sensitive_features=groups)
    assert np.array(outcome.confusion).sum() == len(test.labels)
    assert outcome.evidence["drift"]["production_model"] == {"status": NO_PRODUCTION_MODEL}


def test_label_bias_fails_fairness_gate_naming_metric_and_group(
    tmp_path: Path, policy: dict
) -> None:
    transform, splits = build_features(label_bias=0.5)
    package = train_package(tmp_path / "biased", transform, splits)
    outcome = _evaluate(package.predict_proba, transform, splits, policy)
    breaches = {c.name: c for c in outcome.gate.breaches}
    # Housing tenure is a proxy for sex in the reference data: trained on biased labels, the
    # model treats equally creditworthy women and men differently.
    assert "equalized_odds_difference[sex]" in breaches
    assert (
        "false_positive_rate gap: sex=female" in breaches["equalized_odds_difference[sex]"].detail
    )


def test_model_worse_than_baseline_fails(
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]], policy: dict
) -> None:
    transform, splits = clean_features

    def noise(features: np.ndarray) -> np.ndarray:
        return np.random.default_rng(0).uniform(size=len(features))

    outcome = _evaluate(noise, transform, splits, policy)
    breached = {c.name for c in outcome.gate.breaches}
    assert {"accuracy", "roc_auc", "accuracy_gap_to_baseline", "roc_auc_gap_to_baseline"} <= (
        breached
    )


def _drifted_holdout(transform: FittedTransform) -> FeatureSplit:
    """Covariate-shifted applications through the clean run's fitted transform."""
    spec = load_feature_spec("credit")
    raw = generate_credit_data(1000, seed=12, drift=1.0)
    return FeatureSplit(
        raw=raw,
        features=transform.apply(raw),
        labels=raw[spec.label].to_numpy(dtype=np.int64),
        groups=raw[list(spec.protected_attributes)].astype(str),
    )


def test_drifted_holdout_fails_the_drift_gate(
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    _, package = clean_package
    transform, splits = clean_features
    drifted = {**splits, "test": _drifted_holdout(transform)}
    outcome = _evaluate(package.predict_proba, transform, drifted, policy)
    breaches = {c.name: c for c in outcome.gate.breaches}
    assert {"max_feature_psi[train_split]", "prediction_psi[train_split]"} <= set(breaches)
    assert breaches["max_feature_psi[train_split]"].detail.startswith("most drifted feature: ")
    with pytest.raises(GateFailed, match=r"max_feature_psi\[train_split\]=\d"):
        outcome.gate.raise_if_failed()


def _record_upstream(
    uri: str, run: RunInfo, feature_dir: Path, model_dir: Path, *, production: bool = False
) -> None:
    """Record a completed chain up to training, as the pipeline would."""
    ids = record_upstream(uri, run, feature_dir, model_dir, load_policy())
    if production:
        LineageStore.connect(uri).update_artifact(ids["model"], {"stage": "production"})


def _stage(
    tmp_path: Path, uri: str, run: RunInfo, policy: dict, feature_dir: Path, model_dir: Path
) -> EvaluationOutcome:
    out = tmp_path / "out"
    return run_evaluation(
        run=run,
        metadata_uri=uri,
        model_dir=model_dir,
        model_uri=str(model_dir),
        feature_set_dir=feature_dir,
        feature_set_uri=str(feature_dir),
        policy=policy,
        report_path=out / "evaluation_report.json",
        report_uri=str(out / "evaluation_report.json"),
        report_html_path=out / "evaluation_report.html",
    )


def _evaluation_record(uri: str, run: RunInfo) -> tuple[str, dict, dict[str, str]]:
    """State, report properties and input roles of the run's evaluation execution."""
    store = LineageStore.connect(uri)
    [execution] = [e for e in store.executions_of_run(run.run_id) if e.stage == "evaluation"]
    events = store.store.get_events_by_execution_ids([execution.id])
    [report_id] = [e.artifact_id for e in events if e.type == mlmd_pb.Event.OUTPUT]
    [report] = store.store.get_artifacts_by_id([report_id])
    roles = {e.path.steps[0].key: e.type for e in events if e.type == mlmd_pb.Event.INPUT}
    return execution.state, properties_of(report), {k: str(v) for k, v in roles.items()}


def _save_features(directory: Path, transform: FittedTransform, splits: dict) -> Path:
    save_feature_set(directory, splits, transform.feature_names)
    return directory


def test_stage_passes_on_first_deployment_and_records_no_production_model(
    tmp_path: Path,
    sqlite_uri: str,
    run: RunInfo,
    policy: dict,
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
) -> None:
    model_dir, _ = clean_package
    feature_dir = _save_features(tmp_path / "features", *clean_features)
    _record_upstream(sqlite_uri, run, feature_dir, model_dir)
    outcome = _stage(tmp_path, sqlite_uri, run, policy, feature_dir, model_dir)
    assert outcome.gate.passed
    [check] = [c for c in outcome.gate.checks if c.name == "production_reference"]
    assert check.detail == NO_PRODUCTION_MODEL
    state, report, roles = _evaluation_record(sqlite_uri, run)
    assert (state, report["passed"]) == ("COMPLETE", True)
    assert "production_model" not in roles
    html = (tmp_path / "out" / "evaluation_report.html").read_text()
    assert html.count("<svg") == 4  # reliability, two attributes' groups, train-split drift
    assert "Reliability curve" in html and "Feature drift (PSI)" in html


def _untrained(directory: Path, transform: FittedTransform, splits: dict) -> Path:
    torch.manual_seed(0)
    model = TabularMLP(splits["train"].features.shape[1], (4,), 0.0)
    architecture = {"n_inputs": splits["train"].features.shape[1], "hidden_units": [4]}
    manifest = {"architecture": {**architecture, "dropout": 0.0}, "threshold": 0.5}
    save_model_package(directory, model, transform, manifest)
    return directory


@pytest.mark.parametrize("failure", ["label_bias", "worse_than_baseline", "drift_vs_production"])
def test_each_failure_records_the_report_in_mlmd_first(
    tmp_path: Path,
    sqlite_uri: str,
    run: RunInfo,
    policy: dict,
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    failure: str,
) -> None:
    if failure == "label_bias":
        transform, splits = build_features(label_bias=0.5)
        model_dir = tmp_path / "model"
        train_package(model_dir, transform, splits)
        expected = "equalized_odds_difference[sex]"
    elif failure == "worse_than_baseline":
        transform, splits = clean_features
        model_dir = _untrained(tmp_path / "model", transform, splits)
        expected = "accuracy_gap_to_baseline"
    else:
        # The production model was trained on clean data; the candidate's own data drifted.
        production_dir, _ = clean_package
        clean_dir = _save_features(tmp_path / "clean", *clean_features)
        _record_upstream(sqlite_uri, run, clean_dir, production_dir, production=True)
        transform, splits = build_features(drift=1.0)
        model_dir = tmp_path / "model"
        train_package(model_dir, transform, splits)
        expected = "max_feature_psi[production]"
    feature_dir = _save_features(tmp_path / "features", transform, splits)
    _record_upstream(sqlite_uri, run, feature_dir, model_dir)
    with pytest.raises(GateFailed, match=re.escape(expected)):
        _stage(tmp_path, sqlite_uri, run, policy, feature_dir, model_dir)
    state, report, roles = _evaluation_record(sqlite_uri, run)
    assert (state, report["passed"]) == ("FAILED", False)
    assert expected in str(report["breaches"])
    recorded = json.loads((tmp_path / "out" / "evaluation_report.json").read_text())
    assert recorded["gate"]["passed"] is False
    assert ("production_model" in roles) == (failure == "drift_vs_production")


def test_stage_compares_with_the_production_models_reference_data(
    tmp_path: Path,
    sqlite_uri: str,
    run: RunInfo,
    policy: dict,
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
) -> None:
    """Re-evaluating the production model on its own data: found in MLMD, no drift."""
    model_dir, _ = clean_package
    feature_dir = _save_features(tmp_path / "features", *clean_features)
    _record_upstream(sqlite_uri, run, feature_dir, model_dir, production=True)
    outcome = _stage(tmp_path, sqlite_uri, run, policy, feature_dir, model_dir)
    checks = {c.name: c for c in outcome.gate.checks}
    assert outcome.gate.passed
    assert checks["production_reference"].detail.startswith("production model ")
    assert checks["max_feature_psi[production]"].value == 0.0
    assert checks["prediction_psi[production]"].value == 0.0
    assert _evaluation_record(sqlite_uri, run)[0] == "COMPLETE"


@pytest.mark.parametrize("other", ["model_name", "use_case"])
def test_a_production_model_of_another_name_or_use_case_is_never_the_reference(
    tmp_path: Path,
    sqlite_uri: str,
    policy: dict,
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    other: str,
) -> None:
    """Two use cases in one store: the other's production model is not compared with."""
    model_dir, _ = clean_package
    feature_dir = _save_features(tmp_path / "features", *clean_features)
    elsewhere = RunInfo(run_id="other-use-case-run")
    ids = record_upstream(sqlite_uri, elsewhere, feature_dir, model_dir, load_policy())
    store = LineageStore.connect(sqlite_uri)
    store.update_artifact(ids["model"], {"stage": "production"})
    if other == "model_name":
        store.update_artifact(ids["model"], {"model_name": "income-model"})
    else:
        store.update_artifact(ids["feature_set"], {"use_case": "income"})
    run = RunInfo(run_id="this-run")
    record_upstream(sqlite_uri, run, feature_dir, model_dir, load_policy())
    outcome = _stage(tmp_path, sqlite_uri, run, policy, feature_dir, model_dir)
    [check] = [c for c in outcome.gate.checks if c.name == "production_reference"]
    assert check.passed
    assert check.detail.startswith(
        "no production model credit-scoring of use case credit (first deployment of this model "
        "and use case); production models of other names or use cases are not compared: "
    )
    assert ("income-model (credit)" if other == "model_name" else "credit-scoring (income)") in (
        check.detail
    )
    assert "production_model" not in _evaluation_record(sqlite_uri, run)[2]


def test_loaded_transform_reproduces_the_feature_set(
    tmp_path: Path, clean_features: tuple[FittedTransform, dict[str, FeatureSplit]]
) -> None:
    transform, splits = clean_features
    transform.save(tmp_path / "transform.json")
    loaded = FittedTransform.load(tmp_path / "transform.json")
    assert np.array_equal(loaded.apply(splits["test"].raw), splits["test"].features)


@pytest.mark.parametrize(
    ("reference", "required", "passes"),
    [
        (FIRST_DEPLOYMENT, False, True),
        (FIRST_DEPLOYMENT, True, False),
        (NoProductionReference("production model abc: reference not readable", True), False, False),
    ],
)
def test_missing_production_reference_is_explicit(
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
    reference: NoProductionReference,
    required: bool,
    passes: bool,
) -> None:
    _, package = clean_package
    transform, splits = clean_features
    thresholds = copy.deepcopy(policy["evaluation"])
    thresholds["drift"]["require_production_reference"] = required
    outcome = evaluate(
        package.predict_proba,
        splits["train"],
        splits["test"],
        0.5,
        thresholds,
        feature_names=transform.feature_names,
        blocks=feature_blocks(transform),
        production=reference,
    )
    [check] = [c for c in outcome.gate.checks if c.name == "production_reference"]
    assert (check.passed, check.detail) == (passes, reference.reason)
    assert outcome.evidence["drift"]["production_model"] == {"status": reference.reason}
