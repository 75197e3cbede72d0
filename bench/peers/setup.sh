#!/usr/bin/env bash
# Creates the Python environments of the peer libraries that compare.sh measures.
#   setup.sh [torchgfn|gfnx]...     (both when none is named)
# Environments go under $FLOWLAB_PEERS_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/flowlab-peers);
# $TORCHGFN_VENV / $GFNX_VENV override each one; $PYTHON picks the interpreter (3.10+).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${FLOWLAB_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flowlab-peers}
python=${PYTHON:-python3}

make_venv() { # name dir
  local name=$1 dir=$2
  echo "== $name -> $dir" >&2
  "$python" -m venv "$dir"
  "$dir/bin/pip" install --quiet --upgrade pip
  "$dir/bin/pip" install --quiet -r "$here/requirements-$name.txt"
  # What actually resolved, to quote beside the figures.
  "$dir/bin/pip" freeze >"$dir/freeze.txt"
  "$dir/bin/python" "$here/hypergrid_$name.py" --version >&2
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(torchgfn gfnx)
for t in "${targets[@]}"; do
  case $t in
    # torch's Linux wheel on PyPI is the CUDA build and pulls ~5 GB of nvidia-* wheels;
    # the benchmark only uses its CPU path.
    torchgfn) make_venv torchgfn "${TORCHGFN_VENV:-$root/torchgfn}" ;;
    gfnx) make_venv gfnx "${GFNX_VENV:-$root/gfnx}" ;;
    *) echo "unknown peer: $t (torchgfn or gfnx)" >&2; exit 2 ;;
  esac
done
