#!/usr/bin/env bash
# Build the suite's four stage images (and push them with --push), then print their digests.
#
#   hack/build-images.sh                 # build locally, print image IDs
#   hack/build-images.sh --push          # build, push, print registry digests to pin
#   hack/build-images.sh --push data     # only some images (data training evaluation control)
#
# Environment: REGISTRY (default ghcr.io/aiact-project), TAG (default: the version),
# PLATFORM (default linux/amd64: the CUDA torch wheels exist for x86_64 only), DOCKER (default
# docker), ALLOW_DIRTY=1 to build from a tree with uncommitted changes (the image's
# AIACT_CODE_COMMIT / org.opencontainers.image.revision would then not describe its code).
#
# The pipeline should reference the images by the printed digests (ghcr.io/...@sha256:...):
# KFP's cache key uses the image reference as written, so a re-pushed tag silently reuses cached
# results of an older image. With --push the digests are also written to images/digests.json
# (DIGESTS_FILE; image name -> sha256 digest, entries of images not built kept), for
#   aiact compile --image-digests images/digests.json
# The default TAG is the package version (pyproject.toml), as components/images.py uses it.
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY="${REGISTRY:-ghcr.io/aiact-project}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml 2>/dev/null | head -n 1 || true)"
TAG="${TAG:-${version:-0.1.0}}"
DIGESTS_FILE="${DIGESTS_FILE:-images/digests.json}"
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
    --build-arg AIACT_VERSION="$TAG" \
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
declare -A pinned=()
for name in "${images[@]}"; do
  ref="$REGISTRY/aiact-$name:$TAG"
  if [[ "$push" == true ]]; then
    # RepoDigests holds the digest the registry computed for the pushed manifest.
    digest="$("$DOCKER" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" |
      grep -F "$REGISTRY/aiact-$name@" | head -n 1 || true)"
    echo "  $name: ${digest:-<no repo digest: check 'docker image inspect $ref'>}"
    if [[ -n "$digest" ]]; then
      pinned["aiact-$name"]="${digest#*@}"
    fi
  else
    echo "  $name: $ref $("$DOCKER" image inspect --format '{{.Id}}' "$ref")"
  fi
done

if [[ "$push" == true ]]; then
  # Keep the digests of images not rebuilt now (one '"name": "sha256:..."' entry a line).
  if [[ -f "$DIGESTS_FILE" ]]; then
    while IFS= read -r line; do
      if [[ "$line" =~ \"(aiact-[a-z]+)\":\ *\"(sha256:[0-9a-f]{64})\" ]]; then
        key="${BASH_REMATCH[1]}"
        [[ -n "${pinned[$key]:-}" ]] || pinned["$key"]="${BASH_REMATCH[2]}"
      fi
    done <"$DIGESTS_FILE"
  fi
  mkdir -p "$(dirname "$DIGESTS_FILE")"
  {
    echo "{"
    keys=()
    while IFS= read -r key; do keys+=("$key"); done < <(printf '%s\n' "${!pinned[@]}" | sort)
    for i in "${!keys[@]}"; do
      sep=","
      [[ $i -eq $((${#keys[@]} - 1)) ]] && sep=""
      echo "  \"${keys[$i]}\": \"${pinned[${keys[$i]}]}\"$sep"
    done
    echo "}"
  } >"$DIGESTS_FILE"
  echo "wrote $DIGESTS_FILE: aiact compile --image-digests $DIGESTS_FILE pins them" >&2
fi
