"""Benchmark: the audit commands users run (`aiact trace`, `aiact trace --verify`, `aiact runs`,
`aiact verify-model NAME`) and their in-process queries, at 100, 1,000 and 10,000 runs, on
SQLite and on ML Metadata's MySQL backend (a MariaDB server started here as the tests start
it). Prints figures and ratios; not part of the test suite.

    .venv/bin/python bench/audit_bench.py [--runs 100 1000 10000] [--backends sqlite mysql]
        [--reps 50] [--process-reps 5] [--real-run DIR] [--workdir DIR]

Each store holds N-1 realistic synthetic runs (bench/dashboard_bench.py's seeder: every stage's
execution with the stage runtime's properties, failed gates, pending approvals, deployments)
one REAL run of `aiact run-local`, copied node by node from its own store into the empty store
first (so its executions keep the ids its ledger entry's custody hash pins; its files stay where
the run wrote them), so that `trace --run ID --verify` and `verify-model NAME` (the real model is
the only production model of its name) verify a genuine chain, re-hashing its files. `aiact trace`
without --run traces the newest (synthetic) deployment.

In-process figures (p50 / p95 of `--reps`, the variants interleaved):
- trace: what `aiact trace` does: the latest deployment, its run header, the lineage walk;
  beside it the same as before (every deployment loaded for the latest; each artefact's
  producers found among all its events);
- verify-model lookup: `find_models(NAME)` + `default_through`, beside the former scan;
- production model: the production model of a name and use case (evaluation's reference),
  beside the former scan;
- runs: the 20 newest runs (`queries.recent_runs`), beside every run (`LineageStore.runs`, what
  `aiact runs` prints: its output grows with the store by definition);
- verify-model: the whole verification of the real model (re-hashing its files), median.
Whole processes (median of `--process-reps`, interleaved): the four commands (`aiact runs`
prints every run, so its output, and time, grow with the store by definition).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median, quantiles
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage, queries, runsummary
from aiact.custody import default_through, find_models, verify_model
from aiact.lineage import LineageStore, properties_of
from aiact.trace import Tracer, latest_deployment, run_header, trace_artifact
from components.evaluation.reference import production_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard_bench
from dashboard_bench import Seeder

dashboard_value = dashboard_bench._value

ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "credit-scoring"
USE_CASE = "credit"


# -- the former implementations, for the side-by-side ratios -------------------------------------


def scan_latest_deployment(store: LineageStore) -> mlmd_pb.Artifact:
    """Before: every deployment loaded, the maximum taken in Python."""
    return max(store.store.get_artifacts_by_type(lineage.DEPLOYMENT), key=lambda a: a.id)


class ScanTracer(Tracer):
    """Before: an artefact's producers found among ALL its events (a shared input, such as the
    gate policy or the use case, has one INPUT event per run)."""

    def prefetch(self, artifact_id: int) -> None:
        """Before: no read-ahead, three queries per artefact of the walk."""

    def producers(self, artifact_id: int) -> list[Any]:
        events = self.mlmd.get_events_by_artifact_ids([artifact_id])
        ids = sorted({e.execution_id for e in events if e.type == mlmd_pb.Event.OUTPUT})
        return list(self.mlmd.get_executions_by_id(ids))


def scan_trace_query(store: LineageStore) -> None:
    """What `aiact trace` computed before."""
    deployment = scan_latest_deployment(store).id
    run_header(store, deployment)
    ScanTracer(store).artifact(deployment)


def scan_find_models(store: LineageStore, name: str) -> list[mlmd_pb.Artifact]:
    """Before: every model loaded and filtered in Python."""
    models = store.store.get_artifacts_by_type(lineage.MODEL)
    named = [m for m in models if properties_of(m).get("model_name") == name]
    production = [m for m in named if properties_of(m).get("stage") == "production"]
    return sorted(production or named, key=lambda m: m.id, reverse=True)


def scan_default_through(store: LineageStore, model: mlmd_pb.Artifact) -> str:
    if properties_of(model).get("stage") in ("production", "archived"):
        return "deployment"
    for deployment in store.store.get_artifacts_by_type(lineage.DEPLOYMENT):
        if properties_of(deployment).get("model_sha256") == model.name:
            return "deployment"
    return "approval"


def scan_production_model(store: LineageStore, name: str) -> mlmd_pb.Artifact | None:
    """Before: every model loaded (the use-case check after it is the same in both)."""
    models = [
        a
        for a in store.store.get_artifacts_by_type(lineage.MODEL)
        if properties_of(a).get("stage") == "production"
        and properties_of(a).get("model_name") == name
    ]
    return max(models, key=lambda a: (a.last_update_time_since_epoch, a.id), default=None)


# -- stores ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def mariadb(root: Path) -> Iterator[str]:
    """A MariaDB server on 127.0.0.1 (as tests/aiact/test_lineage_mysql.py starts it); yields
    `mysql://root@127.0.0.1:PORT`."""
    server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    datadir, port = root / "data", _free_port()
    subprocess.run(
        [
            "mariadb-install-db",
            f"--datadir={datadir}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )
    process = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={root / 'mysqld.sock'}",
            "--user=root",
            f"--pid-file={root / 'mysqld.pid'}",
            "--skip-grant-tables",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("mariadbd did not start: run hack/setup-services.sh") from None
            time.sleep(0.2)
    try:
        yield f"mysql://root@127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=60)


INT32_MAX = 2**31 - 1


def fit_mysql(node: Any) -> None:
    """MLMD 1.17's MySQL schema keeps `int_value` in a 32-bit INT column, so a millisecond
    timestamp (the stage runtime's `started_at_ms`) is refused there ("Out of range value for
    column 'int_value'"): such values are written as doubles in this benchmark (the copied
    real run on both backends, the synthetic runs on MySQL)."""
    for value in node.custom_properties.values():
        if value.WhichOneof("value") == "int_value" and abs(value.int_value) > INT32_MAX:
            value.double_value = float(value.int_value)


def _mysql_values(target: Any, value: Any) -> None:
    dashboard_value(target, value)
    if target.WhichOneof("value") == "int_value" and abs(target.int_value) > INT32_MAX:
        target.double_value = float(target.int_value)


def copy_run(source: LineageStore, target: LineageStore, run_id: str) -> None:
    """Copy one run (its context, executions, events, artefacts, attributions, associations)
    from `source` into `target`, node by node in id order, then keep its run summary."""
    src, dst = source.store, target.store
    context = source.run_context(run_id)
    executions = sorted(src.get_executions_by_context(context.id), key=lambda e: e.id)
    events = src.get_events_by_execution_ids([e.id for e in executions])
    artifact_ids = sorted({e.artifact_id for e in events} | {
        a.id for a in src.get_artifacts_by_context(context.id)
    })  # fmt: skip
    artifacts = src.get_artifacts_by_id(artifact_ids)
    a_types = {t.id: t.name for t in src.get_artifact_types()}
    e_types = {t.id: t.name for t in src.get_execution_types()}
    c_types = {t.id: t.name for t in src.get_context_types()}

    def type_id(kind: str, name: str) -> int:
        return target._type_id(kind, name)

    new_artifacts: dict[int, int] = {}
    for artifact in sorted(artifacts, key=lambda a: a.id):
        name = a_types[artifact.type_id]
        existing = dst.get_artifact_by_type_and_name(name, artifact.name)
        if existing is not None:
            new_artifacts[artifact.id] = existing.id
            continue
        copy = mlmd_pb.Artifact()
        copy.CopyFrom(artifact)
        copy.ClearField("id")
        copy.ClearField("type")
        copy.ClearField("create_time_since_epoch")
        copy.ClearField("last_update_time_since_epoch")
        copy.type_id = type_id("artifact", name)
        fit_mysql(copy)
        [new_artifacts[artifact.id]] = dst.put_artifacts([copy])
    new_executions: dict[int, int] = {}
    for execution in executions:
        copy = mlmd_pb.Execution()
        copy.CopyFrom(execution)
        copy.ClearField("id")
        copy.ClearField("type")
        copy.ClearField("create_time_since_epoch")
        copy.ClearField("last_update_time_since_epoch")
        copy.type_id = type_id("execution", e_types[execution.type_id])
        fit_mysql(copy)
        [new_executions[execution.id]] = dst.put_executions([copy])
    copied_events = []
    for event in events:
        copy = mlmd_pb.Event()
        copy.CopyFrom(event)
        copy.execution_id = new_executions[event.execution_id]
        copy.artifact_id = new_artifacts[event.artifact_id]
        copied_events.append(copy)
    dst.put_events(copied_events)
    run_context = mlmd_pb.Context()
    run_context.CopyFrom(context)
    for field in ("id", "type", "create_time_since_epoch", "last_update_time_since_epoch"):
        run_context.ClearField(field)
    run_context.type_id = type_id("context", c_types[context.type_id])
    del run_context.custom_properties[runsummary.SUMMARY_PROPERTY]
    [context_id] = dst.put_contexts([run_context])
    dst.put_attributions_and_associations(
        [
            mlmd_pb.Attribution(artifact_id=i, context_id=context_id)
            for i in sorted(set(new_artifacts.values()))
        ],
        [
            mlmd_pb.Association(execution_id=i, context_id=context_id)
            for i in new_executions.values()
        ],
    )
    if not runsummary.update_run_summary(target, run_id):
        raise SystemExit("the copied run's summary could not be kept")


# -- measuring ------------------------------------------------------------------------------------


def _ms(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return (time.perf_counter() - began) * 1000


def p50_p95(values: list[float]) -> tuple[float, float]:
    cuts = quantiles(values, n=20, method="inclusive")
    return median(values), cuts[18]


def trace_query(store: LineageStore, latest: Callable[[LineageStore], Any]) -> None:
    """What `aiact trace` computes before printing."""
    deployment = latest(store).id
    run_header(store, deployment)
    trace_artifact(store, deployment)


def interleaved(
    variants: dict[str, Callable[[], object]], reps: int, warm: int = 2
) -> dict[str, list[float]]:
    """Milliseconds of each variant, `reps` times, alternating between them."""
    for _ in range(warm):
        for call in variants.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, call in variants.items():
            times[name].append(_ms(call))
    return times


def measure(uri: str, real_id: str, reps: int, process_reps: int) -> dict[str, Any]:
    store = LineageStore.connect(uri)
    model = find_models(store, MODEL_NAME)[0]
    if scan_latest_deployment(store).id != latest_deployment(store).id:
        raise SystemExit("the indexed latest deployment differs from the scan's")
    if [m.id for m in scan_find_models(store, MODEL_NAME)] != [m.id for m in [model]]:
        raise SystemExit("find_models differs from the scan")
    found = production_model(store, MODEL_NAME, USE_CASE)
    if found is None or found.id != model.id:
        raise SystemExit("the production model lookup did not find the real model")

    def lookup() -> None:
        for candidate in find_models(store, MODEL_NAME):
            default_through(store, candidate)

    def scan_lookup() -> None:
        for candidate in scan_find_models(store, MODEL_NAME):
            scan_default_through(store, candidate)

    inproc = interleaved(
        {
            "trace": lambda: trace_query(store, latest_deployment),
            "trace_scan": lambda: scan_trace_query(store),
            "lookup": lookup,
            "lookup_scan": scan_lookup,
            "production": lambda: production_model(store, MODEL_NAME, USE_CASE),
            "production_scan": lambda: scan_production_model(store, MODEL_NAME),
            "runs_20": lambda: queries.recent_runs(store, 20),
            "runs_all": store.runs,
        },
        reps,
    )
    verify = [_ms(lambda: verify_model(store, model.name, through="deployment")) for _ in range(5)]
    aiact = str(Path(sys.executable).with_name("aiact"))
    commands = {
        "aiact trace": [aiact, "trace", "--metadata-uri", uri],
        "aiact trace --run --verify": [
            *(aiact, "trace", "--run", real_id, "--verify", "--metadata-uri", uri)
        ],
        "aiact runs": [aiact, "runs", "--metadata-uri", uri],
        "aiact verify-model": [aiact, "verify-model", MODEL_NAME, "--metadata-uri", uri],
    }
    process: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(process_reps):
        for name, command in commands.items():
            began = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            process[name].append(time.perf_counter() - began)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed: {done.stderr}")
    return {
        "inproc": {k: p50_p95(v) for k, v in inproc.items()},
        "verify_ms": median(verify),
        "process": {k: median(v) for k, v in process.items()},
    }


def real_run(workdir: Path) -> Path:
    """A real `aiact run-local` (deployed) in `workdir`, unless one is there already."""
    if not (workdir / "mlmd.sqlite").exists():
        # On a private copy of the bundled use case: the working tree may change meanwhile.
        use_case = workdir.parent / "usecase-credit"
        if not use_case.exists():
            shutil.copytree(ROOT / "aiact" / "usecases" / "credit", use_case)
        aiact = str(Path(sys.executable).with_name("aiact"))
        command = [aiact, "run-local", "--demo-approver", "Bench Auditor", "--workdir"]
        subprocess.run(
            [*command, str(workdir), "--use-case", str(use_case)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return workdir


def build_store(uri: str, runs: int, real: LineageStore, real_id: str) -> float:
    """The real run first (into the empty store its executions get the ids they had, which the
    ledger entry's custody hash pins), then N-1 synthetic runs."""
    began = time.perf_counter()
    copy_run(real, LineageStore.connect(uri), real_id)
    Seeder(LineageStore.connect(uri)).seed(runs - 1)
    return time.perf_counter() - began


def report(backend: str, results: dict[int, dict[str, Any]], reps: int) -> None:
    print(f"\n== {backend}: in-process queries, ms p50/p95 of {reps} (interleaved) ==")
    names = (
        ("trace", "trace_scan", "aiact trace query"),
        ("lookup", "lookup_scan", "verify-model lookup"),
        ("production", "production_scan", "production model"),
        ("runs_20", "runs_all", "runs (20 newest | all)"),
    )
    print(f"{'runs':>7} " + " ".join(f"{label:>34}" for _, _, label in names) + " verify ms")
    for size, result in sorted(results.items()):
        cells = []
        for new, old, _ in names:
            (n50, n95), (o50, o95) = result["inproc"][new], result["inproc"][old]
            cells.append(f"{n50:6.1f}/{n95:6.1f} (before {o50:6.1f}/{o95:6.1f})")
        print(f"{size:>7} " + " ".join(f"{c:>34}" for c in cells) + f" {result['verify_ms']:9.0f}")
    print(f"== {backend}: whole processes, s (median) ==")
    commands = list(next(iter(results.values()))["process"])
    print(f"{'runs':>7} " + " ".join(f"{c:>22}" for c in commands))
    for size, result in sorted(results.items()):
        print(f"{size:>7} " + " ".join(f"{result['process'][c]:>22.2f}" for c in commands))
    small, large = min(results), max(results)
    if small != large:
        first, last = results[small], results[large]
        trace95 = last["inproc"]["trace"][1] / first["inproc"]["trace"][1]
        before95 = last["inproc"]["trace_scan"][1] / first["inproc"]["trace_scan"][1]
        print(
            f"ratio {large}/{small} runs: trace query p95 x{trace95:.2f} (before x{before95:.1f}); "
            f"p95 at {large}: {last['inproc']['trace'][1]:.1f} ms (goal < 20 ms); "
            + ", ".join(f"{c} x{last['process'][c] / first['process'][c]:.2f}" for c in commands)
        )
        for new, old, label in names[:3]:
            faster = last["inproc"][old][1] / last["inproc"][new][1]
            print(f"  {label} at {large} runs: {faster:.1f}x faster (p95) than before")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "mysql"])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--process-reps", type=int, default=5)
    parser.add_argument("--real-run", type=Path, help="a run-local work directory to reuse")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/goals.py)")
    args = parser.parse_args()
    figures: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        real_dir = real_run(args.real_run or root / "real")
        real = LineageStore.connect(f"sqlite://{real_dir.resolve() / 'mlmd.sqlite'}")
        real_id = properties_of(latest_deployment(real))["pipeline_run_id"]
        print(f"real run {real_id} from {real_dir}; machine shared with other work")
        for backend in args.backends:
            results: dict[int, dict[str, Any]] = {}
            server = mariadb(root / "mariadb") if backend == "mysql" else None
            base = server.__enter__() if server is not None else ""
            try:
                for size in sorted(args.runs):
                    if backend == "mysql":
                        uri = f"{base}/audit_{size}"
                        dashboard_bench._value = _mysql_values
                    else:
                        dashboard_bench._value = dashboard_value
                        uri = f"sqlite://{root / f'audit-{size}.sqlite'}"
                        Path(uri.removeprefix("sqlite://")).unlink(missing_ok=True)
                    seeded = build_store(uri, size, real, str(real_id))
                    print(f"{backend}: {size} runs seeded in {seeded:.0f} s", flush=True)
                    results[size] = measure(uri, str(real_id), args.reps, args.process_reps)
            finally:
                if server is not None:
                    server.__exit__(None, None, None)
            report(backend, results, args.reps)
            figures[backend] = {
                size: {
                    "trace_p50_ms": result["inproc"]["trace"][0],
                    "trace_p95_ms": result["inproc"]["trace"][1],
                    "trace_process_s": result["process"]["aiact trace"],
                }
                for size, result in results.items()
            }
        if args.json:
            args.json.write_text(json.dumps({"reps": args.reps, **figures}))


if __name__ == "__main__":
    main()
