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
# Replies: "ok" or "err <JSON list of {env, during, kind, message}>". Observations, rewards, end
# flags, action masks (of the state each env acts on next) and step infos go to shared memory (the
# file config["shm"], mapped by both processes); before each
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
        self.act_i64 = view("act_i64", np.int64, (n, max(act_dim, 1)))
        self.next_obs = view("next_obs", np.float32, (n, obs_dim))
        self.reset_obs = view("reset_obs", np.float32, (n, obs_dim))
        self.rewards = view("rewards", np.float64, (n,))
        self.flags = view("flags", np.uint8, (n,))
        self.current = view("current", np.int64, (config["workers"],))
        self.mask_len = config["mask_len"]
        self.masks = view("masks", np.uint8, (n, max(self.mask_len, 1)))
        self.info_names = config["info_names"]
        self.infos = view("infos", np.float64, (n, max(len(self.info_names), 1)))
        self.slot = config["worker"]
        kwargs = json.loads(config["kwargs"])
        self.envs = [gymnasium.make(config["gym_id"], **kwargs) for _ in range(count)]
        env = self.envs[0]
        from gymnasium import spaces

        self.spaces = spaces
        self.obs_space = env.observation_space
        self.obs_start = self.start(env.observation_space)
        self.act_start = self.start(env.action_space)
        self.act_space = env.action_space
        self.act_dim = act_dim
        # sb3-contrib's convention: the env, or a wrapper, has a method action_masks().
        self.masks_fns = [e.get_wrapper_attr("action_masks") for e in self.envs] if self.mask_len else []

    def start(self, space):
        return int(space.start) if isinstance(space, self.spaces.Discrete) else None

    def action(self, i):
        sp, np = self.act_space, self.np
        if self.act_start is not None:
            return int(self.act_i64[i, 0]) + self.act_start
        # Copies, shaped as the space: an env may keep the action it was given.
        if isinstance(sp, self.spaces.MultiDiscrete):
            return np.array(self.act_i64[i, : self.act_dim], dtype=sp.dtype).reshape(sp.shape) + sp.start
        if isinstance(sp, self.spaces.MultiBinary):
            return np.array(self.act_i64[i, : self.act_dim], dtype=np.int8).reshape(sp.shape)
        return np.array(self.act_f32[i, : self.act_dim], dtype=sp.dtype).reshape(sp.shape)

    def write_obs(self, rows, i, obs):
        if self.obs_start is not None:
            rows[i, 0] = int(obs) - self.obs_start
        elif isinstance(self.obs_space, self.spaces.MultiDiscrete):
            rows[i] = (self.np.asarray(obs) - self.obs_space.start).astype(self.np.float32).ravel()
        else:
            rows[i] = self.np.asarray(obs, dtype=self.np.float32).ravel()

    def write_mask(self, i, k):
        # MaskablePPO's flat layout; a tuple of per-component masks is concatenated.
        if not self.mask_len:
            return
        np = self.np
        mask = self.masks_fns[k]()
        if isinstance(mask, (tuple, list)) and len(mask) > 0 and np.ndim(mask[0]) > 0:
            mask = np.concatenate([np.ravel(np.asarray(m)) for m in mask])
        flags = np.ravel(np.asarray(mask)).astype(bool)
        if flags.size != self.mask_len:
            raise ValueError(
                "action_masks() returned %d flags, but the action space %r needs %d: %s"
                % (flags.size, self.act_space, self.mask_len, flags.astype(np.int8).tolist())
            )
        self.masks[i, : self.mask_len] = flags

    def write_infos(self, i, info):
        for j, name in enumerate(self.info_names):
            if name not in info:
                self.infos[i, j] = float("nan")
                continue
            try:
                self.infos[i, j] = float(self.np.asarray(info[name], dtype=self.np.float64).reshape(()))
            except Exception:
                raise ValueError("info[%r] is %r, not a number" % (name, info[name])) from None

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
                continue
            try:
                self.write_mask(i, k)
            except Exception as e:
                errors.append(error(i, "action_masks", "output", e))
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
                if self.info_names:
                    self.write_infos(i, out[4])
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
                    continue
            # The mask of the state the env acts on next: after the reset for one that ended.
            try:
                self.write_mask(i, k)
            except Exception as e:
                errors.append(error(i, "action_masks", "output", e))
                break
        self.current[self.slot] = -1
        return errors


main()
