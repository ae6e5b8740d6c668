"""Container images of the stages (built from images/<name>/Dockerfile by hack/build-images.sh).

The tag is the package version, read in this one place: the installed distribution's
metadata, else (a source tree that is not installed) pyproject.toml's `version`.

KFP's cache key uses the image reference, not its digest: production specs reference images by
digest. `hack/build-images.sh --push` writes `images/digests.json` (image name -> sha256
digest) and `aiact compile --image-digests images/digests.json` writes `REGISTRY/name@sha256:...`
references (`pin`); the committed spec keeps these development tags.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import tomllib
from pathlib import Path

DISTRIBUTION = "aiact-pipelines"
REGISTRY = "ghcr.io/aiact-project"
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def package_version() -> str:
    """The suite's version: the installed distribution's, else pyproject.toml's."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        with PYPROJECT.open("rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])


VERSION = package_version()

# Image name (the repository under REGISTRY, the key of images/digests.json) -> reference.
IMAGE_NAMES = ("aiact-data", "aiact-training", "aiact-evaluation", "aiact-control")
IMAGES = {name: f"{REGISTRY}/{name}:{VERSION}" for name in IMAGE_NAMES}

DATA_IMAGE = IMAGES["aiact-data"]
TRAINING_IMAGE = IMAGES["aiact-training"]
EVALUATION_IMAGE = IMAGES["aiact-evaluation"]
CONTROL_IMAGE = IMAGES["aiact-control"]
# KServe's model server with the model package loader (images/serving): not a stage image, the
# predictor container of the integration InferenceService. Its own environment (protobuf 6), so
# it is built and pinned apart from the stage images: `hack/build-images.sh --push serving`.
SERVING_IMAGE = f"{REGISTRY}/aiact-serving:{VERSION}"


class DigestError(ValueError):
    """A digest file that cannot pin the stage images."""


def load_digests(path: Path) -> dict[str, str]:
    """Read a digest file (`{"aiact-data": "sha256:...", ...}`): every stage image, each with a
    well-formed digest."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DigestError(f"{path}: cannot read the image digests: {exc}") from None
    if not isinstance(loaded, dict):
        raise DigestError(f"{path}: must map image names to sha256 digests")
    digests = {str(k): str(v) for k, v in loaded.items()}
    missing = sorted(set(IMAGE_NAMES) - set(digests))
    if missing:
        raise DigestError(f"{path}: no digest for {', '.join(missing)}")
    bad = sorted(k for k, v in digests.items() if not DIGEST.fullmatch(v))
    if bad:
        raise DigestError(f"{path}: not a sha256:<64 hex> digest for {', '.join(bad)}")
    return digests


def pin(image: str, digests: dict[str, str]) -> str:
    """`image` (a stage image's tagged reference) as `REGISTRY/name@sha256:...`; any other
    reference unchanged."""
    for name, reference in IMAGES.items():
        if image == reference and name in digests:
            return f"{REGISTRY}/{name}@{digests[name]}"
    return image
