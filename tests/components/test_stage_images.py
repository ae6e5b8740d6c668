"""Each stage's code imports with only what its container image installs: the modules of heavy
packages missing from `images/<image>/requirements.txt` are blocked in a fresh interpreter
before the stage's executor is imported (a stage that needs them at import time fails here,
not in a pod)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = (
    "data_preparation",
    "feature_engineering",
    "training",
    "evaluation",
    "registration",
    "integration_testing",
    "approval",
    "deployment",
)
# Distribution -> the modules it provides (scipy arrives with scikit-learn).
HEAVY = {
    "torch": ("torch",),
    "tensorflow-data-validation": ("tensorflow_data_validation", "tensorflow", "apache_beam"),
    "scikit-learn": ("sklearn", "scipy"),
    "fairlearn": ("fairlearn",),
    "kubernetes": ("kubernetes",),
}


def _image_packages(image: str) -> set[str]:
    name = re.search(r"/aiact-(\w+):", image)
    assert name, image
    lines = (ROOT / "images" / name.group(1) / "requirements.txt").read_text().splitlines()
    return {re.split(r"[=\[<>]", line)[0].strip().lower() for line in lines if line[:1].isalpha()}


@pytest.mark.parametrize("stage", STAGES)
def test_stage_imports_with_its_image_packages_only(stage: str) -> None:
    component = getattr(import_module(f"components.{stage}.component"), stage)
    image = component.component_spec.implementation.container.image
    packages = _image_packages(image)
    blocked = sorted(m for dist, mods in HEAVY.items() if dist not in packages for m in mods)
    code = (
        "import sys\n"
        "class NotInImage:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ImportError(f'{name} is not installed in this image')\n"
        "sys.meta_path.insert(0, NotInImage())\n"
        f"import components.{stage}.executor\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{stage} in {image} (blocked {blocked}):\n{result.stderr}"
