"""The KServe model server's own environment and image: .venv-serving holds exactly the pins of
requirements/serving.txt, imports the model server without the pipeline's libraries, the image's
requirements agree with those pins and its Dockerfile passes hadolint; and the v2 contract
(aiact/serving.py) refuses bad tensors with one-line messages."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aiact import serving
from aiact.transform import FittedTransform, NumericParams
from components.integration_testing.core import PACKAGE_ROOT, serving_python

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "requirements" / "serving.txt"
IMAGE = ROOT / "images" / "serving"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            match = _PIN.match(line)
            assert match, f"{path}: not an exact pin: {line!r}"
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_the_serving_venv_holds_exactly_the_pinned_packages() -> None:
    python = serving_python()
    freeze = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    installed = {
        re.sub(r"[-_.]+", "-", name).lower(): version
        for name, version in (line.split("==", 1) for line in freeze.splitlines() if "==" in line)
    }
    assert installed == _pins(PINS)
    assert _pins(PINS)["kserve"] == "0.21.0" and _pins(PINS)["protobuf"].startswith("6.")


def test_the_model_server_imports_without_the_pipelines_libraries() -> None:
    code = (
        "import sys, aiact.kserve_model\n"
        "heavy = {'kfp', 'ml_metadata', 'tensorflow', 'tensorflow_data_validation', "
        "'apache_beam', 'sklearn', 'fairlearn', 'minio', 'matplotlib'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
        "import google.protobuf, importlib.metadata as m; print(google.protobuf.__version__, "
        "m.version('kserve'))\n"
    )
    result = subprocess.run(
        [str(serving_python()), "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(PACKAGE_ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded, versions = result.stdout.splitlines()[-2:]
    assert loaded == "[]"
    assert versions.startswith("6.") and versions.endswith(" 0.21.0")


def test_the_image_requirements_agree_with_the_serving_pins() -> None:
    image = _pins(IMAGE / "requirements.txt")
    pins = _pins(PINS)
    assert {"kserve", "torch", "numpy", "pandas", "pyyaml"} <= set(image)
    for name, version in image.items():
        assert pins.get(name) == version, (
            f"{name}=={version}, requirements/serving.txt: {pins.get(name)}"
        )
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert "COPY requirements/serving.txt /tmp/constraints.txt" in dockerfile
    assert "-c /tmp/constraints.txt -r /tmp/requirements.txt" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "aiact.kserve_model"]' in dockerfile
    assert "USER 1000:1000" in dockerfile


def test_the_image_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    assert hadolint, "hadolint is not installed"
    result = subprocess.run(
        [hadolint, str(IMAGE / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


TRANSFORM = FittedTransform(
    numeric={"age": NumericParams(median=40.0, mean=40.0, std=10.0, log=False)},
    categorical={"housing": ["own", "rent"]},
)


def _tensor(name: str, datatype: str, data: list, shape: list[int] | None = None) -> serving.Tensor:
    return serving.Tensor(name, datatype, [len(data)] if shape is None else shape, data)


def test_the_contract_decodes_a_valid_request_with_missing_values() -> None:
    frame = serving.frame_from_inputs(
        TRANSFORM,
        [_tensor("housing", "BYTES", ["own", None]), _tensor("age", "INT64", [30, None])],
    )
    assert list(frame.columns) == ["age", "housing"]
    assert frame["age"].tolist()[0] == 30.0 and pd.isna(frame["age"].tolist()[1])
    request = serving.v2_request(TRANSFORM, frame, "r1")
    assert request["inputs"][0] == {
        "name": "age",
        "datatype": "FP64",
        "shape": [2],
        "data": [30.0, None],
    }


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ([], "the request has no inputs"),
        ([_tensor("age", "FP64", [1.0])], "missing input(s): housing"),
        (
            [_tensor("age", "FP64", [1.0]), _tensor("housing", "BYTES", ["own"]),
             _tensor("x", "FP64", [1.0])],
            "unknown input(s): x",
        ),
        (
            [_tensor("age", "FP64", [1.0]), _tensor("age", "FP64", [1.0])],
            "input(s) given more than once: age",
        ),
        (
            [_tensor("age", "BYTES", ["1"]), _tensor("housing", "BYTES", ["own"])],
            "input 'age' has datatype BYTES, expected FP64",
        ),
        (
            [_tensor("age", "FP64", ["x"]), _tensor("housing", "BYTES", ["own"])],
            "input 'age' must hold numbers or null, got 'x' at index 0",
        ),
        (
            [_tensor("age", "FP64", [1.0]), _tensor("housing", "BYTES", [3])],
            "input 'housing' must hold strings or null, got 3 at index 0",
        ),
        (
            [_tensor("age", "FP64", [1.0], shape=[1, 1]), _tensor("housing", "BYTES", ["own"])],
            "input 'age' has shape [1, 1] but 1 values",
        ),
        (
            [_tensor("age", "FP64", [1.0, 2.0]), _tensor("housing", "BYTES", ["own"])],
            "input 'housing' has 1 values, the others 2",
        ),
        (
            [_tensor("age", "FP64", []), _tensor("housing", "BYTES", [])],
            "the request holds no records",
        ),
    ],
)  # fmt: skip
def test_the_contract_refuses_bad_tensors_in_one_line(
    tensors: list[serving.Tensor], message: str
) -> None:
    with pytest.raises(serving.ContractError) as raised:
        serving.frame_from_inputs(TRANSFORM, tensors)
    assert message in str(raised.value) and "\n" not in str(raised.value)
