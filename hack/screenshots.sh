#!/usr/bin/env bash
# Screenshots of what reviewers see, for the README: the approval review page, the evaluation
# report of a run, the evidence bundle's index and the governance dashboard, rendered by
# headless Chromium (Debian's `chromium`; hack/setup-services.sh installs it).
#
#   bash hack/screenshots.sh [OUT_DIR]      (default docs/screenshots)
#
# Runs two local pipelines into WORKDIR (default .aiact/screenshots) unless its store exists:
# one that deploys (demo approval) and one halted by the data gate (label bias 0.7).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/screenshots}"
WORK="${WORKDIR:-.aiact/screenshots}"
BROWSER="${CHROMIUM:-chromium}"
command -v "$BROWSER" >/dev/null || {
  echo "screenshots: $BROWSER not found (sudo bash hack/setup-services.sh installs it)" >&2
  exit 1
}
mkdir -p "$OUT" "$WORK"
if [ ! -f "$WORK/mlmd.sqlite" ]; then
  .venv/bin/aiact run-local --workdir "$WORK" --demo-approver "Dana Demo"
  .venv/bin/aiact run-local --workdir "$WORK" --demo-approver "Dana Demo" --label-bias 0.7 || true
fi
store="sqlite://$(realpath "$WORK/mlmd.sqlite")"
.venv/bin/aiact dashboard --out "$WORK/dashboard" --metadata-uri "$store" >/dev/null

pages="$WORK/pages"
mkdir -p "$pages"
# KFP names output files by output name (no extension): copy them as .html for the browser.
newest() { find "$WORK/pipeline_root" -path "*/$1" -type f -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2-; }
cp "$(newest 'approval/review_page')" "$pages/review_page.html"
cp "$(newest 'evaluation/evaluation_report_html')" "$pages/evaluation_report.html"
bundle="$(find "$WORK/evidence" -name index.html -printf '%T@ %p\n' | sort -n | head -1 | cut -d' ' -f2-)"

shoot() { # name page height
  "$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1280,"$3" --screenshot="$(realpath "$OUT")/$1.png" \
    "file://$(realpath "$2")" >/dev/null 2>&1
  echo "wrote $OUT/$1.png"
}
shoot approval-review-page "$pages/review_page.html" 2400
shoot evaluation-report "$pages/evaluation_report.html" 2400
shoot evidence-bundle "$bundle" 1800
shoot governance-dashboard "$WORK/dashboard/index.html" 2200
# Three quarters of the size, 128 colours: small enough to keep in the repository.
.venv/bin/python - "$OUT" <<'PY'
import sys
from pathlib import Path

from PIL import Image

for path in Path(sys.argv[1]).glob("*.png"):
    image = Image.open(path).convert("RGB")
    image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
    image.quantize(colors=128).save(path, optimize=True)
PY
