#!/usr/bin/env bash
# Create .venv with the pinned environment and install this project into it (editable, with
# the dev tools). Needs neither root nor any server: the test servers are installed by
# hack/test.sh (hack/setup-services.sh).
# Idempotent: re-running on a ready environment only re-checks the pins.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade "pip==24.3.1"
.venv/bin/python -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
# The project's own modules as bytecode, as pip writes it for an installed package (the images):
# an editable install leaves them as source, and where PYTHONDONTWRITEBYTECODE is set (as on
# this machine kind) Python never caches them, so every task process of a local run would
# compile its 15-30 modules again (~45 ms each). A module edited since is recompiled in memory.
.venv/bin/python -m compileall -q aiact components pipelines >/dev/null
# Import check; the libraries' start-up chatter is shown only when an import fails.
if ! check="$(PYTHONWARNINGS=ignore TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python - 2>&1 <<'PY'
import importlib
for mod in ("kfp", "ml_metadata", "tensorflow_data_validation", "torch", "fairlearn", "minio"):
    importlib.import_module(mod)
print("environment ready: .venv")
PY
)"; then
  echo "$check" >&2
  exit 1
fi
echo "${check##*$'\n'}"

# .venv-serving: KServe's model server, which the integration-testing stage starts in its own
# process (kserve 0.21 needs protobuf >= 6.33, .venv holds protobuf 4). Pinned by
# requirements/serving.txt; it imports this checkout's aiact through PYTHONPATH.
if [ ! -x .venv-serving/bin/python ]; then
  "$PYTHON" -m venv .venv-serving
fi
.venv-serving/bin/python -m pip install --quiet --upgrade "pip==24.3.1"
.venv-serving/bin/python -m pip install --quiet -r requirements/serving.txt
if ! check="$(PYTHONPATH="$PWD" .venv-serving/bin/python -c \
  'import importlib.metadata, aiact.kserve_model; print("environment ready: .venv-serving (kserve " + importlib.metadata.version("kserve") + ")")' 2>&1)"; then
  echo "$check" >&2
  exit 1
fi
echo "${check##*$'\n'}"
