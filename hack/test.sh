#!/usr/bin/env bash
# The project's test command: the test servers (installed when missing, as root), then lint,
# type-check and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup-services.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
mypy
pytest "$@"
