"""End to end: a run given the clean run's dataset as its drift baseline halts at the data gate
when its source has drifted (the baseline must itself have passed the gate, in the same store)."""

from __future__ import annotations

from aiact import lineage
from aiact.lineage import LineageStore
from pipelines.local_run import LocalRunConfig, LocalRunResult, run_local


def test_drifted_source_halts_at_the_data_gate(
    clean_run: tuple[LocalRunConfig, LocalRunResult],
) -> None:
    config, result = clean_run
    store = LineageStore.connect(config.metadata_uri)
    [baseline] = store.artifacts_of_run(result.run_id, lineage.DATASET)
    drifted = LocalRunConfig(
        workdir=config.workdir,
        demo_approver="dana",
        drift=1.0,
        overrides={"baseline_dataset_uri": baseline.uri},
    )
    halted = run_local(drifted)
    # The gate's task completes with its evidence; its verdict task halts the run.
    assert not halted.succeeded and "'gate-verdict'" in halted.error
    execution, verdict = store.executions_of_run(halted.run_id)
    assert (execution.properties["verdict"], verdict.state) == ("breached", "FAILED")
    breaches = str(execution.properties["gate_breaches"]).split("; ")
    assert breaches and all(name.startswith("drift[") for name in breaches), breaches
    inputs = {a.name for a in store.artifacts_of_run(halted.run_id, lineage.DATASET)}
    assert baseline.name in inputs
    sources = [a.uri for a in store.store.get_artifacts_by_type(lineage.RAW_DATASET)]
    assert len(set(sources)) == 2, "the drifted source must not overwrite the clean one"
