"""The fast exit of a KFP task process (`aiact.fastexit`): the teardown is skipped only after the
executor wrote the task's outputs, every MLMD write is durable, and the exit status is kept: a
raising task exits 1, a SystemExit keeps its own code (then the normal exit runs). Each task runs
as KFP runs it: `python -m kfp.dsl.executor_main` with `_KFP_RUNTIME=true`, and under kfp.local's
SubprocessRunner."""

import gc
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl, local

from aiact import fastexit
from aiact.lineage import LineageStore, PropertyValue

# A component module as KFP writes it (ephemeral_component.py): an atexit marker registered
# BEFORE the fast exit is armed runs after its hook, so it shows whether the teardown ran.
MODULE = textwrap.dedent(
    """
    from kfp.dsl import Artifact, Output

    def task(mode: str, metadata_uri: str, marker: str, out: Output[Artifact]) -> str:
        import atexit
        from pathlib import Path

        atexit.register(lambda: Path(marker).write_text("normal teardown ran"))
        from aiact.fastexit import exit_fast_after_outputs
        armed = exit_fast_after_outputs()

        from aiact import lineage
        from aiact.lineage import ArtifactRecord, LineageStore, RunInfo

        LineageStore.connect(metadata_uri).record_execution(
            run=RunInfo(run_id="fast-exit"),
            stage=mode,
            inputs=[],
            outputs=[ArtifactRecord(lineage.DATASET, out.uri, mode * 8, "dataset")],
            succeeded=True,
            properties={"armed": armed},
        )
        Path(out.path).write_text("artefact of " + mode)
        if mode == "raise":
            raise RuntimeError("the gate breached")
        if mode == "exit3":
            raise SystemExit(3)
        return "returned " + mode
    """
)


# A component whose imports run in `imports_with_gc_paused`: it reports the collector's state
# inside and after the block, and how many objects were frozen (loading a module this process
# has not loaded yet). "gc-off": the collector was off before; "gc-raise": the block raises.
GC_MODULE = textwrap.dedent(
    """
    from kfp.dsl import Artifact, Output

    def task(mode: str, metadata_uri: str, marker: str, out: Output[Artifact]) -> str:
        import gc
        import json
        from pathlib import Path

        from aiact.fastexit import imports_with_gc_paused

        if mode == "gc-off":
            gc.disable()
        seen = {"frozen_before": gc.get_freeze_count(), "raised": False}
        try:
            with imports_with_gc_paused() as acting:
                seen["inside"] = gc.isenabled()
                import xml.dom.minidom  # noqa: F401
                if mode == "gc-raise":
                    raise ImportError("no such stage")
        except ImportError:
            seen["raised"] = True
        seen.update(acting=acting, after=gc.isenabled(), frozen=gc.get_freeze_count())
        Path(out.path).write_text(mode)
        return json.dumps(seen)
    """
)


def run_executor(
    tmp_path: Path, mode: str, source: str = MODULE, **env: str
) -> tuple[int, Path, str]:
    """Run `task` of `source` through KFP's executor in its own process; returns the exit
    status, the task directory and stderr."""
    module = tmp_path / "ephemeral_component.py"
    module.write_text(source)
    task_dir = tmp_path / mode
    task_dir.mkdir()
    executor_input = {
        "inputs": {
            "parameterValues": {
                "mode": mode,
                "metadata_uri": f"sqlite://{tmp_path / 'mlmd.sqlite'}",
                "marker": str(task_dir / "marker"),
            }
        },
        "outputs": {
            "parameters": {"Output": {"outputFile": str(task_dir / "Output")}},
            "artifacts": {
                "out": {
                    "artifacts": [
                        {
                            "name": "out",
                            "type": {"schemaTitle": "system.Artifact"},
                            "uri": str(task_dir / "out"),
                            "metadata": {},
                        }
                    ]
                }
            },
            "outputFile": str(task_dir / "executor_output.json"),
        },
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kfp.dsl.executor_main",
            "--component_module_path",
            str(module),
            "--function_to_execute",
            "task",
            "--executor_input",
            json.dumps(executor_input),
        ],
        env={**os.environ, "_KFP_RUNTIME": "true", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, task_dir, done.stderr


def recorded(tmp_path: Path, stage: str) -> dict[str, PropertyValue]:
    [execution] = [
        e
        for e in LineageStore.connect(f"sqlite://{tmp_path / 'mlmd.sqlite'}").executions_of_run(
            "fast-exit"
        )
        if e.stage == stage
    ]
    return execution.properties


def test_a_task_that_returns_exits_0_fast_with_its_outputs(tmp_path: Path) -> None:
    code, task_dir, stderr = run_executor(tmp_path, "ok")
    assert code == 0, stderr
    output = json.loads((task_dir / "executor_output.json").read_text())
    assert output["parameterValues"]["Output"] == "returned ok"
    assert (task_dir / "out").read_text() == "artefact of ok"
    assert recorded(tmp_path, "ok")["armed"] is True  # durable in MLMD after os._exit
    assert not (task_dir / "marker").exists(), "the interpreter teardown ran"


def test_a_task_that_raises_exits_1_fast_after_its_traceback(tmp_path: Path) -> None:
    code, task_dir, stderr = run_executor(tmp_path, "raise")
    assert code == 1
    assert "RuntimeError: the gate breached" in stderr
    assert not (task_dir / "executor_output.json").exists()
    assert recorded(tmp_path, "raise")["armed"] is True
    assert not (task_dir / "marker").exists()


def test_a_system_exit_keeps_its_code_and_the_normal_exit(tmp_path: Path) -> None:
    code, task_dir, _ = run_executor(tmp_path, "exit3")
    assert code == 3
    assert (task_dir / "marker").read_text() == "normal teardown ran"


def test_switched_off_the_teardown_runs(tmp_path: Path) -> None:
    code, task_dir, stderr = run_executor(tmp_path, "ok", **{fastexit.DISABLE_ENV: "1"})
    assert code == 0, stderr
    assert (task_dir / "marker").read_text() == "normal teardown ran"
    assert recorded(tmp_path, "ok")["armed"] is False


def test_outside_a_kfp_executor_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_KFP_RUNTIME", raising=False)
    assert fastexit.exit_fast_after_outputs() is False
    monkeypatch.setenv("_KFP_RUNTIME", "true")
    monkeypatch.setattr(sys, "argv", ["pytest"])
    assert fastexit.exit_fast_after_outputs() is False


def gc_report(tmp_path: Path, mode: str) -> dict[str, Any]:
    code, task_dir, stderr = run_executor(tmp_path, mode, GC_MODULE)
    assert code == 0, stderr
    output = json.loads((task_dir / "executor_output.json").read_text())
    report: dict[str, Any] = json.loads(output["parameterValues"]["Output"])
    return report


def test_a_task_imports_with_the_gc_paused_then_freezes_what_it_loaded(tmp_path: Path) -> None:
    seen = gc_report(tmp_path, "gc")
    assert seen["acting"] is True
    assert seen["inside"] is False  # paused while the block imports
    assert seen["after"] is True  # resumed
    # Everything loaded so far is in the permanent generation: thousands of objects.
    assert seen["frozen"] > seen["frozen_before"] + 1000


def test_a_collector_that_was_off_stays_off(tmp_path: Path) -> None:
    seen = gc_report(tmp_path, "gc-off")
    assert seen["acting"] is True
    assert seen["inside"] is False
    assert seen["after"] is False


def test_a_block_that_raises_resumes_the_collector_and_freezes_nothing(tmp_path: Path) -> None:
    seen = gc_report(tmp_path, "gc-raise")
    assert seen["raised"] is True
    assert seen["after"] is True
    assert seen["frozen"] == seen["frozen_before"]


def test_outside_a_task_process_the_imports_are_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("_KFP_RUNTIME", raising=False)
    frozen = gc.get_freeze_count()
    with fastexit.imports_with_gc_paused() as acting:
        assert gc.isenabled()
    assert acting is False
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_executor_output_file_from_the_arguments() -> None:
    spec = json.dumps({"outputs": {"outputFile": "/t/executor_output.json"}})
    assert fastexit.executor_output_file(["--executor_input", spec]) == Path(
        "/t/executor_output.json"
    )
    assert fastexit.executor_output_file([f"--executor_input={spec}"]) == Path(
        "/t/executor_output.json"
    )
    assert fastexit.executor_output_file(["--executor_input", "{}"]) is None
    assert fastexit.executor_output_file([]) is None


@dsl.component(install_kfp_package=False)
def produce(text: str, out: dsl.Output[dsl.Artifact]) -> str:
    from pathlib import Path

    from aiact.fastexit import exit_fast_after_outputs

    assert exit_fast_after_outputs()
    Path(out.path).write_text(text)
    return text.upper()


@dsl.component(install_kfp_package=False)
def consume(previous: str, data: dsl.Input[dsl.Artifact], fail: bool) -> str:
    from pathlib import Path

    from aiact.fastexit import exit_fast_after_outputs

    exit_fast_after_outputs()
    if fail:
        raise RuntimeError("verdict: breached")
    return previous + " " + Path(data.path).read_text()


@dsl.pipeline
def chained(fail: bool) -> str:
    first = produce(text="evidence")
    second = consume(previous=first.outputs["Output"], data=first.outputs["out"], fail=fail)
    return second.output


def test_under_kfp_local_outputs_flow_and_a_failure_fails_the_run(tmp_path: Path) -> None:
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=False,
    )
    assert chained(fail=False).output == "EVIDENCE evidence"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=True,
    )
    with pytest.raises(RuntimeError, match="consume"):
        chained(fail=True)
