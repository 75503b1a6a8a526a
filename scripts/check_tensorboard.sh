#!/usr/bin/env bash
# TensorBoard itself reads what rlpg writes: trains a small CartPole run with evaluation videos,
# then loads its event file with TensorBoard's data layer (EventAccumulator and the hparams
# plugin's own parser) and checks the scalars, the config text, the HParams session start and
# end, and the animated GIFs in the Images dashboard (scripts/check_tensorboard.py).
#
#   scripts/check_tensorboard.sh [RUN_DIR]   (with RUN_DIR: check that run instead of training)
#
# The venv lives in ${RLPG_CACHE:-$HOME/.cache/rlpg}/venv-tensorboard, made from the exact pins
# of scripts/requirements-tensorboard-check.txt and remade only when they change.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${RLPG_CACHE:-$HOME/.cache/rlpg}
venv=$cache/venv-tensorboard
requirements=$repo/scripts/requirements-tensorboard-check.txt

case "${1:-}" in
  -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
esac

stamp=$venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "check_tensorboard.sh: creating $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi

if [[ $# -ge 1 ]]; then
  run_dir=$1
else
  out=$(mktemp -d "${TMPDIR:-/tmp}/rlpg-tensorboard-check.XXXXXX")
  trap 'rm -rf "$out"' EXIT
  run_dir=$(cd "$repo" && cargo run --quiet --release --bin rlpg -- train --quiet \
    configs/reinforce_cartpole.toml --set total_timesteps=20000 --set eval_every=10000 \
    --set log_every=2000 --set capture_video_every=10000 --out "$out" | tail -n 1)
fi
"$venv/bin/python" "$repo/scripts/check_tensorboard.py" "$run_dir"
