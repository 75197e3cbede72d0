#!/usr/bin/env bash
# Checks the Python client: lint, format, strict types, and its tests against the real
# server binary ($FLOWLAB_BIN, by default target/debug/flowlab as `cargo test` builds it).
# Creates clients/python/.venv on first use; later runs reuse it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
export FLOWLAB_BIN="${FLOWLAB_BIN:-$repo_root/target/debug/flowlab}"
python="${PYTHON:-python3}"
venv="$here/.venv"

if [[ ! -x "$FLOWLAB_BIN" ]]; then
    echo "ci.sh: no server binary at $FLOWLAB_BIN (run cargo build, or set FLOWLAB_BIN)" >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet -e "$here[test]"

cd "$here"
"$venv/bin/ruff" check src tests examples
"$venv/bin/ruff" format --check src tests examples
"$venv/bin/mypy" --strict src/flowlab examples tests
"$venv/bin/python" -m pytest "$@"
