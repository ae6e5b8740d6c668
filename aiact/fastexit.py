"""Start and end a KFP task's process cheaply: its stage's libraries load with the cyclic
garbage collector paused (`imports_with_gc_paused`), and the interpreter's teardown is skipped
once the task's outputs are written (`exit_fast_after_outputs`).

Start-up. Importing a stage's libraries (torch, scikit-learn, pandas, ML Metadata) creates
millions of objects, and the cyclic collector walks them again and again while they load (~0.5 s
of CPU in the evaluation stage's process, ~10-15% of its imports), though modules live as long
as the process: what the imports leave as cyclic garbage is a few thousand objects (under 1 MiB,
measured after TFDV's and the evaluation stage's imports). `imports_with_gc_paused()`, a context
manager around a component's imports, pauses the collector, then moves what exists into the
permanent generation (`gc.freeze()`, the pattern CPython documents for long-lived objects) so
that later collections during the stage's work skip it too (reference counting still frees a
frozen object), and turns the collector back on (it stays off if it was off). Only in a KFP task
process, as the fast exit below: in any other process (a test, the one-process benchmark, a
notebook) it changes nothing, since freezing there would keep whatever that process held at the
time.

End. A stage process that imported tensorflow or torch spends about a second after its work is
done tearing the interpreter down (freeing modules, running library finalizers); over the stages
of a local run that is ~4 s of nothing. `exit_fast_after_outputs()`, called first in a
component's body, arms an `atexit` hook that ends the process with `os._exit` instead, keeping
what matters:

- it acts only at interpreter exit, i.e. after `kfp.dsl.executor_main` returned, so after KFP's
  executor wrote the task's outputs (`executor_output.json`, the output artefacts), and after every
  non-daemon thread ended (Python joins them before it runs `atexit` hooks); every MLMD write of
  the stage was committed when its call returned (SQLite and MySQL alike), and the store is
  never written at exit, so nothing durable is skipped;
- the exit status is kept: an uncaught exception (a failed gate's verdict task, a refused stage)
  exits 1, as Python would, after its traceback was printed (recorded by a `sys.excepthook`
  wrapper); a normal end exits 0, but only when the executor output file was really written by
  this process (it did not exist before, or its modification time changed). Anything else (a
  `SystemExit` with its own code, a KeyboardInterrupt, a task that wrote no executor output)
  leaves the normal exit untouched;
- stdout, stderr and the `logging` handlers are flushed first.

What is skipped: other `atexit` hooks registered before this one (they run after it), e.g.
`weakref.finalize` clean-ups of temporary directories a stage did not close itself. Outside a KFP
executor (no `_KFP_RUNTIME=true`, no `--executor_input` with an output file; e.g. a component
function called from a test) it does nothing. `AIACT_NO_FAST_EXIT=1` turns it off.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

DISABLE_ENV = "AIACT_NO_FAST_EXIT"


@dataclass
class _Armed:
    output: Path
    before_ns: int | None  # mtime of the output file when armed (None: it did not exist)
    status: int | None = 0  # 0: no uncaught exception so far; 1: one; None: leave exit alone


_armed: _Armed | None = None


def executor_output_file(argv: list[str]) -> Path | None:
    """The `outputs.outputFile` of the `--executor_input` JSON KFP passes its executor."""
    text = None
    for index, arg in enumerate(argv):
        if arg == "--executor_input" and index + 1 < len(argv):
            text = argv[index + 1]
        elif arg.startswith("--executor_input="):
            text = arg.split("=", 1)[1]
    if text is None:
        return None
    try:
        path = json.loads(text)["outputs"]["outputFile"]
    except (ValueError, KeyError, TypeError):
        return None
    return Path(path) if isinstance(path, str) and path else None


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def task_output_file() -> Path | None:
    """The executor output file when this process is a KFP task's (`_KFP_RUNTIME=true` and an
    `--executor_input` naming its output file), else None."""
    if os.environ.get("_KFP_RUNTIME") != "true":
        return None
    return executor_output_file(sys.argv)


@contextlib.contextmanager
def imports_with_gc_paused() -> Iterator[bool]:
    """In a KFP task process, run the block (a component's imports) with the cyclic garbage
    collector paused, then freeze what exists (`gc.freeze()`) and resume the collector as it
    was; yields whether it acts. Elsewhere it does nothing. If the block raises, the collector
    is resumed and nothing is frozen."""
    if task_output_file() is None:
        yield False
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield True
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def exit_fast_after_outputs() -> bool:
    """Arm the fast exit for this KFP task process (see the module docstring); returns whether
    it is armed. Calling it again changes nothing."""
    global _armed
    if _armed is not None:
        return True
    if os.environ.get(DISABLE_ENV) == "1":
        return False
    output = task_output_file()
    if output is None:
        return False
    armed = _Armed(output=output, before_ns=_mtime_ns(output))
    previous = sys.excepthook

    def record(
        kind: type[BaseException], value: BaseException, traceback: TracebackType | None
    ) -> None:
        armed.status = None if issubclass(kind, KeyboardInterrupt) else 1
        previous(kind, value, traceback)

    sys.excepthook = record
    atexit.register(_exit_now, armed)
    _armed = armed
    return True


def _exit_now(armed: _Armed) -> None:
    """The `atexit` hook: `os._exit` with the task's status, when it is known."""
    status = armed.status
    if status is None:
        return
    if status == 0:
        written = _mtime_ns(armed.output)
        if written is None or written == armed.before_ns:
            return  # no executor output from this process: not a normal end we can vouch for
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(status)
