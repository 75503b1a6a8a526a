#!/usr/bin/env bash
# The `gymnasium` bridge's overhead: env-steps/s of gymnasium:ID through rlpg's VecEnv against
# the same envs stepped by Python (a plain loop, the env's own step time) and by Gymnasium's
# SyncVectorEnv, with the same number of envs. The two sides alternate for SEEDS repetitions (5 by
# default) so that both see the same machine load; the medians over the repetitions are printed
# with the bridge's added time per env-step (1/bridge - 1/python loop, in µs).
#
#   benches/peers/bridge_overhead.sh [ID=CartPole-v1] [NUM_ENVS=8] [BATCH_STEPS=5000] [SEEDS=5]
#
# Needs the venv of scripts/setup.sh --gymnasium (its Python runs the peer side).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
id=${1:-CartPole-v1}; n=${2:-8}; steps=${3:-5000}; reps=${4:-5}
py=${RLPG_PYTHON:-${RLPG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rlpg}/gymnasium-venv/bin/python}
[ -x "$py" ] || { echo "bridge_overhead.sh: no $py; run scripts/setup.sh --gymnasium" >&2; exit 2; }
cargo build --quiet --release -p rlpg-envs --features gymnasium --example bridge_overhead
bin=${CARGO_TARGET_DIR:-target}/release/examples/bridge_overhead
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for rep in $(seq "$reps"); do
  echo "bridge_overhead.sh: repetition $rep of $reps" >&2
  "$py" benches/peers/bridge_overhead.py --env "$id" --num-envs "$n" --batch-steps "$steps" --rounds 1 >> "$out"
  "$bin" "$id" "$n" "$steps" 1 >> "$out"
done
"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
med = {}
for side in ["python loop", "Gymnasium SyncVectorEnv", "rlpg VecEnv over the bridge"]:
    values = [r["median"] for r in rows if r["side"] == side]
    med[side] = statistics.median(values)
    print(f"{side:30s} median {med[side]:>10.0f} env-steps/s over {len(values)} repetitions: {[round(v) for v in values]}")
over = 1e6 / med["rlpg VecEnv over the bridge"] - 1e6 / med["python loop"]
print(f"bridge overhead per env-step vs the Python loop: {over:+.2f} µs "
      f"(python loop {1e6 / med['python loop']:.2f} µs, bridge {1e6 / med['rlpg VecEnv over the bridge']:.2f} µs, "
      f"SyncVectorEnv {1e6 / med['Gymnasium SyncVectorEnv']:.2f} µs per env-step)")
PY
