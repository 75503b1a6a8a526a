#!/usr/bin/env bash
# Idempotent setup of libtorch 2.13.0 (the version tch 0.26 requires) from PyPI's torch wheel.
#
#   scripts/setup.sh          CPU libtorch (default): ~540 MB download, ~490 MB on disk
#   scripts/setup.sh --cuda   full torch wheel with CUDA in a venv (~2.7 GB download, 4.7 GB on disk)
#   scripts/setup.sh --gymnasium   also make the venv of the `gymnasium` feature (Gymnasium with
#                             Box2D, pinned) in the cache, where rlpg finds it at run time
#   scripts/setup.sh --mujoco      --gymnasium, plus MuJoCo in that venv (gymnasium[mujoco]:
#                             HalfCheetah-v5, Hopper-v5, ...); a later plain --gymnasium keeps it
#   scripts/setup.sh --project DIR   also set up the Cargo project in DIR (a crate outside this
#                             repository that depends on rlpg) to build and run against it
#
# The wheels and the extracted libtorch live in a cache outside the source tree
# ($RLPG_CACHE, default ${XDG_CACHE_HOME:-$HOME/.cache}/rlpg); a second run downloads nothing.
# The repository gets one ignored symlink, `.libtorch`, pointing at the chosen variant;
# `.cargo/config.toml` points LIBTORCH at it and the build scripts of `rlpg` and
# `rlpg-agents` bake an rpath into every binary, so nothing needs LD_LIBRARY_PATH.
#
# --project DIR writes a marked block into DIR/.cargo/config.toml: `[env] LIBTORCH` (the same
# path this repository builds with, so a shared target directory never rebuilds torch-sys) and,
# for the host target, `rustflags` with an rpath to libtorch's library folder (plus
# `--no-as-needed -ltorch_cuda` for the CUDA variant). That is the one step an outside crate
# needs: build scripts cannot pass linker arguments on to a dependent's binaries, and only a
# direct dependent of torch-sys sees where libtorch is. Rerunning updates the block in place; a
# config.toml that already sets `[env]` or that target's table outside the block is left alone
# (the script says what to add by hand). RUSTFLAGS in the environment overrides config rustflags.
# A project without a Cargo.lock gets a copy of this repository's: cargo keeps every entry that
# still fits and resolves only the project's own packages, so rlpg and its dependencies build
# with the versions rlpg is tested with (on its own, cargo would pick the newest semver-compatible
# ones). A project with a Cargo.lock keeps it; the script prints how to take rlpg's versions.
set -euo pipefail

TORCH_VERSION=2.13.0
# CUDA runtime libraries that libtorch_cpu.so links against even on CPU (see shared LIBTORCH notes).
CUDA_RUNTIME=nvidia-cuda-runtime==13.0.96
CUDA_CUPTI=nvidia-cuda-cupti==13.0.85

variant=cpu
project=""
gymnasium=false
mujoco=false
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) variant=cuda ;;
    --cpu) variant=cpu ;;
    --gymnasium) gymnasium=true ;;
    --mujoco) gymnasium=true; mujoco=true ;;
    --project)
      [ $# -ge 2 ] || { echo "setup.sh: --project needs a directory" >&2; exit 2; }
      project=$2; shift ;;
    --project=*) project=${1#--project=} ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$1' (expected --cpu, --cuda, --gymnasium, --mujoco or --project DIR)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$project" ]; then
  [ -f "$project/Cargo.toml" ] || { echo "setup.sh: --project $project: no Cargo.toml there (run 'cargo new' first)" >&2; exit 2; }
  project=$(cd "$project" && pwd)
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${RLPG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rlpg}

die() { echo "setup.sh: error: $*" >&2; exit 1; }

python=""
for candidate in python3 python; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
    python=$candidate
    break
  fi
done
[ -n "$python" ] || die "Python 3 (3.8 or newer) is required to fetch libtorch from PyPI, and was not found on PATH. Install Python 3 and pip, then rerun."
"$python" -m pip --version >/dev/null 2>&1 || die "pip is not available for $python. Install it (e.g. 'apt-get install python3-pip' or '$python -m ensurepip --user'), then rerun."

mkdir -p "$cache"

if [ "$variant" = cpu ]; then
  dest="$cache/libtorch-$TORCH_VERSION-cpu"
  if [ ! -f "$dest/.complete" ]; then
    wheels="$cache/wheels"
    mkdir -p "$wheels"
    echo "setup.sh: fetching torch==$TORCH_VERSION (CPU libraries only are kept) into $wheels" >&2
    # The libtorch inside the wheel does not depend on the Python version: pin one wheel so the
    # result is the same whatever Python runs this script.
    "$python" -m pip download --quiet --no-deps --only-binary=:all: \
      --python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
      -d "$wheels" "torch==$TORCH_VERSION"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: \
      --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 --platform manylinux_2_17_x86_64 \
      -d "$wheels" "$CUDA_RUNTIME" "$CUDA_CUPTI"
    tmp="$dest.partial.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    echo "setup.sh: extracting libtorch into $dest" >&2
    "$python" - "$wheels" "$tmp" "$TORCH_VERSION" <<'PY'
import glob, os, sys, zipfile
wheels, out, version = sys.argv[1:]
def pick(pattern):
    found = sorted(glob.glob(os.path.join(wheels, pattern)))
    if not found:
        sys.exit(f"setup.sh: error: no wheel matching {pattern} in {wheels}")
    return found[-1]
with zipfile.ZipFile(pick(f"torch-{version}-*.whl")) as z:
    for name in z.namelist():
        if name.startswith(("torch/lib/", "torch/include/")):
            z.extract(name, out)
for pattern, lib in [("nvidia_cuda_runtime-*.whl", "libcudart.so.13"), ("nvidia_cuda_cupti-*.whl", "libcupti.so.13")]:
    with zipfile.ZipFile(pick(pattern)) as z:
        z.extract(f"nvidia/cu13/lib/{lib}", out)
# zipfile does not keep permissions; shared libraries need to be readable and executable.
for root, _, files in os.walk(out):
    for f in files:
        os.chmod(os.path.join(root, f), 0o755 if ".so" in f else 0o644)
PY
    # Keep torch-sys from linking the CUDA half of libtorch: the CPU build only needs these gone.
    rm -f "$tmp"/torch/lib/libtorch_cuda*.so "$tmp"/torch/lib/libc10_cuda.so \
      "$tmp"/torch/lib/libtorch_nvshmem.so "$tmp"/torch/lib/libcaffe2_nvrtc.so \
      "$tmp"/torch/lib/libtorch_python.so
    echo "$TORCH_VERSION" > "$tmp/torch/build-version"
    touch "$tmp/.complete"
    rm -rf "$dest"
    mv "$tmp" "$dest"
  fi
else
  venv="$cache/torch-$TORCH_VERSION-cuda-venv"
  if [ ! -f "$venv/.complete" ]; then
    echo "setup.sh: installing torch==$TORCH_VERSION with CUDA into $venv (about 2.7 GB)" >&2
    "$python" -m venv "$venv" || die "could not create a venv with $python (on Debian: apt-get install python3-venv)"
    "$venv/bin/python" -m pip install --quiet "torch==$TORCH_VERSION"
    touch "$venv/.complete"
  fi
  site=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
  dest="$cache/libtorch-$TORCH_VERSION-cuda"
  # torch/ and nvidia/ side by side, as libtorch's own RPATH expects.
  mkdir -p "$dest"
  ln -sfn "$site/torch" "$dest/torch"
  ln -sfn "$site/nvidia" "$dest/nvidia"
fi

link="$repo/.libtorch"
previous=$(readlink "$link" 2>/dev/null || true)
if [ "$previous" != "$dest" ]; then
  ln -sfn "$dest" "$link"
  # torch-sys only rebuilds when LIBTORCH's value changes; the value stays `.libtorch/torch`, so a
  # switch between variants must drop the stale build explicitly.
  if [ -n "$previous" ] && [ -d "$repo/target" ] && command -v cargo >/dev/null 2>&1; then
    (cd "$repo" && cargo clean --quiet -p torch-sys) || true
  fi
fi
echo "setup.sh: libtorch $TORCH_VERSION ($variant) ready at $dest" >&2

# The `gymnasium` feature's Python: a venv in the cache with Gymnasium (and Box2D for LunarLander)
# pinned. rlpg looks for it there at run time (unless RLPG_PYTHON or VIRTUAL_ENV says otherwise).
# Its interpreter must be the Python whose libpython rlpg links (pyo3 takes `python3` on PATH, or
# PYO3_PYTHON), so the venv is made with the same `python3`. The marker holds the pins: changing
# them here remakes the venv.
if $gymnasium; then
  GYMNASIUM_PINS="gymnasium[box2d]==1.4.0 numpy==2.4.6"
  gym_python=${PYO3_PYTHON:-python3}
  venv="$cache/gymnasium-venv"
  if [ "$(cat "$venv/.complete" 2>/dev/null)" != "$GYMNASIUM_PINS" ]; then
    echo "setup.sh: installing $GYMNASIUM_PINS into $venv" >&2
    rm -rf "$venv"
    "$gym_python" -m venv "$venv" || die "could not create a venv with $gym_python (on Debian: apt-get install python3-venv)"
    # shellcheck disable=SC2086 # the pins are separate words
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $GYMNASIUM_PINS \
      || die "pip could not install $GYMNASIUM_PINS into $venv"
    echo "$GYMNASIUM_PINS" > "$venv/.complete"
  fi
  # MuJoCo on top, with its own marker: remade with the venv, kept by a plain --gymnasium.
  # MuJoCo itself is pinned too: the extra alone takes the newest release, and the HalfCheetah
  # numbers in the README were measured with 4.0.0.
  MUJOCO_PINS="gymnasium[mujoco]==1.4.0 mujoco==4.0.0"
  if $mujoco && [ "$(cat "$venv/.mujoco" 2>/dev/null)" != "$MUJOCO_PINS" ]; then
    echo "setup.sh: installing $MUJOCO_PINS into $venv" >&2
    # shellcheck disable=SC2086 # the pins are separate words
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $MUJOCO_PINS numpy==2.4.6 \
      || die "pip could not install $MUJOCO_PINS into $venv"
    echo "$MUJOCO_PINS" > "$venv/.mujoco"
  fi
  echo "setup.sh: gymnasium venv ready at $venv ($("$venv/bin/python" -c 'import gymnasium; print("gymnasium", gymnasium.__version__)'))" >&2
fi

# Writes (or rewrites) the marked block of "$project/.cargo/config.toml".
configure_project() {
  local config="$project/.cargo/config.toml" begin="# >>> rlpg scripts/setup.sh >>>" end="# <<< rlpg scripts/setup.sh <<<"
  local host lib block rest
  host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
  [ -n "$host" ] || die "--project: rustc not found on PATH (install Rust with rustup first)"
  # The repository's own path to libtorch, exactly as its .cargo/config.toml resolves it: the same
  # LIBTORCH value in both keeps torch-sys from rebuilding when they share a target directory.
  lib="$repo/.libtorch/torch/lib"
  local flags="\"-C\", \"link-arg=-Wl,-rpath,$lib\""
  if [ "$variant" = cuda ]; then
    # Without --no-as-needed the linker drops libtorch_cuda (nothing names its symbols) and CUDA
    # reports unavailable; -L lets build scripts and proc macros link it too.
    flags="$flags, \"-C\", \"link-arg=-L$lib\", \"-C\", \"link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed\""
  fi
  block="$begin
# Written by $repo/scripts/setup.sh --project; rerun it to update. Edit outside this block.
[env]
LIBTORCH = \"$repo/.libtorch/torch\"

[target.$host]
rustflags = [$flags]
$end"
  mkdir -p "$project/.cargo"
  if [ -f "$config" ] && grep -qxF "$begin" "$config"; then
    rest=$(awk -v b="$begin" -v e="$end" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$config")
  elif [ -f "$config" ]; then
    if grep -qE "^[[:space:]]*\[(env|target\.$host|target\.'$host'|target\.\"$host\")\]" "$config"; then
      die "--project: $config already has an [env] or [target.$host] table that setup.sh did not write; add these lines to it by hand:
$block"
    fi
    rest=$(cat "$config")
  else
    rest=""
  fi
  { [ -n "$rest" ] && printf '%s\n\n' "$rest"; printf '%s\n' "$block"; } > "$config.tmp.$$"
  mv "$config.tmp.$$" "$config"
  echo "setup.sh: $config now points the project at libtorch $TORCH_VERSION ($variant)" >&2
}
# Starts the project's Cargo.lock from this repository's (see the header).
pin_project_versions() {
  local lock="$project/Cargo.lock"
  if [ -f "$lock" ]; then
    echo "setup.sh: $lock exists and is kept; to build with the versions rlpg is tested with, replace it with $repo/Cargo.lock (cargo then resolves only your own packages)" >&2
  else
    cp "$repo/Cargo.lock" "$lock"
    echo "setup.sh: $lock starts from rlpg's, so rlpg's dependencies keep the versions it is tested with; commit it" >&2
  fi
}
if [ -n "$project" ]; then
  configure_project
  pin_project_versions
fi
