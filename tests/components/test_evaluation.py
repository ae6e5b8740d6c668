"""Evaluation gate: fairness numbers are fairlearn's; biased labels, a model worse than the
baseline and a drifted holdout each fail naming the metric; a clean model passes every check;
the stage records its report in MLMD whatever the verdict."""

from __future__ import annotations

import copy
import json
import math
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
from kfp.dsl import ClassificationMetrics
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb
from sklearn.metrics import roc_auc_score

from aiact.evidence import build_report, write_report
from aiact.featureset import FeatureSplit, save_feature_set
from aiact.lineage import LineageStore, RunInfo, properties_of
from aiact.model_package import ModelPackage, TabularMLP, save_model_package
from aiact.policy import GateFailed, load_policy
from aiact.refdata import generate_credit_data
from aiact.specs import load_feature_spec
from aiact.transform import FittedTransform
from components.evaluation.core import (
    NO_PRODUCTION_NOTE,
    EvaluationOutcome,
    NoProductionReference,
    evaluate,
)
from components.evaluation.executor import run_evaluation
from components.evaluation.reference import NO_PRODUCTION_MODEL
from components.evaluation.report_html import fairness_limits, figures
from components.evaluation.robustness import feature_blocks
from tests.browser import visible_text
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
    } <= names
    # No production model: a note, never a check that reads as if a reference had passed.
    assert "production_reference" not in names
    assert outcome.evidence["notes"] == [f"{NO_PRODUCTION_NOTE}; {NO_PRODUCTION_MODEL}"]
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
    assert outcome.evidence["drift"]["production_model"] == {
        "assessed": False,
        "status": NO_PRODUCTION_NOTE,
        "reason": NO_PRODUCTION_MODEL,
    }


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
    [report_id] = [
        e.artifact_id
        for e in events
        if e.type == mlmd_pb.Event.OUTPUT and e.path.steps[0].key == "evaluation_report"
    ]
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
    assert "production_reference" not in {c.name for c in outcome.gate.checks}
    state, report, roles = _evaluation_record(sqlite_uri, run)
    assert (state, report["passed"]) == ("COMPLETE", True)
    assert "production_model" not in roles
    recorded = json.loads((tmp_path / "out" / "evaluation_report.json").read_text())
    assert recorded["sections"]["notes"] == [f"{NO_PRODUCTION_NOTE}; {NO_PRODUCTION_MODEL}"]
    html = (tmp_path / "out" / "evaluation_report.html").read_text()
    # ROC, confusion matrix, reliability, two attributes' groups, feature and prediction drift
    assert html.count("<svg") == 7
    for caption in (
        "ROC curve of the holdout",
        "Confusion matrix of the holdout",
        "Reliability curve",
        "Per-group rates by sex",
        "Per-group rates by age_band",
        "Feature drift (PSI) of the holdout against train_split;",
        "Prediction drift (PSI",
    ):
        assert f"<figcaption>{caption}" in html, caption
    assert "Notes for the reviewer" in html and NO_PRODUCTION_NOTE in html
    assert "<code>production_reference</code>" not in html


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
    # The evidence execution completes with the breach as its verdict (its verdict task halts).
    assert (state, report["passed"]) == ("COMPLETE", False)
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
    assert outcome.evidence["drift"]["production_model"]["assessed"] is True
    assert "notes" not in outcome.evidence
    html = (tmp_path / "out" / "evaluation_report.html").read_text()
    assert "Feature drift (PSI) of the holdout against train_split and production;" in html
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
    assert "production_reference" not in {c.name for c in outcome.gate.checks}
    [note] = outcome.evidence["notes"]
    assert note.startswith(
        f"{NO_PRODUCTION_NOTE}; no production model credit-scoring of use case credit (first "
        "deployment of this model and use case); production models of other names or use cases "
        "are not compared: "
    )
    assert ("income-model (credit)" if other == "model_name" else "credit-scoring (income)") in (
        note
    )
    assert "production_model" not in _evaluation_record(sqlite_uri, run)[2]


def test_loaded_transform_reproduces_the_feature_set(
    tmp_path: Path, clean_features: tuple[FittedTransform, dict[str, FeatureSplit]]
) -> None:
    transform, splits = clean_features
    transform.save(tmp_path / "transform.json")
    loaded = FittedTransform.load(tmp_path / "transform.json")
    assert np.array_equal(loaded.apply(splits["test"].raw), splits["test"].features)


UNREADABLE = NoProductionReference("production model abc: reference not readable", True)


@pytest.mark.parametrize(
    ("reference", "required", "detail"),
    [
        (FIRST_DEPLOYMENT, False, None),
        (
            FIRST_DEPLOYMENT,
            True,
            f"{NO_PRODUCTION_MODEL}; the policy requires one "
            "(evaluation.drift.require_production_reference)",
        ),
        (UNREADABLE, False, UNREADABLE.reason),
    ],
)
def test_missing_production_reference_is_explicit(
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
    reference: NoProductionReference,
    required: bool,
    detail: str | None,
) -> None:
    """Not required and absent: a note, no check; required, or present but unusable: a
    breached check saying why."""
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
    checks = [c for c in outcome.gate.checks if c.name == "production_reference"]
    recorded = outcome.evidence["drift"]["production_model"]
    assert recorded["assessed"] is False
    if detail is None:
        assert checks == [] and outcome.gate.passed
        assert outcome.evidence["notes"] == [f"{NO_PRODUCTION_NOTE}; {reference.reason}"]
        assert recorded["reason"] == reference.reason
    else:
        [check] = checks
        assert (check.passed, check.detail) == (False, detail)
        assert "notes" not in outcome.evidence
        assert recorded["status"] == reference.reason


def test_roc_curve_is_complete_finite_and_its_area_is_the_auc(
    clean_package: tuple[Path, ModelPackage],
    clean_features: tuple[FittedTransform, dict[str, FeatureSplit]],
    policy: dict,
) -> None:
    """The curve handed to the KFP UI runs from (0, 0) to (1, 1) (it once stopped at FPR
    0.787), every point is the rates at its threshold, and KFP can serialise it."""
    _, package = clean_package
    transform, splits = clean_features
    test = splits["test"]
    outcome = _evaluate(package.predict_proba, transform, splits, policy)
    fpr, tpr, cut = (np.array(outcome.roc[k]) for k in ("fpr", "tpr", "thresholds"))
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert len(fpr) == len(tpr) == len(cut) > 10
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(cut) < 0)
    assert np.all(np.isfinite(cut))
    scores = package.predict_proba(test.features)
    positive = test.labels == 1
    for rate_fp, rate_tp, threshold in zip(fpr, tpr, cut, strict=True):
        decided = scores >= threshold
        assert rate_tp == decided[positive].mean() and rate_fp == decided[~positive].mean()
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoid rule
    assert area == pytest.approx(roc_auc_score(test.labels, scores), abs=5e-5)
    assert area == pytest.approx(outcome.evidence["performance"]["roc_auc"], abs=5e-5)
    kfp_metrics = ClassificationMetrics(name="classification_metrics", uri="", metadata={})
    kfp_metrics.log_roc_curve(outcome.roc["fpr"], outcome.roc["tpr"], outcome.roc["thresholds"])
    points = json.loads(json.dumps(kfp_metrics.metadata, allow_nan=False))["confidenceMetrics"]
    assert len(points) == len(fpr)
    assert points[-1] == {
        "confidenceThreshold": float(cut[-1]),
        "recall": 1.0,
        "falsePositiveRate": 1.0,
    }


def test_evaluation_report_in_a_browser_shows_plots_verdict_and_breach(
    tmp_path: Path, policy: dict
) -> None:
    """A failing evaluation's HTML view as Chromium renders it: the verdict, the breached
    fairness check shown as breached, the ROC plot with its tick labels and AUC, the confusion
    matrix and reliability-bin counts, the policy's limit lines, and the note that there is
    no production model yet."""
    transform, splits = build_features(label_bias=0.5)
    package = train_package(tmp_path / "biased", transform, splits)
    outcome = _evaluate(package.predict_proba, transform, splits, policy)
    assert not outcome.gate.passed
    report = build_report(
        "Model evaluation report",
        outcome.gate,
        {**outcome.evidence, "confusion_matrix": outcome.confusion},
        policy_sha256="0" * 64,
    )
    page = tmp_path / "evaluation_report.html"
    write_report(
        tmp_path / "evaluation_report.json",
        page,
        report,
        figures=figures(outcome, policy["evaluation"]),
    )
    text = visible_text(page)
    assert "Gate evaluation: BREACHED" in text
    assert re.search(r"equalized_odds_difference\[sex\] 0\.\d+ <= 0\.15 BREACHED", text), text
    assert re.search(r"demographic_parity_ratio\[sex\] 0\.\d+ >= 0\.8 PASSED", text), text
    auc = outcome.evidence["performance"]["roc_auc"]
    assert f"AUC = {auc:.4f}" in text and f"model (AUC {auc:.4f})" in text
    assert "0.0 0.2 0.4 0.6 0.8 1.0" in text  # the ROC's tick labels
    assert "false positive rate (1 - specificity)" in text and "true positive rate" in text
    [[tn, fp], [fn, tp]] = outcome.confusion
    assert f"{tn} {fp} {fn} {tp}" in text and "predicted class" in text
    counts = [str(b["count"]) for b in outcome.evidence["calibration"]["reliability_curve"]]
    assert " ".join(counts) in text and "samples in bin" in text
    assert "FPR ceiling (equalized odds <= 0.15) = " in text
    assert "max_feature_psi = 0.200" in text
    assert f"Notes for the reviewer {NO_PRODUCTION_NOTE}" in text


def test_fairness_limit_lines_are_crossed_exactly_when_a_check_breaches() -> None:
    """The lines on the per-group chart restate the policy: a group's bar is on the wrong side
    of its rate's line exactly when that limit is breached."""
    limits = {
        "max_demographic_parity_difference": 0.1,
        "min_demographic_parity_ratio": 0.8,
        "max_equalized_odds_difference": 0.15,
    }
    groups = {
        "a": {"selection_rate": 0.5, "true_positive_rate": 0.8, "false_positive_rate": 0.3},
        "b": {"selection_rate": 0.62, "true_positive_rate": 0.9, "false_positive_rate": 0.5},
    }
    floor_dp, floor_ratio, tpr_floor, fpr_ceiling = fairness_limits(groups, limits)
    assert floor_dp.label == "selection-rate floor (parity difference <= 0.1)"
    assert floor_ratio.label == "selection-rate floor (parity ratio >= 0.8)"
    assert (tpr_floor.series, fpr_ceiling.series) == ("true positive rate", "false positive rate")
    # Parity difference 0.12 breaches (a under the floor); ratio 0.806 passes (a above it).
    assert floor_dp.value == pytest.approx(0.52) and groups["a"]["selection_rate"] < floor_dp.value
    assert floor_ratio.value == pytest.approx(0.496)
    assert groups["a"]["selection_rate"] > floor_ratio.value
    # Equalized odds: the FPR gap 0.2 breaches (b above the ceiling), the TPR gap 0.1 does not.
    assert fpr_ceiling.value == pytest.approx(0.45)
    assert groups["b"]["false_positive_rate"] > fpr_ceiling.value
    assert tpr_floor.value == pytest.approx(0.75)
    assert groups["a"]["true_positive_rate"] > tpr_floor.value
    assert fairness_limits({"a": {**groups["a"], "true_positive_rate": math.nan}}, limits) == []
