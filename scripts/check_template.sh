#!/usr/bin/env bash
# CI check of templates/custom-env as a user gets it: copied outside this repository, set up with
# the one documented step (scripts/setup.sh --project), then trained, listed, evaluated, resumed,
# exported and deployed with `cargo run --release` in its folder. Exits non-zero on the first
# wrong exit code or output.
#
#   scripts/check_template.sh          (CARGO_TARGET_DIR defaults to this repository's target/,
#                                       so the copy reuses the dependencies CI already built)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
bin=$CARGO_TARGET_DIR/release

fail() { echo "check_template: FAILED: $*" >&2; exit 1; }
# Runs a command, checks its exit code, keeps its stdout in $out and stderr in $err.
expect() {
  local want=$1; shift
  local code=0
  "$@" >"$work/stdout" 2>"$work/stderr" || code=$?
  out=$(cat "$work/stdout"); err=$(cat "$work/stderr")
  if [ "$code" != "$want" ]; then
    echo "--- stdout"; echo "$out"; echo "--- stderr"; echo "$err" | tail -20
    fail "'$*' exited with $code, expected $want"
  fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
project=$work/custom-env
mkdir -p "$project"
# The template's files only (not a build, runs or a setup made inside the repository).
(cd "$repo/templates/custom-env" && tar -c --exclude=./target --exclude=./.cargo --exclude=./runs \
  --exclude=./exports --exclude=./Cargo.lock .) | tar -x -C "$project"
# The two dependency paths the template's README says to point at your rlpg checkout.
sed -i "s|path = \"../..\"|path = \"$repo\"|" "$project/Cargo.toml"
sed -i "s|path = \"../../../policy\"|path = \"$repo/policy\"|" "$project/deploy/Cargo.toml"
grep -q "path = \"$repo\"" "$project/Cargo.toml" || fail "could not point Cargo.toml at $repo"
grep -q "path = \"$repo/policy\"" "$project/deploy/Cargo.toml" || fail "could not point deploy/Cargo.toml at $repo/policy"
# The one setup step (it also starts the project's Cargo.lock from the repository's).
"$repo/scripts/setup.sh" --project "$project"
cd "$project"
echo "check_template: building $project (target dir $CARGO_TARGET_DIR)" >&2
cargo build --release --workspace

# Every package the project shares with rlpg has rlpg's version (without the lock file setup.sh
# starts from, cargo picks the newest compatible versions: 23 of 177 differed in issue #30).
packages() { awk '/^name = /{n=$3} /^version = /{print n, $3}' "$1" | tr -d '"' | sort -u; }
packages "$repo/Cargo.lock" >"$work/ours"
packages Cargo.lock >"$work/theirs"
differ=$(join <(cut -d' ' -f1 "$work/ours" | sort -u) <(sort "$work/theirs") | sort | comm -23 - "$work/ours")
[ -z "$differ" ] || fail "the project resolved other versions than rlpg's Cargo.lock: $differ"

expect 0 cargo run --release -q -- train configs/grid_reach.toml --quiet
run=$(echo "$out" | tail -1)
[ -d "$run/checkpoints" ] || fail "train did not print a run directory as its last line: $out"
echo "check_template: trained $run: $(echo "$out" | head -1)" >&2

# The binary itself, outside cargo and without LD_LIBRARY_PATH: the rpath finds libtorch.
expect 0 env -u LD_LIBRARY_PATH "$bin/custom-env" runs
echo "$out" | grep -q "GridReach-v0" || fail "'runs' does not list the GridReach-v0 run: $out"
echo "$out" | grep -q "complete" || fail "'runs' does not show the run complete: $out"
runs_table=$out

expect 0 cargo run --release -q -- eval "$run" --episodes 5
echo "$out" | grep -q "^mean return .* over 5 episodes" || fail "eval printed: $out"
eval_line=$out

# Resuming a finished run is refused as bad input.
expect 2 cargo run --release -q -- train --resume "$run"
echo "$err" | grep -q "nothing to resume" || fail "resume of a complete run said: $err"

expect 0 cargo run --release -q -- export "$run" --out exports/grid_reach
for f in policy.json policy.safetensors policy.onnx; do
  [ -f "exports/grid_reach/$f" ] || fail "export wrote no $f"
done
expect 0 cargo run --release -q -p deploy -- exports/grid_reach
echo "$out" | grep -q "walks right in every cell" || fail "deploy printed: $out"
# The deployed program links no libtorch.
if ldd "$bin/deploy" | grep -q torch; then fail "deploy links libtorch: $(ldd "$bin/deploy")"; fi

echo "check_template: runs:" >&2; echo "$runs_table" >&2
echo "check_template: eval: $eval_line" >&2
echo "check_template: ok (template built and run in $project)" >&2
