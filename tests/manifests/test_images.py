"""Checks of the stage images (images/<name>/Dockerfile + requirements.txt) and of
hack/build-images.sh: hadolint passes, every pin equals the lock's (except the training image's
CUDA torch), every image carries what the KFP executor and lineage need, Dockerfiles follow the
suite's conventions (non-root, commit baked in), and the build script builds what it says."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements" / "constraints.txt"
BUILD_SCRIPT = REPO / "hack" / "build-images.sh"
IMAGES = ["data", "training", "evaluation", "control"]
REGISTRY = "ghcr.io/aiact-project"
# The build script's tag when the repository it runs in has no pyproject.toml (the fake repo
# of the build-script tests); in this repository the tag is pyproject.toml's version.
VERSION = "0.1.0"

# Every image: the KFP executor runs inside it (install_kfp_package=False), lineage goes to ML
# Metadata, and the stage code reads YAML and frames.
COMMON = {"kfp", "ml-metadata", "pyyaml", "numpy", "pandas", "protobuf"}
STAGE_PACKAGES = {
    "data": {"tensorflow-data-validation", "apache-beam", "scikit-learn", "minio"},
    "training": {"torch", "scikit-learn"},
    "evaluation": {"torch", "scikit-learn", "fairlearn"},
    "control": {"kubernetes", "minio", "ml-metadata"},
}
# Packages an image must NOT carry (keeps images small and their purpose clear).
NOT_IN = {
    "control": {"torch", "tensorflow-data-validation", "apache-beam", "tensorflow"},
    "training": {"tensorflow-data-validation", "apache-beam", "tensorflow"},
    "evaluation": {"tensorflow-data-validation", "apache-beam", "tensorflow"},
}

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==(\S+)$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    """name -> version for a file of exact pins; any other requirement line is an error."""
    pins: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = _REQUIREMENT.match(line)
        assert match, f"{path}:{lineno}: not an exact pin: {raw!r}"
        name = _normalise(match.group(1))
        assert name not in pins, f"{path}:{lineno}: {name} pinned twice"
        pins[name] = match.group(3)
    return pins


def _requirement_lines(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    assert not pending, f"{dockerfile}: dangling line continuation"
    return result


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is not installed"
    return path


@pytest.fixture(scope="module")
def lock() -> dict[str, str]:
    return _pins(LOCK)


# ----------------------------------------------------------------------------- lint


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint(image: str) -> None:
    dockerfile = REPO / "images" / image / "Dockerfile"
    proc = subprocess.run(
        [_tool("hadolint"), str(dockerfile)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"hadolint {dockerfile}:\n{proc.stdout}{proc.stderr}"


def test_hadolint_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint gate is real (hadolint's rules are on, with no blanket ignore)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n")
    proc = subprocess.run(
        [_tool("hadolint"), str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3002"):  # latest tag, unpinned pip, last USER root
        assert rule in proc.stdout, proc.stdout


def test_build_script_syntax() -> None:
    proc = subprocess.run(
        ["bash", "-n", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert os.access(BUILD_SCRIPT, os.X_OK), "hack/build-images.sh is not executable"


# ----------------------------------------------------------------------------- requirements


@pytest.mark.parametrize("image", IMAGES)
def test_requirements_match_the_lock(image: str, lock: dict[str, str]) -> None:
    pins = _pins(REPO / "images" / image / "requirements.txt")
    assert pins, f"images/{image}/requirements.txt pins nothing"
    for name, version in pins.items():
        assert name in lock, f"{image}: {name} is not in the lock"
        if image == "training" and name == "torch":
            continue  # checked in test_training_image_uses_the_cuda_build_of_torch
        assert version == lock[name], f"{image}: {name}=={version}, lock has {lock[name]}"


@pytest.mark.parametrize("image", IMAGES)
def test_every_image_has_the_executor_and_lineage_packages(image: str) -> None:
    pins = _pins(REPO / "images" / image / "requirements.txt")
    missing = (COMMON | STAGE_PACKAGES[image]) - set(pins)
    assert not missing, f"{image} lacks {sorted(missing)}"
    assert pins["kfp"] == "2.13.0"
    assert pins["ml-metadata"] == "1.17.1"
    unwanted = NOT_IN.get(image, set()) & set(pins)
    assert not unwanted, f"{image} should not carry {sorted(unwanted)}"


def test_data_image_installs_beam_with_gcp_extra() -> None:
    lines = _requirement_lines(REPO / "images" / "data" / "requirements.txt")
    assert any(re.fullmatch(r"apache-beam\[gcp\]==\S+", line) for line in lines), lines


def test_training_image_uses_the_cuda_build_of_torch(lock: dict[str, str]) -> None:
    pins = _pins(REPO / "images" / "training" / "requirements.txt")
    assert pins["torch"] == "2.13.0"
    assert "+" not in pins["torch"]
    assert lock["torch"].split("+", 1)[0] == pins["torch"], "training torch drifted from the lock"
    dockerfile = (REPO / "images" / "training" / "Dockerfile").read_text()
    # The lock's CPU pin must not constrain the CUDA install, and no CPU index may be used.
    assert "sed -i '/^torch==/d' /tmp/constraints.txt" in dockerfile
    assert "download.pytorch.org" not in dockerfile
    assert "torch.version.cuda" in dockerfile
    env = " ".join(a for kw, a in _final_stage(_instructions(REPO / "images/training/Dockerfile")))
    assert "NVIDIA_VISIBLE_DEVICES=all" in env
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in env


def test_evaluation_image_uses_the_cpu_build_of_torch(lock: dict[str, str]) -> None:
    pins = _pins(REPO / "images" / "evaluation" / "requirements.txt")
    assert pins["torch"] == lock["torch"] == "2.13.0+cpu"
    dockerfile = (REPO / "images" / "evaluation" / "Dockerfile").read_text()
    assert "https://download.pytorch.org/whl/cpu" in dockerfile


# ----------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_conventions(image: str) -> None:
    path = REPO / "images" / image / "Dockerfile"
    text = path.read_text()
    instructions = _instructions(path)
    final = _final_stage(instructions)

    # Base: python 3.11 slim, pinned by an explicit tag; the digest advice is written down.
    for keyword, args in instructions:
        if keyword == "FROM":
            ref = args.split()[0]
            assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", ref)
    assert "digest" in text and "cache" in text

    # Non-root: the final stage's last USER is uid 1000.
    users = [args for keyword, args in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] == "1000", users
    assert any(kw == "RUN" and "--uid 1000" in args for kw, args in final)

    # The code commit is baked in: ARG -> ENV and the OCI revision label.
    assert ("ARG", "AIACT_CODE_COMMIT=unknown") in final or ("ARG", "AIACT_CODE_COMMIT") in final
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    labels = " ".join(args for keyword, args in final if keyword == "LABEL")
    assert "AIACT_CODE_COMMIT=${AIACT_CODE_COMMIT}" in env
    assert 'org.opencontainers.image.revision="${AIACT_CODE_COMMIT}"' in labels
    assert f'org.opencontainers.image.title="aiact-{image}"' in labels
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env

    # pip: no cache, own requirement set under the lock, project installed without deps.
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    pip_runs = [r for r in runs if "pip install" in r]
    assert pip_runs
    for run in pip_runs:
        for command in run.split("&&"):
            if "pip install" in command:
                assert "--no-cache-dir" in command, command
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert f"images/{image}/requirements.txt /tmp/requirements.txt" in copies
    assert "requirements/constraints.txt /tmp/constraints.txt" in copies
    assert any("-c /tmp/constraints.txt -r /tmp/requirements.txt" in r for r in runs)
    assert "pyproject.toml README.md /src/" in copies
    for package in ("aiact", "components", "pipelines"):
        assert f"{package}/ /src/{package}/" in copies
    assert any("pip install --no-cache-dir --no-deps /src" in r for r in runs)

    # No secrets: no credential-like build args or env, no secret files copied.
    for keyword, args in instructions:
        if keyword in {"ARG", "ENV"}:
            assert not re.search(r"PASSWORD|TOKEN|SECRET|API_KEY|ACCESS_KEY", args, re.I), args
        if keyword in {"COPY", "ADD"}:
            assert not re.search(r"\.env\b|\.pem|id_rsa|credentials|\.netrc", args), args


def test_only_the_data_image_has_a_compiler_stage() -> None:
    for image in IMAGES:
        text = (REPO / "images" / image / "Dockerfile").read_text()
        assert ("build-essential" in text) == (image == "data"), image
        # The compiler never reaches the final image.
        final = _final_stage(_instructions(REPO / "images" / image / "Dockerfile"))
        assert not any("apt-get" in args for _, args in final), image
        assert ("COPY", "--from=build /opt/venv /opt/venv") in final


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    entries = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for excluded in (".venv", ".git", "tests", "bench", "local_outputs", ".aiact"):
        assert excluded in entries, excluded
    for cache in ("**/__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"):
        assert cache in entries, cache
    for needed in ("aiact", "components", "pipelines", "images", "requirements", "README.md"):
        assert needed not in entries and f"{needed}/" not in entries, needed
    assert "pyproject.toml" not in entries


# ----------------------------------------------------------------------------- build script


def _fake_repo(tmp_path: Path) -> tuple[Path, str]:
    """A throw-away git repository with the build script, stub Dockerfiles and a fake docker."""
    repo = tmp_path / "repo"
    (repo / "hack").mkdir(parents=True)
    shutil.copy2(BUILD_SCRIPT, repo / "hack" / "build-images.sh")
    for image in IMAGES:
        (repo / "images" / image).mkdir(parents=True)
        (repo / "images" / image / "Dockerfile").write_text("FROM scratch\n")
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'echo "$*" >> "$DOCKER_LOG"\n'
        'if [[ "$1 $2" == "image inspect" ]]; then\n'
        '  ref="${*: -1}"\n'
        '  case "$*" in *RepoDigests*) echo "${ref%:*}@sha256:$(printf %064d 7)";;\n'
        "  *) echo sha256:local;; esac\n"
        "fi\n"
    )
    fake.chmod(0o755)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "stub"], check=True)
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return repo, commit


def _run_build(repo: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DOCKER": str(tmp_path / "docker"),
        "DOCKER_LOG": str(tmp_path / "docker.log"),
    }
    for var in ("REGISTRY", "TAG", "PLATFORM", "ALLOW_DIRTY"):
        env.pop(var, None)
    return subprocess.run(
        ["bash", str(repo / "hack" / "build-images.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_build_script_builds_and_pushes_all_four_images(tmp_path: Path) -> None:
    repo, commit = _fake_repo(tmp_path)
    proc = _run_build(repo, tmp_path, "--push")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (tmp_path / "docker.log").read_text().splitlines()
    builds = [line for line in log if line.startswith("build ")]
    pushes = [line for line in log if line.startswith("push ")]
    assert len(builds) == len(pushes) == len(IMAGES)
    for image, build in zip(IMAGES, builds, strict=True):
        ref = f"{REGISTRY}/aiact-{image}:{VERSION}"
        assert f"-f images/{image}/Dockerfile" in build
        assert f"--build-arg AIACT_CODE_COMMIT={commit}" in build
        assert f"--build-arg AIACT_VERSION={VERSION}" in build
        assert f"-t {ref}" in build
        assert build.endswith(" .")
        assert f"push {ref}" in pushes
        assert f"{REGISTRY}/aiact-{image}@sha256:{7:064d}" in proc.stdout


def test_build_script_refuses_a_dirty_tree_and_unknown_images(tmp_path: Path) -> None:
    repo, _ = _fake_repo(tmp_path)
    (repo / "images" / "data" / "Dockerfile").write_text("FROM scratch\nUSER 1000\n")
    assert _run_build(repo, tmp_path).returncode != 0
    assert _run_build(repo, tmp_path, "nonexistent").returncode != 0
    assert not (tmp_path / "docker.log").exists(), "nothing may be built"
