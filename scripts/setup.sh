#!/usr/bin/env bash
# Create .venv and install basefuse into it (idempotent: reinstalls only when pyproject.toml changed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.basefuse-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "basefuse: installing into .venv (first time only)..." >&2
  .venv/bin/python -m pip install -q --upgrade pip
  # Pinned first: a CPU wheel of this release is on local disk here; an unpinned torch would pull a CUDA build.
  .venv/bin/python -m pip install -q "torch==${BASEFUSE_TORCH:-2.13.0}"
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi
