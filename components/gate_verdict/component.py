"""KFP declaration of a gate's verdict task (thin wrapper over the executor)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components.images import CONTROL_IMAGE


@dsl.component(base_image=CONTROL_IMAGE, install_kfp_package=False)
def gate_verdict(
    gate: str,
    report: Input[Artifact],
    run_id: str,
    metadata_uri: str,
    verdict: Output[Artifact],
):
    """Halt the run when a gate's verdict is a breach. The gate's own task always completes
    with its evidence (so the KFP UI shows its metrics and report even when it fails); this
    task checks the report against the gate's recorded execution and fails on a breach. The
    next stage consumes `verdict`, so it cannot start before the gate passed.

    Args:
        gate: The gate judged: data_preparation, feature_engineering, evaluation or
            integration_testing (a constant of the compiled pipeline).
        report: The gate's report (validation, feature, evaluation or integration report).
        run_id: The pipeline run (KFP's job id) every record of this task is filed under.
        metadata_uri: The suite's ML Metadata store (empty: AIACT_METADATA_URI).
        verdict: The verdict (JSON: gate, verdict, breaches, report sha256), written even on a
            breach.
    """
    from aiact.fastexit import exit_fast_after_outputs, imports_with_gc_paused

    with imports_with_gc_paused():  # the stage's libraries load without GC passes
        from pathlib import Path

        from aiact.stage import run_info
        from components.gate_verdict.executor import run_gate_verdict

    exit_fast_after_outputs()  # skip the slow teardown once KFP wrote the outputs

    run_gate_verdict(
        run=run_info(run_id),
        metadata_uri=metadata_uri,
        gate=gate,
        report_path=Path(report.path),
        report_uri=report.uri,
        verdict_path=Path(verdict.path),
        verdict_uri=verdict.uri,
    )
