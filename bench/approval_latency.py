"""Approval latency: from a human's decision being written to the waiting approval stage resuming.

Runs the real approval stage executor (watching a ModelApproval with the official kubernetes
client, recording in a SQLite ML Metadata store) against the HTTP emulation of the Kubernetes API
used by the tests (kmock, tests/aiact/k8s_emulator.py, which applies manifests/cluster's CRD rules
and admission policies to every write; not a real API server), writes the one decision a
development request needs the way `aiact approve` does, and times until the stage has returned
(decision seen through the watch and recorded in MLMD). Goal: under 1 s.

    .venv/bin/python -m bench.approval_latency [--runs 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aiact.approval import APPROVED, Decision, backend_from_uri
from aiact.lineage import RunInfo
from components.approval.core import utc_now
from components.approval.executor import run_approval
from tests.aiact.k8s_emulator import EmulatedApiServer, emulated_api_server
from tests.chain import record_chain

NAMESPACE = "bench"


def _stage_args(workdir: Path, metadata_uri: str, run: RunInfo) -> dict[str, Any]:
    """The stage's arguments, its inputs recorded as outputs of a consistent chain of completed
    stages through the integration gate's verdict (tests/chain.py: real files, real digests),
    so that the stage's custody check of its upstream passes as in a real run."""
    paths = record_chain(metadata_uri, run, workdir / "upstream")
    model, verdict = paths["model"], paths["integration_testing_verdict"]
    return {
        "metadata_uri": metadata_uri,
        "backend_uri": f"kubernetes://{NAMESPACE}",
        "model_name": "credit-scoring",
        "model_dir": model,
        "model_uri": str(model),
        "evaluation_report_path": paths["evaluation_report"],
        "evaluation_report_uri": str(paths["evaluation_report"]),
        "integration_report_path": paths["integration_report"],
        "integration_report_uri": str(paths["integration_report"]),
        "requested_by": "carol",
        "approver_group": "aiact-approvers",
        "demo_approver": "",
        "timeout_s": 60.0,
        "approval_path": workdir / "approval.json",
        "approval_uri": str(workdir / "approval.json"),
        "integration_verdict_path": verdict,
        "integration_verdict_uri": str(verdict),
    }


def measure_once(server: EmulatedApiServer, workdir: Path, index: int) -> float:
    """Seconds from the decision PATCH being acknowledged to the stage returning."""
    run = RunInfo(run_id=f"bench-{index}", pipeline_name="bench", environment="development")
    args = _stage_args(workdir, f"sqlite://{workdir / 'mlmd.sqlite'}", run)
    os.environ["KUBECONFIG"] = str(server.kubeconfig(workdir / "pipeline", "pipeline", NAMESPACE))
    finished: dict[str, float] = {}

    def stage() -> None:
        run_approval(run=run, **args)
        finished["at"] = time.perf_counter()

    thread = threading.Thread(target=stage, daemon=True)
    before = set(server.objects(NAMESPACE))
    watches = sum(1 for action, _ in server.emulator.served if action == "watch")
    thread.start()
    deadline = time.monotonic() + 30
    while sum(1 for action, _ in server.emulator.served if action == "watch") == watches:
        if time.monotonic() > deadline:
            raise RuntimeError("the stage never started watching")
        time.sleep(0.01)
    os.environ["KUBECONFIG"] = str(server.kubeconfig(workdir / "approver", "alice", NAMESPACE))
    approver = backend_from_uri(f"kubernetes://{NAMESPACE}")
    (name,) = set(server.objects(NAMESPACE)) - before
    approver.decide(name, Decision(APPROVED, "alice", "bench", utc_now()))
    written = time.perf_counter()
    thread.join(30)
    if "at" not in finished:
        raise RuntimeError("the stage did not resume")
    return finished["at"] - written


def main() -> None:
    """Measure and print the latency."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/goals.py)")
    args = parser.parse_args()
    runs = args.runs
    samples = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        emulated_api_server() as server,
        open(os.devnull, "w") as quiet,
        contextlib.redirect_stdout(quiet),
        contextlib.redirect_stderr(quiet),  # the stage's structured logs
    ):
        for index in range(runs):
            workdir = Path(tmp) / str(index)
            workdir.mkdir()
            samples.append(measure_once(server, workdir, index))
    ms = sorted(s * 1000 for s in samples)
    print(
        f"approval latency, decision written -> approval stage resumed and recorded "
        f"({runs} runs, kmock HTTP emulation of the Kubernetes API on 127.0.0.1): "
        f"median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms, min {ms[0]:.1f} ms "
        f"(goal < 1000 ms: {'met' if ms[-1] < 1000 else 'MISSED'})"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"median_ms": statistics.median(ms), "max_ms": ms[-1], "runs": runs})
        )


if __name__ == "__main__":
    main()
