#!/usr/bin/env bash
# Kill/resume soak test: trains one run, kills it with SIGKILL at random moments (during
# startup, resume, training, checkpointing), resumes it after every kill, and reports:
#   kills, successful resumes, checkpoints that failed to load (must be 0), work lost beyond
#   one checkpoint interval (must be 0), and whether the final parameters equal those of a run
#   never killed (the checkpoint checksum covers every tensor).
#
# Usage: scripts/soak.sh [KILLS] [AGENT]    (defaults: 100 reinforce; AGENT: reinforce|pathwise)
# Needs: a release build (cargo build --release), python3 (to read event files and headers).
set -euo pipefail

KILLS=${1:-100}
AGENT=${2:-reinforce}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RLPG="$ROOT/target/release/rlpg"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rlpg-soak.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

case "$AGENT" in
  reinforce)
    INTERVAL=5000
    ARGS=(train "$ROOT/configs/reinforce_cartpole.toml" --seed 4
          --set total_timesteps=3000000 --set "checkpoint_every=$INTERVAL"
          --set eval_every=100000 --set eval_episodes=2 --quiet)
    MAX_DELAY_MS=1000 ;;
  pathwise)
    INTERVAL=500
    ARGS=(train "$ROOT/configs/reinforce_cartpole.toml" --seed 4
          --set agent=pathwise --set env=Pendulum-v1 --set num_envs=2 --set normalize_obs=true
          --set total_timesteps=30000 --set "checkpoint_every=$INTERVAL"
          --set eval_every=5000 --set eval_episodes=1 --set pathwise.batch_size=64
          --set pathwise.buffer_size=20000 --quiet)
    MAX_DELAY_MS=2500 ;;
  *) echo "unknown agent $AGENT (reinforce or pathwise)" >&2; exit 2 ;;
esac

[ -x "$RLPG" ] || (cd "$ROOT" && cargo build --release --bin rlpg)
# A private copy: a rebuild during the soak must not change the binary between kills.
cp "$RLPG" "$WORK/rlpg"
RLPG="$WORK/rlpg"

# Largest step in a run's event files, and the tensor checksum of a checkpoint file.
probe() {
python3 - "$@" <<'PY'
import json, glob, os, struct, sys
def varint(b, i):
    v = s = 0
    while True:
        c = b[i]; i += 1; v |= (c & 0x7f) << s; s += 7
        if c < 0x80: return v, i
def last_step(run):
    best = 0
    for path in glob.glob(os.path.join(run, "events.out.tfevents.*")):
        b = open(path, "rb").read(); off = 0
        while off + 16 <= len(b):
            n = struct.unpack_from("<Q", b, off)[0]
            if off + 16 + n > len(b): break
            data = b[off + 12: off + 12 + n]; i = 0; step = 0
            while i < len(data):
                key, i = varint(data, i); wt = key & 7
                if wt == 0:
                    v, i = varint(data, i)
                    if key >> 3 == 2: step = v
                elif wt == 1: i += 8
                elif wt == 2:
                    n2, i = varint(data, i); i += n2
                elif wt == 5: i += 4
                else: break
            best = max(best, step); off += 16 + n
    return best
def checksum(path):
    b = open(path, "rb").read(); n = struct.unpack_from("<Q", b, 0)[0]
    header = json.loads(b[8:8 + n]); return json.loads(header["__metadata__"]["rlpg"])["checksum"]
if sys.argv[1] == "last-step": print(last_step(sys.argv[2]))
else: print(checksum(sys.argv[2]))
PY
}

# Checkpoint step of the run (0 if none), or "broken".
checkpoint_step() {
  "$RLPG" runs --dir "$WORK/runs" --json | python3 -c '
import json, sys
runs = json.load(sys.stdin); r = runs[0]
print("broken" if r["status"] == "broken" else r["steps"], r["status"])'
}

echo "soak: $KILLS kills of rlpg ($AGENT), checkpoint interval $INTERVAL steps, work dir $WORK"
"$RLPG" "${ARGS[@]}" --out "$WORK/runs" >/dev/null 2>"$WORK/resume.err" &
PID=$!
RUN=""
kills=0; resumes=0; failed_resumes=0; unloadable=0; lost_beyond=0; max_lost=0; completed_early=0
while [ "$kills" -lt "$KILLS" ]; do
  sleep "$(awk -v ms=$((RANDOM % MAX_DELAY_MS + 20)) 'BEGIN { print ms / 1000 }')"
  if ! kill -0 "$PID" 2>/dev/null; then
    # It ended before the kill: it must have finished the run, not failed.
    if wait "$PID"; then completed_early=1; else
      failed_resumes=$((failed_resumes + 1)); echo "kill $kills: rlpg failed:"; cat "$WORK/resume.err"; fi
  else
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  kills=$((kills + 1))
  [ -n "$RUN" ] || RUN=$(ls -d "$WORK"/runs/*/ 2>/dev/null | head -1)
  [ -n "$RUN" ] || { echo "kill $kills: killed before the run directory existed; restarting"; \
                     "$RLPG" "${ARGS[@]}" --out "$WORK/runs" >/dev/null 2>"$WORK/resume.err" & PID=$!; continue; }
  read -r step status < <(checkpoint_step)
  if [ "$step" = "broken" ]; then
    unloadable=$((unloadable + 1)); echo "kill $kills: run is BROKEN"; break
  fi
  if [ "$step" != "0" ] || [ -d "$RUN/checkpoints" ]; then
    "$RLPG" eval "$RUN" --checkpoint latest --episodes 1 >/dev/null 2>&1 \
      || { unloadable=$((unloadable + 1)); echo "kill $kills: newest checkpoint does not load"; }
  fi
  logged=$(probe last-step "$RUN")
  lost=$((logged > step ? logged - step : 0))
  [ "$lost" -gt "$max_lost" ] && max_lost=$lost
  [ "$lost" -gt "$INTERVAL" ] && { lost_beyond=$((lost_beyond + 1)); \
                                  echo "kill $kills: logged $logged but checkpoint at $step"; }
  [ "$status" = "complete" ] && { echo "run completed after $kills kills"; break; }
  [ "$kills" -lt "$KILLS" ] || break
  "$RLPG" train --resume "$RUN" --quiet >/dev/null 2>"$WORK/resume.err" &
  PID=$!
  resumes=$((resumes + 1))
done
# Finish the run and check it.
if [ "$(checkpoint_step | cut -d' ' -f2)" != "complete" ]; then
  if "$RLPG" train --resume "$RUN" --quiet >/dev/null 2>"$WORK/resume.err"; then :; else
    failed_resumes=$((failed_resumes + 1)); cat "$WORK/resume.err"; fi
fi
echo "final resume done; training the same run without kills for comparison"
"$RLPG" "${ARGS[@]}" --out "$WORK/full" >/dev/null 2>&1
FULL=$(ls -d "$WORK"/full/*/)
last_ckpt() { ls "$1"/checkpoints/step-*.safetensors | sort | tail -1; }
a=$(probe checksum "$(last_ckpt "$RUN")"); b=$(probe checksum "$(last_ckpt "$FULL")")
exact=$([ "$a" = "$b" ] && echo yes || echo "NO ($a vs $b)")
echo "kills: $kills  resumes: $resumes started, $((resumes - failed_resumes)) ran without error (killed or finished), $failed_resumes failed"
echo "unloadable newest checkpoints: $unloadable  kills losing more than one interval: $lost_beyond (max lost $max_lost steps, interval $INTERVAL)"
echo "final parameters equal to the never-killed run: $exact"
[ "$unloadable" -eq 0 ] && [ "$lost_beyond" -eq 0 ] && [ "$failed_resumes" -eq 0 ] && [ "$a" = "$b" ]
