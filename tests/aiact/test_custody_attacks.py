"""Attacks on the chain of custody, as a submitter who sets any run parameter or calls any stage
executor against the same metadata store would try them. Every test first shows the attack's
starting point is real (a model whose evaluation FAILED, a passing model of another run), then
that the attack is refused with a message naming the broken link, and that auditors' tools see
what was done.

Two genuine runs are built once per module with the real stage executors (tests/chain.py):
`good` (passes every gate through integration testing) and `bad` (an undertrained model on
other clean data; its evaluation FAILS). Each test works on its own copy of the SQLite store;
tests that edit files restore them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiact import cli, lineage
from aiact.bundle import write_bundle
from aiact.custody import CustodyError, Verifier, verify_model
from aiact.hashing import sha256_path
from aiact.lineage import LineageStore
from aiact.platform import PlatformError
from aiact.policy import GateFailed
from aiact.serving import ARGUMENTS_ON_STDIN
from tests.chain import UNDERTRAINED, Chain, server_processes


@dataclass
class Runs:
    root: Path
    store_file: Path
    good: Chain
    bad: Chain

    def store_copy(self, directory: Path) -> str:
        """A private copy of the store with both runs, for one test."""
        target = directory / "mlmd.sqlite"
        shutil.copyfile(self.store_file, target)
        return f"sqlite://{target}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("custody")
    store_file = root / "mlmd.sqlite"
    uri = f"sqlite://{store_file}"
    good = Chain(root, uri, "good").through_integration()
    bad = Chain(root, uri, "bad", data_seed=8, hyperparameters=UNDERTRAINED)
    bad.prepare()
    bad.engineer()
    bad.train()
    with pytest.raises(GateFailed, match="gate 'evaluation' failed"):
        bad.evaluate()
    # As in the pipeline: the gate's evidence completed, its verdict task halts the run.
    with pytest.raises(GateFailed, match="gate 'evaluation' failed"):
        bad.verdict("evaluation")
    return Runs(root, store_file, good, bad)


def _model(chain: Chain) -> str:
    return sha256_path(chain.paths["model"])


def _states(uri: str, run_id: str) -> dict[str, str]:
    return {e.stage: e.state for e in LineageStore.connect(uri).executions_of_run(run_id)}


@contextmanager
def _edited(path: Path, edit: str) -> Iterator[None]:
    """Tamper with a file, then put it back."""
    original = path.read_bytes()
    try:
        if edit == "json":
            document = json.loads(original)
            document["gate"]["passed"] = True
            document.setdefault("sections", {})["note"] = "edited after the run"
            path.write_text(json.dumps(document))
        else:
            path.write_bytes(original + b"\0")
        yield
    finally:
        path.write_bytes(original)


def test_the_starting_point_is_real(runs: Runs, tmp_path: Path) -> None:
    uri = runs.store_copy(tmp_path)
    bad = _states(uri, "bad")
    assert (bad["evaluation"], bad["evaluation_verdict"]) == ("COMPLETE", "FAILED")
    [evaluation] = [
        e for e in LineageStore.connect(uri).executions_of_run("bad") if e.stage == "evaluation"
    ]
    assert evaluation.properties["verdict"] == "breached"
    assert set(_states(uri, "good").values()) == {"COMPLETE"}
    custody = verify_model(
        LineageStore.connect(uri), _model(runs.good), through="integration_testing"
    )
    assert list(custody.links) == [
        "data_preparation",
        "data_preparation_verdict",
        "feature_engineering",
        "feature_engineering_verdict",
        "training",
        "evaluation",
        "evaluation_verdict",
        "registration",
        "integration_testing",
        "integration_testing_verdict",
    ]
    assert custody.run_id == "good"


# -- cross-wiring at every boundary ---------------------------------------------------------


def test_registration_refuses_another_models_passing_evaluation(runs: Runs, tmp_path: Path) -> None:
    uri = runs.store_copy(tmp_path)
    bad = runs.bad.at(uri, tmp_path)
    with pytest.raises(CustodyError, match="run bad's evaluation gate breached"):
        bad.register(
            report=runs.good.paths["evaluation_report"],
            verdict=runs.good.paths["evaluation_verdict"],
        )
    # The refusal is recorded, and the model never reaches staging.
    assert _states(uri, "bad")["registration"] == "FAILED"
    model = LineageStore.connect(uri).find_artifact(lineage.MODEL, _model(runs.bad))
    assert model is not None
    assert lineage.properties_of(model)["stage"] == "experimental"


def test_a_fresh_run_cannot_borrow_an_evaluation(runs: Runs, tmp_path: Path) -> None:
    """The executor called directly under a new run id, the bad model and the good report."""
    uri = runs.store_copy(tmp_path)
    forged = Chain(tmp_path, uri, "forged")
    forged.paths = dict(runs.bad.paths)
    with pytest.raises(
        CustodyError, match=r"model [0-9a-f]{12} was not produced by a completed training in run"
    ):
        forged.register(
            report=runs.good.paths["evaluation_report"],
            verdict=runs.good.paths["evaluation_verdict"],
        )


def test_registration_in_the_good_run_refuses_the_bad_model(runs: Runs, tmp_path: Path) -> None:
    uri = runs.store_copy(tmp_path)
    good = runs.good.at(uri, tmp_path)
    with pytest.raises(CustodyError, match="was not produced by a completed training in run good"):
        good.register(model=runs.bad.paths["model"])


def test_registration_refuses_the_evaluation_of_another_model_in_its_run(
    runs: Runs, tmp_path: Path
) -> None:
    uri = runs.store_copy(tmp_path)
    good = runs.good.at(uri, tmp_path)
    # A second model trained in the good run (another seed) borrows the first one's report.
    good.seed = 1
    other = good.train()
    good.paths["model"] = other
    with pytest.raises(
        CustodyError, match=r"evaluation \(execution \d+\) in run good read model [0-9a-f]{12}, not"
    ):
        good.register(report=runs.good.paths["evaluation_report"])


def test_integration_testing_refuses_another_models_registration(
    runs: Runs, tmp_path: Path
) -> None:
    uri = runs.store_copy(tmp_path)
    bad = runs.bad.at(uri, tmp_path)
    bad.paths["registration"] = runs.good.paths["registration"]
    before = set(server_processes())
    with pytest.raises(CustodyError, match="run bad's evaluation gate breached"):
        bad.integrate()
    assert _states(uri, "bad")["integration_testing"] == "FAILED"
    # Its model server, started ahead while custody was checked, never loaded a model.
    assert set(server_processes()) <= before
    log = bad.out("integration_report.json").with_name("integration_report.server.log")
    assert ARGUMENTS_ON_STDIN in log.read_text()
    assert "--model_dir" not in log.read_text() and "Registering model" not in log.read_text()


def test_evaluation_refuses_another_runs_feature_set(runs: Runs, tmp_path: Path) -> None:
    uri = runs.store_copy(tmp_path)
    good = runs.good.at(uri, tmp_path)
    with pytest.raises(
        CustodyError, match=r"feature set [0-9a-f]{12} is not the one feature engineering produced"
    ):
        good.evaluate(features=runs.bad.paths["features"])


def test_training_refuses_a_feature_set_from_another_run(runs: Runs, tmp_path: Path) -> None:
    uri = runs.store_copy(tmp_path)
    good = runs.good.at(uri, tmp_path)
    with pytest.raises(
        CustodyError, match=r"feature set [0-9a-f]{12} was not produced by a completed"
    ):
        good.train(features=runs.bad.paths["features"], transform=runs.bad.paths["transform"])


# -- the store and the files edited after the run ---------------------------------------------


def test_a_failed_evaluation_flipped_to_complete_is_caught(runs: Runs, tmp_path: Path) -> None:
    """The evaluation's verdict task FAILED; flipping it to COMPLETE in the store, and then the
    evidence execution's recorded verdict to passed, is caught each time."""
    uri = runs.store_copy(tmp_path)
    store = LineageStore.connect(uri)
    executions = {e.stage: e for e in store.executions_of_run("bad")}
    database = sqlite3.connect(uri.removeprefix("sqlite://"))
    database.execute(
        "UPDATE Execution SET last_known_state = ? WHERE id = ?",
        (3, executions["evaluation_verdict"].id),
    )  # 3 = COMPLETE
    database.commit()
    store = LineageStore.connect(uri)
    assert _states(uri, "bad")["evaluation_verdict"] == "COMPLETE"
    with pytest.raises(CustodyError, match="run bad's evaluation gate breached"):
        verify_model(store, _model(runs.bad), through="evaluation")
    # The trace shows the flip instead of a clean COMPLETE.
    from aiact.trace import render, trace_artifact

    verdicts = store.artifacts_of_run("bad", lineage.GATE_VERDICT)
    evaluation_verdict = [
        v for v in verdicts if lineage.properties_of(v).get("gate") == "evaluation"
    ]
    text = "\n".join(render(trace_artifact(store, evaluation_verdict[0].id)))
    assert "recorded outcome GateFailed: ALTERED" in text
    # Rewriting the evidence execution's verdict too: its report still did not pass.
    database.execute(
        "UPDATE ExecutionProperty SET string_value = 'passed' "
        "WHERE execution_id = ? AND name = 'verdict'",
        (executions["evaluation"].id,),
    )
    database.execute(
        "UPDATE ExecutionProperty SET string_value = 'passed' "
        "WHERE execution_id = ? AND name = 'verdict'",
        (executions["evaluation_verdict"].id,),
    )
    database.commit()
    database.close()
    store = LineageStore.connect(uri)
    with pytest.raises(CustodyError, match=r"altered|did not pass its gate"):
        verify_model(store, _model(runs.bad), through="evaluation")
    with pytest.raises(CustodyError, match=r"altered|did not pass its gate"):
        runs.bad.at(uri, tmp_path).register(verdict=runs.good.paths["evaluation_verdict"])


@pytest.mark.parametrize(
    ("artefact", "edit", "message"),
    [
        ("evaluation_report", "json", "EvaluationReport [0-9a-f]{12} at .* was altered"),
        ("model", "bytes", "Model [0-9a-f]{12} at .* was altered"),
    ],
)
def test_edited_evidence_is_caught_by_every_audit_tool(
    runs: Runs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    artefact: str,
    edit: str,
    message: str,
) -> None:
    uri = runs.store_copy(tmp_path)
    store = LineageStore.connect(uri)
    model = _model(runs.good)
    target = runs.good.paths[artefact]
    if target.is_dir():
        target = (
            target / "weights.pt"
            if (target / "weights.pt").is_file()
            else next(p for p in sorted(target.iterdir()) if p.is_file())
        )
    # Control: intact evidence verifies, and the audit command says so.
    assert (
        cli.main(["verify-model", model, "--metadata-uri", uri, "--through", "integration_testing"])
        == 0
    )
    with _edited(target, edit):
        with pytest.raises(CustodyError, match=message):
            verify_model(store, model, through="integration_testing")
        capsys.readouterr()
        code = cli.main(
            ["verify-model", model, "--metadata-uri", uri, "--through", "integration_testing"]
        )
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("aiact: chain of custody broken:")
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        bundle = tmp_path / "bundle"
        with pytest.raises(CustodyError, match="altered"):
            write_bundle(store, "good", bundle)
        assert not bundle.exists()  # nothing half-written is left behind
        assert (
            cli.main(
                ["evidence-bundle", "--run", "good", "--out", str(bundle), "--metadata-uri", uri]
            )
            == 1
        )
    # Restored: verifies again.
    with Verifier(store) as verifier:
        assert verifier.verify_model(model, through="integration_testing").run_id == "good"


def test_the_bundle_carries_the_custody_verdict(runs: Runs, tmp_path: Path) -> None:
    uri = runs.store_copy(tmp_path)
    store = LineageStore.connect(uri)
    manifest = write_bundle(store, "good", tmp_path / "good")
    assert manifest["custody"]["verified"] is True
    assert manifest["custody"]["through"] == "integration_testing"
    halted = write_bundle(store, "bad", tmp_path / "bad")
    assert halted["custody"]["verified"] is False
    assert "evaluation gate breached" in halted["custody"]["reason"]
    copies = sorted(p.name for p in (tmp_path / "good" / "evidence").iterdir())
    assert any(name.startswith("EvaluationReport-") and name.endswith(".json") for name in copies)


# -- the submitter's parameters against the platform ------------------------------------------


@pytest.mark.parametrize("spelling", ["Production", "production ", "prod", "PRODUCTION", "stage"])
def test_every_spelling_of_an_environment_is_refused(
    runs: Runs, tmp_path: Path, spelling: str
) -> None:
    uri = runs.store_copy(tmp_path)
    chain = Chain(tmp_path, uri, f"spelling-{spelling.strip() or 'blank'}")
    chain_run = chain.run
    from dataclasses import replace

    from components.data_preparation.executor import run_data_preparation

    with pytest.raises(PlatformError, match=repr(spelling).replace("(", r"\(")):
        run_data_preparation(
            run=replace(chain_run, environment=spelling),
            metadata_uri=uri,
            source_uri=str(runs.good.root / "data" / "3000-7-0" / "data.csv"),
            data_card_uri=str(runs.good.root / "data" / "3000-7-0" / "data_card.yaml"),
            use_case_uri="",
            policy=chain.policy,
            dataset_dir=tmp_path / "dataset",
            dataset_uri=str(tmp_path / "dataset"),
            report_path=tmp_path / "report.json",
            report_uri=str(tmp_path / "report.json"),
            report_html_path=tmp_path / "report.html",
        )
    assert _states(uri, chain_run.run_id) == {"data_preparation": "FAILED"}


def test_a_parameter_contradicting_the_platform_fails_the_run(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = tmp_path / "platform.yaml"
    platform.write_text(
        "defaults:\n"
        "  environment: production\n"
        "  required_approvals: 2\n"
        "  approver_group: credit-approvers\n"
        "  ledger_uri: file:///var/lib/aiact/ledger\n"
        "  approval_backend: kubernetes://credit-prod\n"
        "  max_approval_timeout_s: 86400\n"
    )
    monkeypatch.setenv("AIACT_PLATFORM_CONFIG", str(platform))
    uri = runs.store_copy(tmp_path)
    chain = Chain(tmp_path, uri, "claims-staging")
    from dataclasses import replace

    from components.data_preparation.executor import run_data_preparation

    with pytest.raises(PlatformError, match="environment='staging' contradicts the platform"):
        run_data_preparation(
            run=replace(chain.run, environment="staging"),
            metadata_uri=uri,
            source_uri=str(runs.good.root / "data" / "3000-7-0" / "data.csv"),
            data_card_uri=str(runs.good.root / "data" / "3000-7-0" / "data_card.yaml"),
            use_case_uri="",
            policy=chain.policy,
            dataset_dir=tmp_path / "dataset",
            dataset_uri=str(tmp_path / "dataset"),
            report_path=tmp_path / "report.json",
            report_uri=str(tmp_path / "report.json"),
            report_html_path=tmp_path / "report.html",
        )
    context = LineageStore.connect(uri).run_context("claims-staging")
    assert lineage.properties_of(context)["environment"] == "production"


def test_a_claimed_code_commit_must_be_the_builds_own(runs: Runs, tmp_path: Path) -> None:
    uri = runs.store_copy(tmp_path)
    chain = runs.good.at(uri, tmp_path)
    from dataclasses import replace

    from components.registration.executor import run_registration

    with pytest.raises(PlatformError, match="code_commit='0123abc' does not match the commit"):
        run_registration(
            run=replace(chain.run, code_commit="0123abc"),
            metadata_uri=uri,
            model_dir=chain.paths["model"],
            model_uri=str(chain.paths["model"]),
            evaluation_report_path=chain.paths["evaluation_report"],
            evaluation_report_uri=str(chain.paths["evaluation_report"]),
            dataset_dir=chain.paths["dataset"],
            dataset_uri=str(chain.paths["dataset"]),
            registration_path=tmp_path / "registration.json",
            registration_uri=str(tmp_path / "registration.json"),
            evaluation_verdict_path=chain.paths["evaluation_verdict"],
            evaluation_verdict_uri=str(chain.paths["evaluation_verdict"]),
        )


def test_a_later_stage_refuses_another_use_case_than_data_preparation_read(
    runs: Runs, tmp_path: Path
) -> None:
    """Feature engineering handed a (valid) use case other than the one data preparation
    recorded in this run, e.g. one with a looser policy, is refused."""
    from aiact.usecase import BUNDLED_USE_CASE
    from components.feature_engineering.executor import run_feature_engineering

    uri = runs.store_copy(tmp_path)
    other = tmp_path / "usecase"
    shutil.copytree(BUNDLED_USE_CASE, other)
    declaration = other / "usecase.yaml"
    declaration.write_text(declaration.read_text() + "# another use case, same shape\n")
    good = runs.good.at(uri, tmp_path)
    with pytest.raises(CustodyError, match=r"use case [0-9a-f]{12} is not the one data prep"):
        run_feature_engineering(
            run=good.run,
            metadata_uri=uri,
            dataset_dir=good.paths["dataset"],
            dataset_uri=str(good.paths["dataset"]),
            use_case_uri=str(other),
            policy={},
            seed=1,
            feature_set_dir=tmp_path / "features",
            feature_set_uri=str(tmp_path / "features"),
            transform_path=tmp_path / "transform.json",
            transform_uri=str(tmp_path / "transform.json"),
            report_path=tmp_path / "feature_report.json",
            report_uri=str(tmp_path / "feature_report.json"),
            data_verdict_path=good.paths["data_preparation_verdict"],
            data_verdict_uri=str(good.paths["data_preparation_verdict"]),
        )
    assert _states(uri, "good")["feature_engineering"] == "FAILED"
