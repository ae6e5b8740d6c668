#!/usr/bin/env bash
# Create .venv with the pinned environment and install this project into it.
# Idempotent: re-running on a ready environment only re-checks the pins.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
bash hack/setup-services.sh
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade "pip==24.3.1"
.venv/bin/python -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
.venv/bin/python - <<'PY'
import importlib
for mod in ("kfp", "ml_metadata", "tensorflow_data_validation", "torch", "fairlearn", "minio"):
    importlib.import_module(mod)
print("environment ready: .venv")
PY
