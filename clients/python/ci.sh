#!/usr/bin/env bash
# Checks the Python client: lint, format, strict types, and its tests against the real
# server binary ($FLOWLAB_BIN, by default target/debug/flowlab as `cargo test` builds it).
# Creates its virtual environment on first use, outside the repository (third-party packages
# do not belong in the project's tree), and reuses it later: $FLOWLAB_PYTHON_VENV, by
# default ~/.cache/flowlab/python-venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
export FLOWLAB_BIN="${FLOWLAB_BIN:-$repo_root/target/debug/flowlab}"
python="${PYTHON:-python3}"
venv="${FLOWLAB_PYTHON_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flowlab/python-venv}"

if [[ ! -x "$FLOWLAB_BIN" ]]; then
    echo "ci.sh: no server binary at $FLOWLAB_BIN (run cargo build, or set FLOWLAB_BIN)" >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet -e "$here[test]"

# The tools' caches live beside the environment, out of the repository's tree too.
export MYPY_CACHE_DIR="$venv/cache/mypy" RUFF_CACHE_DIR="$venv/cache/ruff"
cd "$here"
"$venv/bin/ruff" check src tests examples
"$venv/bin/ruff" format --check src tests examples
"$venv/bin/mypy" --strict src/flowlab examples tests
"$venv/bin/python" -m pytest -o cache_dir="$venv/cache/pytest" "$@"
