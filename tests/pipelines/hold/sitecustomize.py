"""Test-only start-up hook (on PYTHONPATH of a killed run only, never shipped): when
AIACT_TEST_HOLD_STAGE names a stage, that stage's process sleeps right after it logs `started`,
so a test that kills the run on that log line kills it inside the stage, however fast the stage
is. The production code path is untouched: this wraps `aiact.stage.log_event` once the module
is imported, in the processes of the test's own run."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from types import ModuleType
from typing import Any

HOLD = os.environ.get("AIACT_TEST_HOLD_STAGE", "")


class _Hold(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "aiact.stage":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            emit = module.log_event

            def log_event(stage: str, event: str, **fields: Any) -> None:
                emit(stage, event, **fields)
                if stage == HOLD and event == "started":
                    time.sleep(3600)  # until the test kills the process group

            module.log_event = log_event  # type: ignore[attr-defined]

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if HOLD:
    sys.meta_path.insert(0, _Hold())
