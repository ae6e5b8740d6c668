"""Attacks on approval, deployment and the ledger, by a submitter who sets any run parameter or
calls any executor against the same metadata store (see test_custody_attacks.py for the earlier
boundaries). Genuine runs are built once per module with the real executors: `good` is deployed
(demo approval, development), `twin` trained the identical model in another run and holds its
own approval, `bad` failed evaluation. Each test works on a private copy of the store and of
the ledger; tests that edit evidence files restore them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiact import cli, lineage
from aiact.custody import CustodyError, verify_ledger, verify_model
from aiact.hashing import sha256_json, sha256_path
from aiact.ledger import LedgerError, entry_hash, entry_name
from aiact.lineage import LineageStore
from aiact.platform import PlatformError
from aiact.policy import GateFailed
from components.deployment.core import DeploymentRefused, authorise
from tests.chain import UNDERTRAINED, Chain


@dataclass
class World:
    root: Path
    good: Chain
    twin: Chain
    bad: Chain

    def copy(self, directory: Path) -> tuple[str, str]:
        """A private store and ledger holding every run, for one test."""
        shutil.copyfile(self.root / "mlmd.sqlite", directory / "mlmd.sqlite")
        shutil.copytree(self.root / "ledger", directory / "ledger")
        for entry in (directory / "ledger").iterdir():
            entry.chmod(0o644)
        return f"sqlite://{directory / 'mlmd.sqlite'}", f"file://{directory / 'ledger'}"


def _rebase_ledger(uri: str, old: str, new: str) -> None:
    """Point the copied store's deployment records at the copied ledger."""
    from aiact.ledger import ledger_from_uri

    store = LineageStore.connect(uri)
    old, new = ledger_from_uri(old).location, ledger_from_uri(new).location
    rebased = 0
    for deployment in store.store.get_artifacts_by_type(lineage.DEPLOYMENT):
        if lineage.properties_of(deployment).get("ledger_uri") == old:
            store.update_artifact(deployment.id, {"ledger_uri": new})
            rebased += 1
    assert rebased, f"no deployment recorded against {old}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("deploy")
    uri = f"sqlite://{root / 'mlmd.sqlite'}"
    good = Chain(root, uri, "good").through_integration()
    good.approve()
    good.deploy()
    twin = Chain(root, uri, "twin").through_integration()
    twin.approve()
    bad = Chain(root, uri, "bad", data_seed=8, hyperparameters=UNDERTRAINED)
    bad.prepare()
    bad.engineer()
    bad.train()
    with pytest.raises(GateFailed):
        bad.evaluate()
    with pytest.raises(GateFailed):
        bad.verdict("evaluation")
    return World(root, good, twin, bad)


@pytest.fixture
def private(world: World, tmp_path: Path) -> Iterator[tuple[str, str]]:
    uri, ledger = world.copy(tmp_path)
    _rebase_ledger(uri, world.good.ledger_uri, ledger)
    yield uri, ledger


def _model(chain: Chain) -> str:
    return sha256_path(chain.paths["model"])


def test_the_starting_point_is_real(world: World, private: tuple[str, str]) -> None:
    uri, ledger = private
    store = LineageStore.connect(uri)
    custody = verify_model(store, _model(world.good), run_id="good", through="deployment")
    assert "ledger entry 1" in " ".join(custody.checks)
    assert verify_ledger(store, ledger).sequence == 1
    # The twin run trained the very same model (same data, seed and code) and approved it.
    assert _model(world.twin) == _model(world.good)
    assert sha256_path(world.twin.paths["approval"]) != sha256_path(world.good.paths["approval"])


# -- cross-wiring at approval and deployment --------------------------------------------------


def test_approval_refuses_another_models_passing_evaluation(
    world: World, private: tuple[str, str], tmp_path: Path
) -> None:
    uri, _ = private
    bad = world.bad.at(uri, tmp_path)
    bad.paths["integration_report"] = world.good.paths["integration_report"]
    bad.paths["integration_testing_verdict"] = world.good.paths["integration_testing_verdict"]
    with pytest.raises(CustodyError, match="run bad's evaluation gate breached"):
        bad.approve(evaluation_report=world.good.paths["evaluation_report"])


def test_deployment_refuses_another_runs_approval(
    world: World, private: tuple[str, str], tmp_path: Path
) -> None:
    uri, ledger = private
    good = world.good.at(uri, tmp_path)
    not_this_runs = r"approval [0-9a-f]{12} is not the one approval produced"
    with pytest.raises(CustodyError, match=not_this_runs):
        good.deploy(world.twin.paths["approval"], ledger=ledger)
    twin = world.twin.at(uri, tmp_path)
    with pytest.raises(CustodyError, match=not_this_runs):
        twin.deploy(world.good.paths["approval"], ledger=ledger)


def _example_approval() -> dict:
    """An approval artefact as the approval stage writes it: one demo decision, run `good`."""
    demo = {
        "approver": "demo:dana",
        "decided_at": "2026-12-02T02:44:37+00:00",
        "decision": "approved",
        "kind": "demo",
        "reason": "demo approval",
    }
    return {
        "decisions": [demo],
        "request": {
            "approver_group": "aiact-approvers",
            "environment": "development",
            "evaluation_report_sha256": "e" * 64,
            "evaluation_report_uri": "/eval",
            "expires_at": "2026-12-02T03:44:37+00:00",
            "integration_report_sha256": "i" * 64,
            "integration_report_uri": "/int",
            "model_name": "credit-scoring",
            "model_sha256": "m" * 64,
            "name": "credit-scoring-mmmmmmmmmmmm-12345678",
            "pipeline_run_id": "good",
            "requested_by": "tester",
            "required_approvals": 1,
        },
    }


def test_deployment_core_refuses_an_approval_of_another_run() -> None:
    approval = _example_approval()
    with pytest.raises(DeploymentRefused, match="belongs to run 'good', not to run 'other'"):
        authorise(
            approval,
            approval["request"]["model_sha256"],
            run_id="other",
            environment="development",
            required_approvals=1,
            demo_allowed=True,
        )


# -- demo approvals never reach production ----------------------------------------------------


def _production_platform(path: Path, monkeypatch: pytest.MonkeyPatch, ledger: str) -> None:
    path.write_text(
        "defaults:\n"
        "  environment: production\n"
        "  required_approvals: 2\n"
        "  approver_group: aiact-approvers\n"
        f"  ledger_uri: {ledger}\n"
        "  approval_backend: kubernetes://credit-prod\n"
        "  max_approval_timeout_s: 86400\n"
    )
    monkeypatch.setenv("AIACT_PLATFORM_CONFIG", str(path))


def test_demo_approval_routes_to_production_are_closed(
    world: World,
    private: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri, ledger = private
    _production_platform(tmp_path / "platform.yaml", monkeypatch, ledger)
    twin = world.twin.at(uri, tmp_path)
    # 1. the run was started in development, the platform now says production: every later
    # stage refuses to continue it.
    with pytest.raises(
        PlatformError,
        match="contradicts the platform configuration: this namespace is 'production'",
    ):
        twin.deploy(ledger=ledger)
    # 2. a local approval backend in a production namespace, 3. a demo approver there.
    prod = Chain(tmp_path, uri, "prod-run", environment="")
    prod.paths = dict(world.twin.paths)
    with pytest.raises(PlatformError, match="local approval backend exists only in development"):
        prod.approve(backend=f"local:{tmp_path / 'approvals'}")
    with pytest.raises(PlatformError, match="demo approvals exist only with the local backend"):
        prod.approve(backend="kubernetes://credit-prod")


def test_deployment_refuses_a_demo_decision_whatever_approval_said() -> None:
    approval = _example_approval()
    model = approval["request"]["model_sha256"]
    for environment in ("staging", "production"):
        with pytest.raises(DeploymentRefused, match=r"a demo approval .* cannot authorise"):
            authorise(
                approval,
                model,
                run_id="good",
                environment=environment,
                required_approvals=1,
                demo_allowed=False,
            )
    human = {
        **approval,
        "decisions": [{**approval["decisions"][0], "approver": "bob", "kind": "human"}],
    }
    with pytest.raises(DeploymentRefused, match=r"1 distinct human approver\(s\) \(bob\), but"):
        authorise(
            human,
            model,
            run_id="good",
            environment="production",
            required_approvals=2,
            demo_allowed=False,
        )


def test_a_forged_approval_file_is_refused_against_the_backend(
    world: World, private: tuple[str, str], tmp_path: Path
) -> None:
    """The approval document says approved, but the approval backend holds no such decision."""
    uri, ledger = private
    twin = world.twin.at(uri, tmp_path)
    approvals = world.root / "approvals"
    [request_file] = [
        p
        for p in approvals.glob("*.json")
        if json.loads(p.read_text())["request"]["pipeline_run_id"] == "twin"
    ]
    original = request_file.read_bytes()
    try:
        document = json.loads(original)
        document["decisions"] = []
        request_file.write_text(json.dumps(document))
        with pytest.raises(DeploymentRefused, match="does not hold"):
            twin.deploy(ledger=ledger)
    finally:
        request_file.write_bytes(original)


# -- the ledger proves it is complete ----------------------------------------------------------


def _ledger_dir(ledger: str) -> Path:
    return Path(ledger.removeprefix("file://"))


def _audit(uri: str, ledger: str, model: str, capsys: pytest.CaptureFixture[str]) -> list[int]:
    capsys.readouterr()
    codes = [
        cli.main(["verify-ledger", "--ledger", ledger, "--metadata-uri", uri]),
        cli.main(["verify-model", model, "--metadata-uri", uri]),
    ]
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return codes


def test_a_deleted_last_entry_is_caught(
    world: World, private: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ledger = private
    assert _audit(uri, ledger, _model(world.good), capsys) == [0, 0]
    (_ledger_dir(ledger) / entry_name(1)).unlink()
    assert _audit(uri, ledger, _model(world.good), capsys) == [1, 1]


def test_a_deleted_ledger_is_caught(
    world: World, private: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ledger = private
    shutil.rmtree(_ledger_dir(ledger))
    assert _audit(uri, ledger, _model(world.good), capsys) == [1, 1]
    with pytest.raises(LedgerError, match="has no ledger entry"):
        verify_ledger(LineageStore.connect(uri), ledger)


def test_a_ledger_rewritten_with_recomputed_hashes_is_caught(
    world: World, private: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ledger = private
    path = _ledger_dir(ledger) / entry_name(1)
    entry = json.loads(path.read_text())
    entry["strategy"], entry["traffic_percent"] = "full", 100
    entry["entry_sha256"] = entry_hash(entry)
    path.write_text(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
    assert _audit(uri, ledger, _model(world.good), capsys) == [1, 1]


def test_a_half_written_entry_is_reported_not_a_json_traceback(
    world: World, private: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ledger = private
    directory = _ledger_dir(ledger)
    (directory / entry_name(2)).write_text('{"sequence": 2, "model_sha')
    capsys.readouterr()
    assert cli.main(["verify-ledger", "--ledger", ledger, "--metadata-uri", uri]) == 1
    err = capsys.readouterr().err
    assert "entry 2" in err and len(err.strip().splitlines()) == 1


def test_a_crash_between_ledger_and_metadata_is_completed_by_the_rerun(
    world: World, private: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, ledger = private
    twin = world.twin.at(uri, tmp_path)
    # A crashed earlier writer left a half-written temp file behind: ignored.
    stale = _ledger_dir(ledger) / ".tmp-crashed"
    stale.write_text('{"half": ')
    os.utime(stale, (0, 0))
    original = LineageStore.record_execution

    def crash(self: LineageStore, **kwargs: object) -> object:
        if kwargs.get("stage") == "deployment":
            raise SystemExit("simulated crash after the ledger append")
        return original(self, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LineageStore, "record_execution", crash)
    with pytest.raises(SystemExit):
        twin.deploy(ledger=ledger)
    monkeypatch.setattr(LineageStore, "record_execution", original)
    store = LineageStore.connect(uri)
    # The entry exists, the deployment record does not: the cross-check says so.
    with pytest.raises(LedgerError, match=r"entry 2 .* has no deployment in the metadata store"):
        verify_ledger(store, ledger)
    twin.deploy(ledger=ledger)
    head = verify_ledger(LineageStore.connect(uri), ledger)
    assert head.sequence == 2, "the rerun completed the deployment instead of adding an entry"
    verify_model(LineageStore.connect(uri), _model(world.twin), run_id="twin", through="deployment")


def test_edited_evidence_after_deployment_is_caught_by_trace_verify(
    world: World, private: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, _ = private
    report = world.good.paths["evaluation_report"]
    original = report.read_bytes()
    capsys.readouterr()
    assert cli.main(["trace", "--verify", "--run", "good", "--metadata-uri", uri]) == 0
    try:
        document = json.loads(original)
        document["sections"]["note"] = "edited"
        report.write_text(json.dumps(document))
        assert cli.main(["trace", "--verify", "--run", "good", "--metadata-uri", uri]) == 1
        assert "was altered after it was recorded" in capsys.readouterr().err
    finally:
        report.write_bytes(original)


def test_deployment_key_is_deterministic() -> None:
    from components.deployment.executor import deployment_key

    plan = {"strategy": "canary", "traffic_percent": 10, "mirrored": False}
    assert deployment_key("r", "m", "a", plan) == deployment_key("r", "m", "a", dict(plan))
    assert deployment_key("r", "m", "a", plan) != deployment_key("r2", "m", "a", plan)
    assert len(sha256_json(plan)) == 64
