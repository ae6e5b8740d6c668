"""Reverse lineage (`aiact impact`) over the records of real stage executors: two runs sharing a
dataset but training different models, and a third run under another gate policy."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiact import lineage
from aiact.cli import main
from aiact.hashing import sha256_path
from aiact.impact import impact
from aiact.lineage import LineageStore, properties_of
from aiact.policy import load_policy, policy_sha256
from tests.chain import Chain


@dataclass(frozen=True)
class Runs:
    """The store and the three runs recorded in it."""

    uri: str
    first: Chain
    second: Chain
    other_policy: Chain


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("impact")
    uri = f"sqlite://{root / 'mlmd.sqlite'}"
    first = Chain(root, uri, "impact-first").through_integration()
    first.approve()
    first.deploy()
    second = Chain(root, uri, "impact-second", seed=1).through_integration()
    second.approve()
    second.deploy()
    stricter = copy.deepcopy(load_policy())
    stricter["data_quality"]["max_missing_rate"] = 0.015
    other = Chain(root, uri, "impact-other-policy", data_seed=8, policy=stricter)
    other.prepare()
    return Runs(uri, first, second, other)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["impact", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dataset_lists_both_models_and_deployments(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = sha256_path(runs.first.paths["dataset"])
    assert dataset == sha256_path(runs.second.paths["dataset"]), "the runs share one dataset"
    models = {sha256_path(runs.first.paths["model"]), sha256_path(runs.second.paths["model"])}
    assert len(models) == 2, "the runs trained different models"
    found = impact(LineageStore.connect(runs.uri), dataset)
    assert found.kind == "artifact"
    assert [m["type"] for m in found.matched] == [lineage.DATASET]
    assert {r["run_id"] for r in found.runs} == {"impact-first", "impact-second"}
    assert {r["status"] for r in found.runs} == {"deployed (deployment)"}
    assert {m["sha256"] for m in found.models} == models
    assert {(m["name"], m["version"]) for m in found.models} == {
        ("credit-scoring", lineage.version_of(sha)) for sha in models
    }
    assert {d["model_sha256"] for d in found.deployments} == models
    assert {d["run_id"] for d in found.deployments} == {"impact-first", "impact-second"}

    code, out, _ = _cli(capsys, dataset, "--metadata-uri", runs.uri)
    assert code == 0
    assert "runs (2):" in out and "models (2):" in out and "deployments (2):" in out
    for sha in models:
        assert f"sha256={sha}" in out
    code, out, _ = _cli(capsys, dataset[:16], "--json", "--metadata-uri", runs.uri)
    assert code == 0
    assert {m["sha256"] for m in json.loads(out)["models"]} == models


def test_policy_hash_lists_the_runs_judged_by_it(runs: Runs) -> None:
    store = LineageStore.connect(runs.uri)
    default = impact(store, policy_sha256(runs.first.policy))
    assert [m["type"] for m in default.matched] == [lineage.GATE_POLICY]
    assert {r["run_id"] for r in default.runs} == {"impact-first", "impact-second"}
    assert len(default.models) == 2
    digest = policy_sha256(runs.other_policy.policy)
    other = impact(store, digest)
    assert [r["run_id"] for r in other.runs] == ["impact-other-policy"]
    assert other.models == [] and other.deployments == []
    assert "gate_policy" in other.runs[0]["roles"]
    by_uri = impact(store, f"aiact-policy:sha256:{digest}")
    assert by_uri.runs == other.runs


def test_commit_lists_every_run_of_it(runs: Runs) -> None:
    store = LineageStore.connect(runs.uri)
    commit = str(properties_of(store.run_context("impact-first"))["code_commit"])
    found = impact(store, commit[:12])
    assert found.kind == "commit"
    assert {r["run_id"] for r in found.runs} == {
        "impact-first",
        "impact-second",
        "impact-other-policy",
    }
    assert len(found.models) == 2 and len(found.deployments) == 2


def test_model_compared_against_is_not_a_use(runs: Runs) -> None:
    """The second run's evaluation read the first run's production model as its reference:
    listed apart, not as a run that used it."""
    store = LineageStore.connect(runs.uri)
    model = sha256_path(runs.first.paths["model"])
    [artifact] = store.store.get_artifacts_by_id([store.require_artifact(lineage.MODEL, model).id])
    found = impact(store, str(artifact.id))
    assert [r["run_id"] for r in found.runs] == ["impact-first"]
    assert [m["sha256"] for m in found.models] == [model]
    assert [r["run_id"] for r in found.referenced_by] == ["impact-second"]
    assert found.referenced_by[0]["roles"] == ["production_model"]


@pytest.mark.parametrize("query", ["f" * 64, "0123456789abcdef", "no-such-dataset.csv", "999999"])
def test_unknown_input_is_one_line_exit_2(
    runs: Runs, query: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, query, "--metadata-uri", runs.uri)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("aiact: ") and "names no dataset, policy" in err


def test_empty_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, " ", "--metadata-uri", f"sqlite://{tmp_path / 'm.sqlite'}")
    assert code == 2 and err.count("\n") == 1
