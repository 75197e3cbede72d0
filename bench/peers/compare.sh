#!/usr/bin/env bash
# Runs flowlab and the peer libraries in turns on the same HyperGrid TB settings.
#   compare.sh FLOWLAB_BINARY [TRAJECTORIES=16000] [PAIRS=3]
# Pair i uses seed i for every library; the order rotates from pair to pair so that no
# library always runs first (or right after another's heavy start-up). Peers whose
# environment setup.sh has not created are skipped. Each run's JSON and stderr are kept in
# $COMPARE_OUT (default: a fresh temporary directory). Extra flags: $FLOWLAB_ARGS for flowlab,
# $PEER_ARGS for both peer scripts.
set -euo pipefail
if [ $# -lt 1 ]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
flowlab=$1
trajectories=${2:-16000}
pairs=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=${FLOWLAB_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flowlab-peers}
out=${COMPARE_OUT:-$(mktemp -d -t flowlab-peers.XXXXXX)}
mkdir -p "$out"

# One thread each: flowlab's matrix products (rayon), torch (set again in its script), and
# XLA's CPU client (its Eigen pool; the flags must be in the environment before JAX starts).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export JAX_PLATFORMS=cpu XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

libs=(flowlab)
for peer in torchgfn gfnx; do
  var=$(echo "${peer}_VENV" | tr '[:lower:]' '[:upper:]')
  venv=${!var:-$root/$peer}
  if [ -x "$venv/bin/python" ]; then
    libs+=("$peer")
    declare "python_$peer=$venv/bin/python"
  else
    echo "skipping $peer: no environment at $venv (run setup.sh $peer)" >&2
  fi
done

common=(--dims 4 --size 8 --r0 0.1 --batch 16 --hidden 256 --layers 2 --lr 1e-3 --lr-logz 0.1
        --trajectories "$trajectories")

run_one() { # lib seed -> writes $out/lib-seed.json, prints one line
  local lib=$1 seed=$2 json=$out/$1-$2.json
  # A failed run stops the comparison: a summary over fewer runs would mislead.
  trap 'echo "$lib seed $seed failed; see $out/$lib-$seed.log" >&2' ERR
  if [ "$lib" = flowlab ]; then
    # shellcheck disable=SC2086  # FLOWLAB_ARGS is a list of flags
    "$flowlab" bench gfn --space grid --objective tb "${common[@]}" --seed "$seed" ${FLOWLAB_ARGS:-} \
      2>"$out/$lib-$seed.log" | tail -n 1 >"$json"
  else
    local py=python_$lib
    # shellcheck disable=SC2086
    "${!py}" "$here/hypergrid_$lib.py" "${common[@]}" --seed "$seed" ${PEER_ARGS:-} \
      2>"$out/$lib-$seed.log" | tail -n 1 >"$json"
  fi
  python3 - "$lib" "$seed" "$json" <<'EOF'
import json, sys
lib, seed, path = sys.argv[1:]
r = json.load(open(path))
print(f"{lib:9} seed {seed}: {r['trajectories_per_second']:9.0f} traj/s  l1 {r['l1']:.4f}  "
      f"modes {r['modes_found']}/{r['modes_total']}  peak RSS {r['peak_rss_bytes'] / 2**20:6.0f} MiB", flush=True)
EOF
}

echo "results in $out" >&2
for ((i = 1; i <= pairs; i++)); do
  n=${#libs[@]}
  for ((k = 0; k < n; k++)); do
    run_one "${libs[$(((i - 1 + k) % n))]}" "$i"
  done
done

python3 - "$out" "$pairs" "${libs[@]}" <<'EOF'
import json, statistics, sys
out, pairs, libs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = {lib: [json.load(open(f"{out}/{lib}-{i}.json")) for i in range(1, pairs + 1)] for lib in libs}
med = lambda xs: statistics.median(xs)
print(f"\nmedians over {pairs} pair(s):")
for lib in libs:
    r = runs[lib]
    print(f"  {lib:9} {med([x['trajectories_per_second'] for x in r]):9.0f} traj/s  "
          f"l1 {med([x['l1'] for x in r]):.4f}  peak RSS {med([x['peak_rss_bytes'] for x in r]) / 2**20:.0f} MiB")
# Ratios pair by pair: the runs of one pair share the machine's state of the moment.
for peer in libs[1:]:
    ratios = [f["trajectories_per_second"] / p["trajectories_per_second"] for f, p in zip(runs["flowlab"], runs[peer])]
    print(f"  speed flowlab/{peer}: {med(ratios):.2f}x (pairs: {', '.join(f'{x:.2f}' for x in ratios)})")
if {"torchgfn", "gfnx"} <= set(libs):
    ratios = [g["trajectories_per_second"] / t["trajectories_per_second"] for g, t in zip(runs["gfnx"], runs["torchgfn"])]
    print(f"  speed gfnx/torchgfn: {med(ratios):.2f}x")
EOF
