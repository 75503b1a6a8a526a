#!/usr/bin/env bash
# Every test of the repository, from a machine with only Rust, Python 3 and pip:
#   1. libtorch (scripts/setup.sh, idempotent);
#   2. the Rust tests of every crate (`cargo test --workspace --release`);
#   3. the checks that need Python, each in its own pinned venv in the cache made on first use:
#      exports read by onnxruntime and numpy (scripts/check_policy_export.sh, on random-weight
#      fixtures of every head type and on real `rlpg export`s of a trained pathwise Pendulum run
#      and a masked REINFORCE Restock-v0 run), and event files
#      read by TensorBoard itself (scripts/check_tensorboard.sh);
#   4. examples/custom_env.rs, which asserts what it claims;
#   5. the custom-env template, copied outside the workspace, built and run there
#      (scripts/check_template.sh);
#   6. the `gymnasium` feature with its pinned venv (scripts/setup.sh --gymnasium): the bridge's
#      trajectories against Gymnasium's own, its errors, envs made from parallel threads, envs
#      in worker processes (the same results; a worker that raises, dies or hangs), and the CLI
#      with `gymnasium:<ID>` envs (worker processes, Ctrl-C, a killed worker).
# Stops at the first failure.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { echo "test.sh: $*" >&2; }

scripts/setup.sh
say "cargo test --workspace --release"
cargo test --workspace --release

out=$(mktemp -d "${TMPDIR:-/tmp}/rlpg-test.XXXXXX")
trap 'rm -rf "$out"' EXIT

say "examples/custom_env.rs: a user env checked, compared with a controller and trained"
# (run from the repository, whose .cargo/config.toml finds libtorch; the run lands in runs/)
cargo run --quiet --release --example custom_env

say "policy exports from Python (onnxruntime, numpy)"
run_dir=$(cargo run --quiet --release --bin rlpg -- train configs/pathwise_pendulum.toml \
  --set total_timesteps=2000 --set eval_every=1000 --set normalize_obs=true --quiet \
  --out "$out/runs" | tail -n 1)
cargo run --quiet --release --bin rlpg -- export "$run_dir" --out "$out/export"
masked_run=$(cargo run --quiet --release --bin rlpg -- train configs/reinforce_restock.toml \
  --set total_timesteps=4096 --set eval_every=0 --set checkpoint_every=0 --quiet \
  --out "$out/runs" | tail -n 1)
cargo run --quiet --release --bin rlpg -- export "$masked_run" --out "$out/export-masked"
pathwise_masked_run=$(cargo run --quiet --release --bin rlpg -- train configs/pathwise_restock.toml \
  --set total_timesteps=600 --set pathwise.learning_starts=100 --set eval_every=0 \
  --set checkpoint_every=0 --quiet --out "$out/runs" | tail -n 1)
cargo run --quiet --release --bin rlpg -- export "$pathwise_masked_run" \
  --out "$out/export-pathwise-masked"
scripts/check_policy_export.sh "$out/export" "$out/export-masked" "$out/export-pathwise-masked"

say "event files read by TensorBoard"
scripts/check_tensorboard.sh

say "the custom-env template, outside the workspace"
scripts/check_template.sh

say "the gymnasium feature (its venv from scripts/setup.sh --gymnasium)"
scripts/setup.sh --gymnasium
cargo test --release -p rlpg-envs --features gymnasium --test gymnasium --test gymnasium_threads \
  --test gymnasium_workers
cargo test --release -p rlpg --features gymnasium --test cli_gymnasium

say "all tests passed"
