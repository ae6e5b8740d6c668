#!/usr/bin/env bash
# Build the suite's four stage images (and push them with --push), then print their digests.
#
#   hack/build-images.sh                 # build locally, print image IDs
#   hack/build-images.sh --push          # build, push, print registry digests to pin
#   hack/build-images.sh --push data     # only some images (data training evaluation control)
#
# Environment: REGISTRY (default ghcr.io/aiact-project), TAG (default 0.1.0),
# PLATFORM (default linux/amd64: the CUDA torch wheels exist for x86_64 only), DOCKER (default
# docker), ALLOW_DIRTY=1 to build from a tree with uncommitted changes (the image's
# AIACT_CODE_COMMIT / org.opencontainers.image.revision would then not describe its code).
#
# The pipeline should reference the images by the printed digests (ghcr.io/...@sha256:...):
# KFP's cache key uses the image reference as written, so a re-pushed tag silently reuses cached
# results of an older image.
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY="${REGISTRY:-ghcr.io/aiact-project}"
TAG="${TAG:-0.1.0}"
PLATFORM="${PLATFORM:-linux/amd64}"
DOCKER="${DOCKER:-docker}"
ALL_IMAGES=(data training evaluation control)

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

push=false
images=()
for arg in "$@"; do
  case "$arg" in
    --push) push=true ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*)
      echo "unknown option: $arg" >&2
      usage >&2
      exit 2
      ;;
    *)
      if [[ ! -f "images/$arg/Dockerfile" ]]; then
        echo "unknown image: $arg (expected one of: ${ALL_IMAGES[*]})" >&2
        exit 2
      fi
      images+=("$arg")
      ;;
  esac
done
if [[ ${#images[@]} -eq 0 ]]; then
  images=("${ALL_IMAGES[@]}")
fi

command -v "$DOCKER" >/dev/null || {
  echo "$DOCKER not found: building the images needs a Docker engine (or DOCKER=podman)" >&2
  exit 1
}

commit="$(git rev-parse HEAD)"
if [[ -n "$(git status --porcelain --untracked-files=no)" && "${ALLOW_DIRTY:-0}" != 1 ]]; then
  echo "uncommitted changes: the images would carry AIACT_CODE_COMMIT=$commit for code that" >&2
  echo "is not that commit. Commit first, or set ALLOW_DIRTY=1 for a throw-away build." >&2
  exit 1
fi

for name in "${images[@]}"; do
  ref="$REGISTRY/aiact-$name:$TAG"
  echo "==> building $ref (commit $commit)" >&2
  "$DOCKER" build \
    --platform "$PLATFORM" \
    -f "images/$name/Dockerfile" \
    --build-arg AIACT_CODE_COMMIT="$commit" \
    -t "$ref" \
    .
  if [[ "$push" == true ]]; then
    echo "==> pushing $ref" >&2
    "$DOCKER" push "$ref"
  fi
done

echo
if [[ "$push" == true ]]; then
  echo "Pushed images (pin these digests in the pipeline):"
else
  echo "Local images (registry digests exist only after --push):"
fi
for name in "${images[@]}"; do
  ref="$REGISTRY/aiact-$name:$TAG"
  if [[ "$push" == true ]]; then
    # RepoDigests holds the digest the registry computed for the pushed manifest.
    digest="$("$DOCKER" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" |
      grep -F "$REGISTRY/aiact-$name@" | head -n 1 || true)"
    echo "  $name: ${digest:-<no repo digest: check 'docker image inspect $ref'>}"
  else
    echo "  $name: $ref $("$DOCKER" image inspect --format '{{.Id}}' "$ref")"
  fi
done
