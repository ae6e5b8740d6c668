"""Deployment without a cluster (the local approval backend, development): the stage runs the
deployer's reconcile in-process, promotes the registry entry, appends the local ledger entry
and says that nothing was applied; `aiact rollback` does the same for a rollback. Pure parts of
the reconciler (request parsing, what a rollback restores) are tested on their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiact import cli, lineage
from aiact.custody import verify_ledger
from aiact.deployer.reconcile import parse_request, rollback_target
from aiact.hashing import sha256_path
from aiact.lineage import LineageStore
from components.deployment.core import DeploymentRefused
from components.deployment.executor import run_deployment
from tests.chain import Chain


def _entry(sequence: int, model: str, strategy: str = "full", action: str = "deploy") -> dict:
    return {
        "sequence": sequence,
        "model_name": "credit-scoring",
        "environment": "production",
        "model_sha256": model,
        "strategy": strategy,
        "action": action,
    }


def test_what_a_rollback_restores() -> None:
    entries = [_entry(1, "a"), _entry(2, "b", "canary")]
    assert rollback_target(entries, "credit-scoring", "production") == (entries[1], entries[0])
    entries += [_entry(3, "b"), _entry(4, "c", "shadow")]
    current, target = rollback_target(entries, "credit-scoring", "production")
    assert (current["sequence"], target["sequence"]) == (3, 1), "a shadow never serves"
    entries.append(_entry(5, "a", action="rollback"))
    current, target = rollback_target(entries, "credit-scoring", "production")
    assert (current["sequence"], target["model_sha256"]) == (5, "b")
    with pytest.raises(DeploymentRefused, match="no earlier production model"):
        rollback_target([_entry(1, "a")], "credit-scoring", "production")
    with pytest.raises(DeploymentRefused, match="nothing to roll back"):
        rollback_target(entries, "credit-scoring", "staging")


def test_bad_requests_get_one_line() -> None:
    base = {"metadata": {"name": "r", "namespace": "ns"}}
    with pytest.raises(DeploymentRefused, match=r"spec\.action must be one of"):
        parse_request({**base, "spec": {"action": "delete", "model": {"name": "m"}}})
    with pytest.raises(DeploymentRefused, match=r"spec\.model\.sha256 is required"):
        parse_request({**base, "spec": {"action": "deploy", "model": {"name": "m"}}})
    with pytest.raises(DeploymentRefused, match="is not the version of sha256"):
        parse_request(
            {
                **base,
                "spec": {
                    "model": {"name": "m", "sha256": "a" * 64, "version": "b" * 16},
                    "pipelineRunId": "r",
                    "approval": {"name": "x", "sha256": "c" * 64},
                    "strategy": "full",
                },
            }
        )


def _deploy(chain: Chain, uri: str, strategy: str) -> dict:
    out = chain.out(f"deployment-{strategy}.json")
    run_deployment(
        run=chain.run,
        metadata_uri=uri,
        model_dir=chain.paths["model"],
        model_uri=str(chain.paths["model"]),
        approval_path=chain.paths["approval"],
        approval_uri=str(chain.paths["approval"]),
        strategy=strategy,
        canary_percent=10,
        ledger_uri=chain.ledger_uri,
        deployment_path=out,
        deployment_uri=str(out),
    )
    return json.loads(out.read_text())


def test_local_deploy_and_rollback_apply_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    a = Chain(tmp_path, uri, "run-a").through_integration()
    a.approve()
    b = Chain(tmp_path, uri, "run-b", seed=1).through_integration()
    b.approve()
    model_a, model_b = sha256_path(a.paths["model"]), sha256_path(b.paths["model"])
    # A shadow mirrors a production model: there is none yet.
    with pytest.raises(DeploymentRefused, match="a shadow rollout mirrors the production model"):
        _deploy(b, uri, "shadow")
    first = _deploy(a, uri, "full")
    assert first["applied_to_cluster"] is False and first["action"] == "deploy"
    assert [o["kind"] for o in first["applied"]] == ["InferenceService"]
    assert first["applied"][0]["uid"] == "", "nothing was sent to a cluster"
    second = _deploy(b, uri, "full")
    assert second["archives"] == [lineage.version_of(model_a)]
    capsys.readouterr()
    argv = ["rollback", "credit-scoring", "--reason", "B misbehaves", "--metadata-uri", uri]
    argv += ["--ledger", a.ledger_uri, "--workdir", str(tmp_path / "sre")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "nothing was applied to a cluster" in out and "ledger entry 3" in out
    store = LineageStore.connect(uri)
    stage = {
        m: lineage.properties_of(store.require_artifact(lineage.MODEL, m))["stage"]
        for m in (model_a, model_b)
    }
    assert stage == {model_a: "production", model_b: "archived"}
    assert verify_ledger(store, a.ledger_uri).sequence == 3
    # A second rollback toggles back to B; with no reason it is refused in one line.
    argv[3] = ""
    assert cli.main(argv) == 2
    assert "needs a reason" in capsys.readouterr().err
