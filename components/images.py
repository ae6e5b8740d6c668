"""Container images of the stages (built from images/<name>/Dockerfile by hack/build-images.sh).

KFP's cache key uses the image reference, not its digest: production specs should reference
images by digest (not yet automated: `aiact compile` writes these development tags).
"""

REGISTRY = "ghcr.io/aiact-project"
VERSION = "0.1.0"

DATA_IMAGE = f"{REGISTRY}/aiact-data:{VERSION}"
TRAINING_IMAGE = f"{REGISTRY}/aiact-training:{VERSION}"
EVALUATION_IMAGE = f"{REGISTRY}/aiact-evaluation:{VERSION}"
CONTROL_IMAGE = f"{REGISTRY}/aiact-control:{VERSION}"
