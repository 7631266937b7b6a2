#!/usr/bin/env bash
# The test suite: install what is needed, then run pytest. By default the fast suite (tests not marked slow, the
# guarantees included); `--all` runs the slow integration tests too; any other arguments go to pytest (e.g. `-m slow`
# for the slow ones only, `-q`, a test file).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=()
filter=(-m "not slow")
for a in "$@"; do
  case "$a" in
    --all) filter=() ;;
    -m|-m*) filter=(); args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
exec .venv/bin/python -m pytest ${filter[@]+"${filter[@]}"} ${args[@]+"${args[@]}"}
