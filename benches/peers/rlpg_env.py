"""rlpg's own environments as Gymnasium envs, for peers that train on them (sb3-contrib's
MaskablePPO on Restock-v0): each env runs rlpg's `env_server` example in a subprocess and steps
exactly rlpg's env (dynamics, seeding, time limit, masks, infos) over JSON lines.

    env = RlpgEnv("Restock-v0")          # gymnasium.Env; env.action_masks() for MaskablePPO

The server binary is target/release/examples/env_server (`cargo build --release -p rlpg-envs
--example env_server`), or the path in $RLPG_ENV_SERVER. Spaces map back to Gymnasium's:
Discrete, Box (float32), MultiDiscrete, MultiBinary. A step's infos are in the step's info dict.
The time limit is rlpg's (the env truncates by itself): do not add a TimeLimit."""

import json
import os
import subprocess

import gymnasium as gym
import numpy as np
from gymnasium import spaces

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.environ.get(
    "RLPG_ENV_SERVER", os.path.join(REPO, "target", "release", "examples", "env_server")
)


def to_space(desc):
    (kind, value), = desc.items()
    if kind == "Discrete":
        return spaces.Discrete(value)
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(value)
    if kind == "MultiBinary":
        return spaces.MultiBinary(value)
    if kind == "Box":
        return spaces.Box(np.array(value["low"], np.float32), np.array(value["high"], np.float32))
    raise ValueError("unknown space %r" % desc)


class RlpgEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, env_id):
        self.proc = subprocess.Popen(
            [SERVER, env_id], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        hello = self._read()
        self.observation_space = to_space(hello["observation_space"])
        self.action_space = to_space(hello["action_space"])
        self.has_masks = hello["masks"]
        self.mask = None
        self.discrete = isinstance(self.action_space, spaces.Discrete)
        self.box = isinstance(self.action_space, spaces.Box)

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the rlpg env server exited")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def _ask(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        return self._read()

    def _obs(self, values):
        return np.asarray(values, dtype=self.observation_space.dtype)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        reply = self._ask({"reset": seed})
        self.mask = reply["mask"]
        return self._obs(reply["obs"]), {}

    def step(self, action):
        if self.discrete:
            action = int(action)
        elif self.box:
            action = [float(x) for x in np.ravel(action)]
        else:
            action = [int(x) for x in np.ravel(action)]
        reply = self._ask({"step": action})
        self.mask = reply["mask"]
        return (
            self._obs(reply["obs"]),
            reply["reward"],
            reply["terminated"],
            reply["truncated"],
            reply["infos"],
        )

    def action_masks(self):
        # MaskablePPO's layout, as rlpg's: after an episode's last step there is no next state
        # in this env (the vector env resets it first), so everything is allowed.
        if self.mask is None:
            return np.ones(self._mask_len(), dtype=bool)
        return np.asarray(self.mask, dtype=bool)

    def _mask_len(self):
        sp = self.action_space
        if isinstance(sp, spaces.Discrete):
            return int(sp.n)
        if isinstance(sp, spaces.MultiDiscrete):
            return int(np.sum(sp.nvec))
        if isinstance(sp, spaces.MultiBinary):
            return 2 * int(np.prod(sp.shape))
        return 0

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
