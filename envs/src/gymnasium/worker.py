# A worker process of rlpg's Gymnasium bridge (envs/src/gymnasium_workers.rs): it makes a range of
# the vector env's envs with gymnasium.make and steps them on command. Run by the venv's own
# Python as `python -c <this file> <config JSON>`; never imported.
#
# Protocol: one command per line on stdin, one reply line on the protocol pipe (the process's
# original stdout; the env's own prints go to stderr):
#   step            step every env with its action from shared memory; reset those whose episode
#                   ended (continuing their random stream)
#   reset SEED      reset env i with seed SEED + i (modulo 2**64)
#   reset           reset every env without a seed
#   close           exit
# Replies: "ok" or "err <JSON list of {env, during, kind, message}>". Observations, rewards and
# end flags go to shared memory (the file config["shm"], mapped by both processes); before each
# env steps, its index goes into this worker's `current` slot, so that if the process dies the
# parent can name the env.

import json
import os
import signal
import sys
import traceback


def main():
    config = json.loads(sys.argv[1])
    # Ctrl-C goes to rlpg, which finishes its step, saves and then closes the workers; a worker
    # must not die of it in the middle of a step. The parent's death ends the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(text):
        proto.write(text + "\n")
        proto.flush()

    try:
        worker = Worker(config)
    except Exception as e:
        reply("err " + json.dumps([error(config["first"], "make", "exception", e)]))
        return
    reply("ready")
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "close":
            break
        if words[0] == "step":
            errors = worker.step()
        elif words[0] == "reset":
            errors = worker.reset(int(words[1]) if len(words) > 1 else None)
        else:
            errors = [error(config["first"], "command", "exception", ValueError(line))]
        reply("err " + json.dumps(errors) if errors else "ok")


def describe(e):
    """`Type: message (at file:line in function)`, as the in-process bridge describes errors."""
    name = type(e).__name__
    module = type(e).__module__
    if module not in (None, "builtins"):
        name = module + "." + name
    where = ""
    tb = traceback.extract_tb(e.__traceback__)
    if tb:
        frame = tb[-1]
        where = " (at %s:%d in %s)" % (frame.filename, frame.lineno, frame.name)
    message = str(e)
    return "%s: %s%s" % (name, message, where) if message else name + where


def error(env, during, kind, e):
    return {"env": env, "during": during, "kind": kind, "message": describe(e)}


class Worker:
    def __init__(self, config):
        import mmap

        import gymnasium
        import numpy as np

        self.np = np
        self.first = config["first"]
        count, n = config["count"], config["num_envs"]
        obs_dim, act_dim = config["obs_dim"], config["act_dim"]
        with open(config["shm"], "r+b") as f:
            self.mm = mmap.mmap(f.fileno(), config["size"])
        offsets = config["offsets"]

        def view(name, dtype, shape):
            size = int(np.prod(shape))
            return np.frombuffer(self.mm, dtype, size, offsets[name]).reshape(shape)

        self.act_f32 = view("act_f32", np.float32, (n, max(act_dim, 1)))
        self.act_i64 = view("act_i64", np.int64, (n,))
        self.next_obs = view("next_obs", np.float32, (n, obs_dim))
        self.reset_obs = view("reset_obs", np.float32, (n, obs_dim))
        self.rewards = view("rewards", np.float64, (n,))
        self.flags = view("flags", np.uint8, (n,))
        self.current = view("current", np.int64, (config["workers"],))
        self.slot = config["worker"]
        kwargs = json.loads(config["kwargs"])
        self.envs = [gymnasium.make(config["gym_id"], **kwargs) for _ in range(count)]
        env = self.envs[0]
        self.obs_start = self.start(env.observation_space)
        self.act_start = self.start(env.action_space)
        self.act_space = env.action_space
        self.act_dim = act_dim

    def start(self, space):
        from gymnasium import spaces

        return int(space.start) if isinstance(space, spaces.Discrete) else None

    def action(self, i):
        if self.act_start is not None:
            return int(self.act_i64[i]) + self.act_start
        sp = self.act_space
        # A copy, shaped as the space: an env may keep the action it was given.
        return self.np.array(self.act_f32[i, : self.act_dim], dtype=sp.dtype).reshape(sp.shape)

    def write_obs(self, rows, i, obs):
        if self.obs_start is not None:
            rows[i, 0] = int(obs) - self.obs_start
        else:
            rows[i] = self.np.asarray(obs, dtype=self.np.float32).ravel()

    def reset(self, seed):
        errors = []
        for k, env in enumerate(self.envs):
            i = self.first + k
            self.current[self.slot] = i
            try:
                if seed is None:
                    out = env.reset()
                else:
                    out = env.reset(seed=(seed + i) % 2**64)
                self.write_obs(self.reset_obs, i, out[0])
            except Exception as e:
                errors.append(error(i, "reset", "exception", e))
        self.current[self.slot] = -1
        return errors

    def step(self):
        errors = []
        for k, env in enumerate(self.envs):
            i = self.first + k
            self.current[self.slot] = i
            try:
                out = env.step(self.action(i))
            except Exception as e:
                # As in one process: the batch stops at the first env that fails.
                errors.append(error(i, "step", "exception", e))
                break
            try:
                obs, reward, terminated, truncated = out[0], float(out[1]), bool(out[2]), bool(out[3])
                self.write_obs(self.next_obs, i, obs)
            except Exception as e:
                errors.append(error(i, "step", "output", e))
                break
            self.rewards[i] = reward
            self.flags[i] = int(terminated) | int(truncated) << 1
            if terminated or truncated:
                try:
                    self.write_obs(self.reset_obs, i, env.reset()[0])
                except Exception as e:
                    errors.append(error(i, "reset", "exception", e))
        self.current[self.slot] = -1
        return errors


main()
