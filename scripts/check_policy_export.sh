#!/usr/bin/env bash
# The Python side of policy exports: policy.onnx (onnxruntime) and policy.json +
# policy.safetensors (numpy) must reproduce rlpg-policy's actions on 10,000 random observations,
# for every head type (exports with random weights written by rlpg-policy's
# `write_check_fixtures` example) and for each export directory given (e.g. from `rlpg export`).
#
#   scripts/check_policy_export.sh [--latency] [EXPORT_DIR...]
#
# The venv lives in ${RLPG_CACHE:-$HOME/.cache/rlpg}/venv-export-check, made from the exact pins
# of scripts/requirements-export-check.txt and remade only when they change. Needs no libtorch.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${RLPG_CACHE:-$HOME/.cache/rlpg}
venv=$cache/venv-export-check
requirements=$repo/scripts/requirements-export-check.txt

latency=()
exports=()
for arg in "$@"; do
  case "$arg" in
    --latency) latency=(--latency) ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) exports+=("$(cd "$arg" && pwd)") ;;
  esac
done

stamp=$venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "check_policy_export.sh: creating $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi

fixtures=$(mktemp -d "${TMPDIR:-/tmp}/rlpg-export-check.XXXXXX")
trap 'rm -rf "$fixtures"' EXIT
(cd "$repo" && cargo run --quiet --release -p rlpg-policy --example write_check_fixtures -- \
  "$fixtures" "${exports[@]}" >/dev/null)
"$venv/bin/python" "$repo/scripts/check_policy_export.py" "$fixtures" "${latency[@]}"
