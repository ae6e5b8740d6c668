"""What a person sees while `aiact run-local` runs: one line per finished stage, a live
elapsed-time line for the running one, and the executors' own logs in a per-run file.

`kfp.local` runs every task as a subprocess of this process, inheriting its stdout and stderr,
so each task prints the whole policy, its arguments and its outputs (about 1,300 lines per run).
`captured_output` points file descriptors 1 and 2 at `WORKDIR/logs/<submission>.log` for the
duration of the pipeline, and `StageMonitor` (a background thread) polls the MLMD store for the
executions the run records and prints their lines to the terminal the run started from.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import TextIO

from ml_metadata import metadata_store as mlmd
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage
from aiact.custody import CHAIN, VERDICT_SUFFIX
from aiact.lineage import ExecutionRecord, LineageStore, PropertyValue, properties_of
from aiact.policy import BREACHED

POLL_S = 0.5
SPINNER = "|/-\\"
# Without a terminal, a running stage is reported this often instead of a live line.
HEARTBEAT_S = 30.0
# A request pending this long is shown (a demo decision settles it within milliseconds).
APPROVAL_NOTICE_S = 1.5
ERROR_CHARS = 400
DETAIL_INDENT = 6

# Properties of a stage's output artefacts, keyed by artefact type name.
Outputs = Mapping[str, Mapping[str, PropertyValue]]
Figures = Callable[[Outputs], list[str]]


def _num(value: PropertyValue | None, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _data(out: Outputs) -> list[str]:
    dataset = out.get(lineage.DATASET, {})
    if not dataset:
        return []
    return [
        f"rows {_num(dataset.get('rows'))}",
        f"columns {_num(dataset.get('columns'))}",
        f"dataset version {dataset.get('version', '?')}",
    ]


def _features(out: Outputs) -> list[str]:
    features = out.get(lineage.FEATURE_SET, {})
    if not features:
        return []
    split = "/".join(_num(features.get(f"rows_{part}")) for part in ("train", "validation", "test"))
    return [
        f"train/validation/test {split}",
        f"features {_num(features.get('features'))}",
        f"feature set {features.get('version', '?')}",
    ]


def _training(out: Outputs) -> list[str]:
    model = out.get(lineage.MODEL, {})
    if not model:
        return []
    return [
        f"model {model.get('model_name', '?')} {model.get('version', '?')}",
        f"device {model.get('device', '?')}",
        f"best epoch {_num(model.get('best_epoch'))}",
        f"val loss {_num(model.get('val_loss'))}",
    ]


def _evaluation(out: Outputs) -> list[str]:
    report = out.get(lineage.EVALUATION_REPORT, {})
    if not report:
        return []
    figures = [
        f"accuracy {_num(report.get('accuracy'))}",
        f"ROC AUC {_num(report.get('roc_auc'))}",
    ]
    if "expected_calibration_error" in report:
        figures.append(f"ECE {_num(report.get('expected_calibration_error'))}")
    return figures


def _registration(out: Outputs) -> list[str]:
    registration = out.get(lineage.MODEL_REGISTRATION, {})
    if not registration:
        return []
    return [
        f"{registration.get('model_name', '?')} {registration.get('model_version', '?')} "
        f"-> {registration.get('stage', '?')}",
        f"dataset {registration.get('dataset_version', '?')}",
    ]


def _integration(out: Outputs) -> list[str]:
    report = out.get(lineage.INTEGRATION_TEST_REPORT, {})
    if not report:
        return []
    verdict = "passed" if report.get("passed") else "failed"
    return [f"served-model tests {verdict}", f"report {report.get('version', '?')}"]


def _approval(out: Outputs) -> list[str]:
    approval = out.get(lineage.APPROVAL, {})
    if not approval:
        return []
    decision = approval.get("decision") or approval.get("outcome") or "?"
    who = approval.get("approver")
    figures = [f"{decision} by {who}" if who else str(decision)]
    if approval.get("kind"):
        figures.append(f"kind {approval['kind']}")
    figures.append(f"{_num(approval.get('approvals'))}/{_num(approval.get('required_approvals'))}")
    return figures


def _deployment(out: Outputs) -> list[str]:
    deployment = out.get(lineage.DEPLOYMENT, {})
    if not deployment:
        return []
    return [
        f"{deployment.get('strategy', '?')} {_num(deployment.get('traffic_percent'))}% "
        f"in {deployment.get('environment', '?')}",
        f"ledger sequence {_num(deployment.get('ledger_sequence'))}",
    ]


FIGURES: dict[str, Figures] = {
    "data_preparation": _data,
    "feature_engineering": _features,
    "training": _training,
    "evaluation": _evaluation,
    "registration": _registration,
    "integration_testing": _integration,
    "approval": _approval,
    "deployment": _deployment,
}


def _one_line(text: str, limit: int = ERROR_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def stage_line(execution: ExecutionRecord, outputs: Outputs) -> str:
    """The line of one finished stage: position, stage, verdict, duration, key figures and,
    when it failed, its error; a halting gate's line names its breached checks and a second,
    indented line gives the gate's error (every breach with its value and limit).

    Args:
        execution: The stage execution read back from MLMD.
        outputs: The properties of its output artefacts, keyed by artefact type name.

    Returns:
        The line (two for a halting gate), without a trailing newline; a gate's verdict task
        adds no line of its own when it passed, and only the indented halt line when it
        failed (its gate's line already shows the verdict and the breached checks).
    """
    stage = execution.stage
    if stage.endswith(VERDICT_SUFFIX):
        if execution.state == "COMPLETE":
            return ""
        error = _one_line(str(execution.properties.get("error", "")))
        return f"{' ' * DETAIL_INDENT}halted by the gate's verdict task: {error or 'no error'}"
    position = f"[{CHAIN.index(stage) + 1}/{len(CHAIN)}]" if stage in CHAIN else "[?/?]"
    duration = execution.properties.get("duration_s")
    took = f"{duration:6.1f}s" if isinstance(duration, int | float) else "      ?"
    parts = FIGURES.get(stage, lambda _: [])(outputs)
    detail = ""
    state = execution.state
    if execution.properties.get("verdict") == BREACHED:
        state = "BREACHED"
        breaches = str(execution.properties.get("gate_breaches", ""))
        parts.append(f"breaches: {', '.join(b.strip() for b in breaches.split(';'))}")
    elif execution.state != "COMPLETE":
        error = _one_line(str(execution.properties.get("error", "")))
        breaches = str(execution.properties.get("gate_breaches", ""))
        if breaches:
            # The breached checks' names on the stage line; their values on the next one.
            parts.append(f"breaches: {', '.join(b.strip() for b in breaches.split(';'))}")
            detail = f"\n{' ' * DETAIL_INDENT}{error}" if error else ""
        else:
            parts.append(f"error: {error}" if error else "no error recorded")
    line = f"{position} {stage:<20} {state:<9} {took}  {', '.join(parts)}".rstrip()
    return line + detail


def outputs_of(store: LineageStore, execution_id: int) -> dict[str, dict[str, PropertyValue]]:
    """The properties of an execution's output artefacts, keyed by artefact type name."""
    events = store.store.get_events_by_execution_ids([execution_id])
    ids = [e.artifact_id for e in events if e.type == mlmd_pb.Event.OUTPUT]
    if not ids:
        return {}
    types = {t.id: t.name for t in store.store.get_artifact_types()}
    return {
        types.get(a.type_id, str(a.type_id)): properties_of(a)
        for a in store.store.get_artifacts_by_id(ids)
    }


def find_run(store: LineageStore, submission_id: str) -> str:
    """The run id the pipeline recorded for this submission; '' while it has none yet."""
    contexts = store.store.get_contexts(
        list_options=mlmd.ListOptions(
            filter_query=f"custom_properties.submission_id.string_value = '{submission_id}'"
        )
    )
    return str(contexts[0].name) if contexts else ""


class StageMonitor:
    """Polls the MLMD store for one submission's stage executions and prints a line for each
    as it is recorded; on a terminal it also keeps a live elapsed-time line for the running
    stage, elsewhere it prints a heartbeat line every `HEARTBEAT_S` for a long stage.

    Args:
        metadata_uri: The store the run records into.
        submission_id: The id the run's context carries (`submission_id` property).
        out: Where the lines go (the terminal, not the redirected stdout).
        approvals_uri: The approval backend, to show a pending request with its commands.
        interactive: Keep a live line rewritten with `\\r`; default: `out.isatty()`.
        poll_s: Seconds between polls.
    """

    def __init__(
        self,
        metadata_uri: str,
        submission_id: str,
        out: TextIO,
        *,
        approvals_uri: str = "",
        interactive: bool | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.metadata_uri = metadata_uri
        self.submission_id = submission_id
        self.approvals_uri = approvals_uri
        self.out = out
        self.interactive = out.isatty() if interactive is None else interactive
        self.poll_s = poll_s
        self.run_id = ""
        self.lines: list[str] = []
        self._seen: set[int] = set()
        self._stages_done = 0  # executions of chain stages seen (verdict tasks not counted)
        self._failed = False
        self._noticed: set[str] = set()
        self._pending_since: dict[str, float] = {}
        self._problems: set[str] = set()
        self._store: LineageStore | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aiact-stage-monitor", daemon=True)
        self._started = time.monotonic()
        self._stage_started = self._started
        self._last_heartbeat = self._started
        self._live = False
        self._tick = 0
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StageMonitor:
        """Start polling in a background thread."""
        self._started = self._stage_started = self._last_heartbeat = time.monotonic()
        self._thread.start()
        return self

    def stop(self, error: str = "") -> None:
        """Stop polling after one last poll; when the pipeline failed without its stage
        recording an execution (a crash, not a gate), say so on one line.

        Args:
            error: The pipeline's error, '' when it succeeded.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._safe_poll()
        if error and not self._failed:
            self._emit(
                f"[{self._position()}] {self._running_stage():<20} {'FAILED':<9}         "
                f"error: {_one_line(error)} (no execution recorded; see the log)"
            )
        self._clear_live()

    # -- polling -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._safe_poll()
            self._show_progress()

    def _safe_poll(self) -> None:
        try:
            self.poll()
        except Exception as exc:  # a display must never stop the run it displays
            problem = f"aiact run-local: progress display: {exc!r}"
            if problem not in self._problems:  # once each, to stderr (the log when captured)
                self._problems.add(problem)
                print(problem, file=sys.stderr)

    def poll(self) -> list[str]:
        """Print (and return) the lines of executions recorded since the last poll."""
        with self._lock:
            if self._store is None:
                self._store = LineageStore.connect(self.metadata_uri)
            if not self.run_id:
                self.run_id = find_run(self._store, self.submission_id)
                if not self.run_id:
                    return []
            new = [e for e in self._store.executions_of_run(self.run_id) if e.id not in self._seen]
            lines = []
            for execution in new:
                self._seen.add(execution.id)
                if execution.stage in CHAIN:
                    self._stages_done += 1
                self._failed = self._failed or execution.state != "COMPLETE"
                line = stage_line(execution, outputs_of(self._store, execution.id))
                if line:
                    lines.append(line)
            if new:
                self._stage_started = self._last_heartbeat = time.monotonic()
            for line in lines:
                self._emit(line)
            self._notice_approval()
            return lines

    def _notice_approval(self) -> None:
        if not self.approvals_uri or not self.run_id or self._running_stage() != "approval":
            return
        from aiact.approval import backend_from_uri

        now = time.monotonic()
        for request in backend_from_uri(self.approvals_uri).pending():
            if request.pipeline_run_id != self.run_id or request.name in self._noticed:
                continue
            first = self._pending_since.setdefault(request.name, now)
            if now - first < APPROVAL_NOTICE_S:
                continue
            self._noticed.add(request.name)
            where = f"{request.name} --approvals {self.approvals_uri} --reason ..."
            self._emit(
                f"      approval {request.name} awaits {request.required_approvals} distinct "
                f"human approver(s) (expires {request.expires_at}); from another terminal:\n"
                f"        aiact approvals --approvals {self.approvals_uri}\n"
                f"        aiact approve {where}\n"
                f"        aiact reject  {where}"
            )

    # -- display -----------------------------------------------------------------------------

    def _running_stage(self) -> str:
        done = self._stages_done
        return CHAIN[done] if done < len(CHAIN) else "pipeline"

    def _position(self) -> str:
        return f"{min(self._stages_done + 1, len(CHAIN))}/{len(CHAIN)}"

    def _emit(self, line: str) -> None:
        self._clear_live()
        self.lines.append(line)
        self.out.write(line + "\n")
        self.out.flush()

    def _clear_live(self) -> None:
        if self._live:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._live = False

    def _show_progress(self) -> None:
        if self._failed or self._stages_done >= len(CHAIN):
            return
        now = time.monotonic()
        stage, elapsed = self._running_stage(), now - self._stage_started
        if self.interactive:
            self._tick += 1
            spinner = SPINNER[self._tick % len(SPINNER)]
            self.out.write(
                f"\r\x1b[K[{self._position()}] {stage:<20} {spinner} running {elapsed:5.0f}s "
                f"(total {now - self._started:.0f}s)"
            )
            self.out.flush()
            self._live = True
        elif now - self._last_heartbeat >= HEARTBEAT_S:
            self._last_heartbeat = now
            self._emit(f"[{self._position()}] {stage:<20} running for {elapsed:.0f}s")


@contextmanager
def terminal() -> Iterator[TextIO]:
    """A text stream on a duplicate of the current stdout file descriptor, which keeps
    writing to the terminal while `captured_output` redirects descriptor 1; `sys.stdout`
    itself when it has no descriptor (a test's capture).

    Yields:
        The stream, closed on exit when it is a duplicate.
    """
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        yield sys.stdout
        return
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    with open(os.dup(fd), "w", encoding=encoding, errors="replace", buffering=1) as out:
        yield out


@contextmanager
def captured_output(log_path: Path) -> Iterator[Path]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, hence every task
    subprocess `kfp.local` starts) to `log_path`, appending; restore them on exit.

    Args:
        log_path: The log file; its folder is created.

    Yields:
        `log_path`.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    streams = (sys.stdout, sys.stderr)
    for stream in streams:
        stream.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for fd in (1, 2):
            os.dup2(log, fd)
        yield log_path
    finally:
        for stream in streams:
            with suppress(OSError, ValueError, io.UnsupportedOperation):
                stream.flush()
        for fd, original in zip((1, 2), saved, strict=True):
            os.dup2(original, fd)
            os.close(original)
        os.close(log)


@contextmanager
def reporting(
    *,
    log_path: Path | None,
    progress: bool,
    metadata_uri: str,
    submission_id: str,
    approvals_uri: str = "",
) -> Iterator[StageMonitor | None]:
    """Wrap a pipeline run: its logs go to `log_path` (None: they stay on stdout/stderr) and,
    with `progress`, a `StageMonitor` prints one line per stage to the terminal. Call
    `monitor.stop(error)` inside the block to report a failure; leaving the block stops it.

    Args:
        log_path: Where the executors' output goes; None keeps it on stdout/stderr.
        progress: Print one live line per stage.
        metadata_uri: The run's MLMD store.
        submission_id: The run's submission id.
        approvals_uri: The approval backend, to show a pending request.

    Yields:
        The monitor, or None without `progress`.
    """
    with ExitStack() as stack:
        monitor: StageMonitor | None = None
        if progress:
            out = stack.enter_context(terminal())
            monitor = StageMonitor(
                metadata_uri,
                submission_id,
                out,
                approvals_uri=approvals_uri,
                # Streamed logs would break a line rewritten in place.
                interactive=None if log_path is not None else False,
            )
            if log_path is not None:
                out.write(f"logs: {log_path} (--verbose streams them)\n")
                out.flush()
        if log_path is not None:
            stack.enter_context(captured_output(log_path))
        if monitor is not None:
            stack.callback(monitor.stop)
            monitor.start()
        yield monitor
