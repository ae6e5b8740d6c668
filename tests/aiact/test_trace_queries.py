"""The audit queries (`aiact trace`, `verify-model`, the production model of a name and use case,
`aiact runs`) give the answers a full scan would, and read only the nodes they need: every MLMD
call they make is recorded, and none lists a whole type or returns more than a handful of nodes,
whatever the number of runs. Run on SQLite and on MariaDB (MLMD's MySQL backend)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from aiact import lineage, queries
from aiact.custody import CustodyError, default_through, find_models
from aiact.lineage import ArtifactRecord, LineageStore, RunInfo, properties_of
from aiact.trace import latest_deployment
from components.evaluation.reference import production_model
from tests.aiact.test_lineage_mysql import mariadb_uri  # noqa: F401 (a fixture)

RUNS = 60
NAMES = ("credit", "income", 'it\'s "quoted"')
USE_CASES = {"credit": "credit-scoring", "income": "income-band", 'it\'s "quoted"': "odd"}
SCANS = ("get_artifacts_by_type", "get_executions_by_type", "get_artifact_types")


def _digest(index: int, role: str) -> str:
    import hashlib

    return hashlib.sha256(f"{index}/{role}".encode()).hexdigest()


@dataclass(frozen=True)
class Seeded:
    uri: str
    deployed: tuple[int, ...]  # run indices that deployed


def seed(uri: str) -> Seeded:
    """RUNS runs: training (a model of one of NAMES, trained for its use case), every fourth run
    deployed (the model archived, the last deployed of each name in production)."""
    store = LineageStore.connect(uri)
    deployed = []
    last: dict[str, int] = {}
    for index in range(RUNS):
        name = NAMES[index % len(NAMES)]
        run = RunInfo(run_id=f"run-{index:03d}", code_commit="c" * 40, environment="production")
        features = ArtifactRecord(
            lineage.FEATURE_SET,
            f"/f/{index}",
            _digest(index, "features"),
            "feature_set",
            {"use_case": USE_CASES[name]},
        )
        model = ArtifactRecord(
            lineage.MODEL,
            f"/m/{index}",
            _digest(index, "model"),
            "model",
            {"model_name": name, "stage": "experimental"},
        )
        store.record_execution(
            run=run, stage="feature_engineering", inputs=[], outputs=[features],
            succeeded=True, properties={},
        )  # fmt: skip
        _, ids = store.record_execution(
            run=run, stage="training", inputs=[features], outputs=[model],
            succeeded=True, properties={},
        )  # fmt: skip
        if index % 4 == 0:
            deployment = ArtifactRecord(
                lineage.DEPLOYMENT,
                f"/d/{index}",
                _digest(index, "deployment"),
                "deployment",
                {
                    "model_sha256": model.content_sha256,
                    "pipeline_run_id": run.run_id,
                    "ledger_uri": "file:///ledger",
                },
            )
            store.record_execution(
                run=run, stage="deployment", inputs=[model], outputs=[deployment],
                succeeded=True, properties={},
            )  # fmt: skip
            store.update_artifact(ids["model"], {"stage": "archived"})
            last[name] = ids["model"]
            deployed.append(index)
    for model_id in last.values():
        store.update_artifact(model_id, {"stage": "production"})
    return Seeded(uri, tuple(deployed))


class Recording:
    """The MLMD store behind a LineageStore, recording each call and how many nodes it
    returned."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            size = len(result) if isinstance(result, list) else 1
            self.calls.append((name, size))
            return result

        return call


def recorded(uri: str) -> tuple[LineageStore, Recording]:
    store = LineageStore.connect(uri)
    recording = Recording(store.store)
    store.store = recording
    return store, recording


@pytest.fixture(scope="module")
def sqlite_seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed(f"sqlite://{tmp_path_factory.mktemp('queries') / 'mlmd.sqlite'}")


@pytest.fixture(scope="module")
def mysql_seeded(mariadb_uri: str) -> Seeded:  # noqa: F811
    return seed(mariadb_uri)


@pytest.fixture(params=["sqlite", "mysql"])
def seeded(request: pytest.FixtureRequest) -> Iterator[Seeded]:
    yield request.getfixturevalue(f"{request.param}_seeded")


def _scan(uri: str, type_name: str) -> list[Any]:
    return list(LineageStore.connect(uri).store.get_artifacts_by_type(type_name))


def assert_small(recording: Recording, most: int = 8) -> None:
    """No call listed a whole type, and none returned more than `most` nodes."""
    names = [name for name, _ in recording.calls]
    assert not set(names) & set(SCANS), recording.calls
    assert all(size <= most for _, size in recording.calls), recording.calls


def test_latest_deployment_is_the_newest_one(seeded: Seeded) -> None:
    store, recording = recorded(seeded.uri)
    found = latest_deployment(store)
    assert found.id == max(a.id for a in _scan(seeded.uri, lineage.DEPLOYMENT))
    assert properties_of(found)["pipeline_run_id"] == f"run-{seeded.deployed[-1]:03d}"
    assert_small(recording, most=1)


def test_latest_deployment_of_a_run(seeded: Seeded) -> None:
    store, recording = recorded(seeded.uri)
    middle = f"run-{seeded.deployed[len(seeded.deployed) // 2]:03d}"
    assert properties_of(latest_deployment(store, middle))["pipeline_run_id"] == middle
    with pytest.raises(lineage.LineageError, match="no deployment recorded in run run-001"):
        latest_deployment(store, "run-001")  # trained, never deployed
    with pytest.raises(lineage.LineageError, match="no deployment recorded in run nope"):
        latest_deployment(store, "nope")
    assert_small(recording, most=1)


@pytest.mark.parametrize("name", NAMES)
def test_find_models_by_name_is_the_production_model(seeded: Seeded, name: str) -> None:
    models = _scan(seeded.uri, lineage.MODEL)
    expected = [
        m.id
        for m in models
        if properties_of(m)["model_name"] == name and properties_of(m).get("stage") == "production"
    ]
    store, recording = recorded(seeded.uri)
    assert [m.id for m in find_models(store, name)] == expected
    assert len(expected) == 1
    assert default_through(store, find_models(store, name)[0]) == "deployment"
    assert_small(recording)


def test_find_models_by_version_and_digest(seeded: Seeded) -> None:
    model = _scan(seeded.uri, lineage.MODEL)[7]
    store, recording = recorded(seeded.uri)
    assert [m.id for m in find_models(store, model.name[:12])] == [model.id]
    assert [m.id for m in find_models(store, model.name.upper()[:16])] == [model.id]
    assert [m.id for m in find_models(store, model.name)] == [model.id]
    with pytest.raises(CustodyError, match="no model 'ffffffffffff0000'"):
        find_models(store, "ffffffffffff0000")
    assert_small(recording)


def test_find_models_without_production_takes_every_model_of_the_name(seeded: Seeded) -> None:
    store = LineageStore.connect(seeded.uri)
    run = RunInfo(run_id="fresh-run")
    for i in range(3):
        record = ArtifactRecord(
            lineage.MODEL, f"/fresh/{i}", _digest(1000 + i, "m"), "model", {"model_name": "fresh"}
        )
        store.record_execution(
            run=run, stage="training", inputs=[], outputs=[record], succeeded=True, properties={}
        )
    store, recording = recorded(seeded.uri)
    found = find_models(store, "fresh")
    assert [m.name for m in found] == [_digest(1000 + i, "m") for i in (2, 1, 0)]
    assert [m.id for m in find_models(store, "fresh", limit=1)] == [found[0].id]
    assert default_through(store, found[0]) == "approval"
    assert_small(recording, most=8)  # one run's events at most, never one per run


def test_default_through_a_deployed_experimental_model(seeded: Seeded) -> None:
    """A model some deployment records, whatever its stage says, must verify to deployment."""
    store = LineageStore.connect(seeded.uri)
    deployment = latest_deployment(store)
    [model] = [
        m
        for m in _scan(seeded.uri, lineage.MODEL)
        if m.name == properties_of(deployment)["model_sha256"]
    ]
    model.custom_properties["stage"].string_value = "experimental"
    store, recording = recorded(seeded.uri)
    assert default_through(store, model) == "deployment"
    assert_small(recording, most=1)


@pytest.mark.parametrize("name", [*NAMES, ""])
def test_production_model_of_a_name_and_use_case(seeded: Seeded, name: str) -> None:
    production = [
        m for m in _scan(seeded.uri, lineage.MODEL) if properties_of(m).get("stage") == "production"
    ]
    wanted = [m for m in production if not name or properties_of(m)["model_name"] == name]
    newest = max(wanted, key=lambda a: (a.last_update_time_since_epoch, a.id))
    store, recording = recorded(seeded.uri)
    assert production_model(store, name).id == newest.id  # type: ignore[union-attr]
    use_case = USE_CASES[name or str(properties_of(newest)["model_name"])]
    assert production_model(store, name, use_case).id == newest.id  # type: ignore[union-attr]
    assert production_model(store, name, "no-such-use-case") is None
    assert_small(recording)


def test_recent_runs_newest_first(seeded: Seeded) -> None:
    every = LineageStore.connect(seeded.uri).store.get_contexts_by_type(lineage.RUN_CONTEXT_TYPE)
    newest = [c.name for c in sorted(every, key=lambda c: c.id, reverse=True)]
    store, recording = recorded(seeded.uri)
    assert [c.name for c in queries.recent_runs(store, 5)] == newest[:5]
    assert_small(recording, most=5)
    assert [c.name for c in queries.recent_runs(store)] == newest
    assert len(newest) >= RUNS


def test_filter_literal_refuses_what_a_filter_cannot_match() -> None:
    assert queries.filter_literal("it's") == "'it\\'s'"
    for bad in ("a\\b", "a\nb", "a\x00b", 'a"b'):
        with pytest.raises(ValueError, match="cannot be matched"):
            queries.filter_literal(bad)
    with pytest.raises(ValueError, match="cannot be used"):
        queries.property_condition("a.b", "x")


def test_values_a_filter_cannot_express_are_compared_in_python(memory_store: LineageStore) -> None:
    names = ["back\\slash", "new\nline", 'a "quote"', "plain"]
    for i, name in enumerate(names):
        memory_store.record_execution(
            run=RunInfo(run_id=f"r{i}"),
            stage="training",
            inputs=[],
            outputs=[
                ArtifactRecord(lineage.MODEL, "/m", _digest(i, "x"), "model", {"model_name": name})
            ],
            succeeded=True,
            properties={},
        )
    for i, name in enumerate(names):
        found = queries.query_artifacts(memory_store, lineage.MODEL, {"model_name": name}, limit=1)
        assert [a.name for a in found] == [_digest(i, "x")]


def test_trace_reads_only_the_producers_of_a_shared_input(sqlite_uri: str) -> None:
    """Every run reads one gate policy: the trace of a deployment finds the policy's producers
    (none) without reading its INPUT event of every run."""
    from aiact.trace import render, trace_artifact

    store = LineageStore.connect(sqlite_uri)
    policy = ArtifactRecord(lineage.GATE_POLICY, "aiact-policy:x", "e" * 64, "gate_policy")
    for index in range(40):
        run = RunInfo(run_id=f"shared-{index}")
        model = ArtifactRecord(lineage.MODEL, f"/m/{index}", _digest(index, "sm"), "model")
        deployment = ArtifactRecord(
            lineage.DEPLOYMENT, f"/d/{index}", _digest(index, "sd"), "deployment"
        )
        store.record_execution(
            run=run, stage="training", inputs=[policy], outputs=[model],
            succeeded=True, properties={},
        )  # fmt: skip
        store.record_execution(
            run=run, stage="deployment", inputs=[model, policy], outputs=[deployment],
            succeeded=True, properties={},
        )  # fmt: skip
    store, recording = recorded(sqlite_uri)
    tree = trace_artifact(store, latest_deployment(store).id)
    lines = render(tree)
    assert "run=shared-39" in lines[1]
    assert [node.type_name for node in tree.find(lineage.GATE_POLICY)] == [lineage.GATE_POLICY] * 2
    assert "get_events_by_artifact_ids" not in [name for name, _ in recording.calls]
    assert_small(recording, most=8)  # one run's events at most, never one per run


def test_trace_reads_ahead_one_level_at_a_time(sqlite_uri: str) -> None:
    """A six-stage chain per run, every stage reading the one before it and a shared policy,
    30 runs: the trace of the latest deployment is the same tree as the walk without
    read-ahead, and asks for producers once per level of depth, not once per artefact."""
    from aiact.trace import Tracer, render

    class Unbuffered(Tracer):
        def prefetch(self, artifact_id: int) -> None:
            """The walk without read-ahead: three queries per artefact."""

    store = LineageStore.connect(sqlite_uri)
    policy = ArtifactRecord(lineage.GATE_POLICY, "aiact-policy:y", "f" * 64, "gate_policy")
    stages = ("data_preparation", "feature_engineering", "training", "evaluation", "deployment")
    types = (lineage.DATASET, lineage.FEATURE_SET, lineage.MODEL, lineage.EVALUATION_REPORT)
    for index in range(30):
        run = RunInfo(run_id=f"deep-{index}")
        raw = ArtifactRecord(lineage.RAW_DATASET, f"/raw/{index}", _digest(index, "raw"), "raw")
        previous = [raw]
        for stage, type_name in zip(stages, (*types, lineage.DEPLOYMENT), strict=True):
            output = ArtifactRecord(
                type_name, f"/{stage}/{index}", _digest(index, stage), stage.split("_")[0]
            )
            store.record_execution(
                run=run, stage=stage, inputs=[*previous, policy], outputs=[output],
                succeeded=True, properties={},
            )  # fmt: skip
            previous = [previous[-1], output] if stage != "data_preparation" else [output]
    deployment = latest_deployment(store).id
    fast_store, recording = recorded(sqlite_uri)
    fast = Tracer(fast_store).artifact(deployment)
    slow_store, slow_recording = recorded(sqlite_uri)
    slow = Unbuffered(slow_store).artifact(deployment)
    assert render(fast) == render(slow)
    assert "run=deep-29" in render(fast)[1]
    assert [n.type_name for n in fast.find(lineage.RAW_DATASET)] == [lineage.RAW_DATASET]
    # One producer query per level (deployment, evaluation, model, feature set, dataset, raw),
    # against one per distinct artefact (and three queries each) without read-ahead.
    producer_queries = [name for name, _ in recording.calls if name == "get_executions"]
    assert len(producer_queries) <= len(stages) + 1, recording.calls
    slow_producer_queries = [n for n, _ in slow_recording.calls if n == "get_executions"]
    assert len(slow_producer_queries) > len(producer_queries)
    assert len(recording.calls) < len(slow_recording.calls), recording.calls
    assert_small(recording, most=20)  # one run's events (17), not the store's (510)


def test_run_header_of_a_deployment_reads_its_run_by_name(seeded: Seeded) -> None:
    """A deployment names its run: the header reads that run by name (no scan of every
    attribution) and says the same as the run's attribution lists."""
    from aiact.trace import run_header

    store, recording = recorded(seeded.uri)
    deployment = latest_deployment(store)
    lines = run_header(store, deployment.id)
    full = LineageStore.connect(seeded.uri).store.get_contexts_by_artifact(deployment.id)
    assert [line.split(":")[0] for line in lines] == [f"pipeline run {c.name}" for c in full]
    assert lines[0].startswith(f"pipeline run run-{seeded.deployed[-1]:03d}:")
    assert "get_contexts_by_artifact" not in [name for name, _ in recording.calls]
    assert_small(recording, most=8)


def test_run_header_of_an_artefact_not_attributed_to_the_run_it_names(
    memory_store: LineageStore,
) -> None:
    """A `pipeline_run_id` the artefact is not attributed to is not believed: the header lists
    the contexts it is attributed to."""
    from aiact.trace import run_header

    for run_id in ("real", "claimed"):
        memory_store.record_execution(
            run=RunInfo(run_id=run_id), stage="training", inputs=[],
            outputs=[ArtifactRecord(lineage.MODEL, f"/{run_id}", _digest(1, run_id), "model")],
            succeeded=True, properties={},
        )  # fmt: skip
    forged = ArtifactRecord(
        lineage.DEPLOYMENT, "/d", _digest(2, "d"), "deployment", {"pipeline_run_id": "claimed"}
    )
    memory_store.record_execution(
        run=RunInfo(run_id="real"), stage="deployment", inputs=[], outputs=[forged],
        succeeded=True, properties={},
    )  # fmt: skip
    [line] = run_header(memory_store, latest_deployment(memory_store).id)
    assert line.startswith("pipeline run real:")
