"""Each stage's process imports only what its stage uses (issue 13's local-overhead goal): the
libraries a task process holds once KFP's executor has loaded the stage's executor module, in a
fresh interpreter started as kfp.local and a cluster start it (`_KFP_RUNTIME=true`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = frozenset(
    {
        "torch",
        "sklearn",
        "fairlearn",
        "scipy",
        "pandas",
        "matplotlib",
        "tensorflow",
        "tensorflow_data_validation",
        "apache_beam",
        "kserve",
    }
)
# What each stage's executor module may load when the task process starts (the rest of HEAVY
# must wait until the stage needs it, if ever). Integration testing loads torch and pandas in
# the stage, after its model server has started; data preparation's component body loads TFDV
# itself (with its other imports, the GC paused), not through its executor module.
ALLOWED = {
    "data_preparation": {"pandas"},
    "feature_engineering": {"pandas"},
    "training": {"torch", "matplotlib"},
    "evaluation": {"torch", "sklearn", "fairlearn", "scipy", "pandas", "matplotlib"},
    "registration": set(),
    "integration_testing": set(),
    "gate_verdict": set(),
    "approval": {"matplotlib"},
    "deployment": set(),
}


def _loaded(stage: str) -> set[str]:
    program = (
        "import json, sys\n"
        "import kfp.dsl.executor_main, aiact.stage\n"
        f"import components.{stage}.executor\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, _KFP_RUNTIME="true"),
        check=True,
        timeout=300,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_a_stage_process_loads_only_the_libraries_its_stage_uses(stage: str) -> None:
    assert (ROOT / "components" / stage / "executor.py").is_file()
    loaded = _loaded(stage)
    assert "kfp" in loaded and "ml_metadata" in loaded  # the probe did import the stage
    assert HEAVY & loaded <= ALLOWED[stage], f"{stage} loads {sorted(HEAVY & loaded)}"


def test_every_stage_is_listed() -> None:
    stages = {p.parent.name for p in (ROOT / "components").glob("*/executor.py")}
    assert stages == set(ALLOWED)
