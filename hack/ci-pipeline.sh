#!/usr/bin/env bash
# CI for the compiled pipeline spec:
#   1. `aiact compile --check`   the committed YAML equals a fresh compile
#   2. `aiact verify-spec`       the compiled spec is the compliance specification it claims
#   3. `aiact diff-spec`         compliance diff against the spec at a base git ref ($1, default
#                                origin/main); skipped when that ref or its spec does not exist.
#                                A compliance-relevant change (exit 1) is reported, written to
#                                $AIACT_CI_OUT/spec-diff.md, and fails the job only with
#                                AIACT_CI_FAIL_ON_COMPLIANCE_DIFF=1
#   4. `aiact upload`            only when KF_PIPELINES_ENDPOINT is set (token from
#                                KF_PIPELINES_TOKEN or KF_PIPELINES_SA_TOKEN_PATH): a new pipeline
#                                version named by the commit; a dirty tree is refused
# Usage: hack/ci-pipeline.sh [BASE_REF]
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_REF="${1:-origin/main}"
SPEC=pipelines/compliance_pipeline.yaml
OUT="${AIACT_CI_OUT:-.aiact/ci}"
AIACT="${AIACT:-.venv/bin/aiact}"
mkdir -p "$OUT"

echo "== compile --check"
"$AIACT" compile --check

echo "== verify-spec"
"$AIACT" verify-spec "$SPEC"

echo "== diff-spec against $BASE_REF"
if ! git rev-parse --verify --quiet "${BASE_REF}^{commit}" >/dev/null; then
  echo "skipped: git ref $BASE_REF does not exist here (fetch it, or pass another base ref)"
elif ! git cat-file -e "${BASE_REF}:${SPEC}" 2>/dev/null; then
  echo "skipped: $BASE_REF has no $SPEC"
else
  base_spec="$OUT/base-compliance_pipeline.yaml"
  git show "${BASE_REF}:${SPEC}" >"$base_spec"
  status=0
  "$AIACT" diff-spec "$base_spec" "$SPEC" --format markdown >"$OUT/spec-diff.md" || status=$?
  cat "$OUT/spec-diff.md"
  if [ "$status" -eq 1 ]; then
    echo "compliance-relevant change against $BASE_REF (review required): $OUT/spec-diff.md"
    if [ "${AIACT_CI_FAIL_ON_COMPLIANCE_DIFF:-0}" = 1 ]; then
      exit 1
    fi
  elif [ "$status" -ne 0 ]; then
    echo "diff-spec failed (exit $status)" >&2
    exit "$status"
  fi
fi

echo "== upload"
if [ -n "${KF_PIPELINES_ENDPOINT:-}" ]; then
  "$AIACT" upload "$SPEC"
else
  echo "skipped: KF_PIPELINES_ENDPOINT is not set"
fi
