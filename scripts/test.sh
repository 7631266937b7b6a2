#!/usr/bin/env bash
# The test suite: install what is needed, then run pytest (extra arguments are passed on, e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
