"""Gymnasium envs that fail on purpose, for the tests of rlpg's Gymnasium worker processes
(envs/tests/gymnasium_workers.rs, tests/cli_gymnasium.rs): `gymnasium.make("faulty_envs:Faulty-v0",
fault=..., seed=..., at=...)` is CartPole-v1 that, in the env reset with seed `seed`, raises
(raise_long: with a 200 kB message), dies, exits, hangs or sleeps on its `at`-th step (counted over its life)."""

import os
import signal
import time

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class Faulty(CartPoleEnv):
    def __init__(self, fault="none", seed=-1, at=5, **kwargs):
        super().__init__(**kwargs)
        self.fault, self.faulty_seed, self.at = fault, seed, at
        self.steps, self.seed_given = 0, None

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.seed_given = seed
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.steps += 1
        if self.steps == self.at and self.seed_given == self.faulty_seed:
            if self.fault == "raise":
                raise RuntimeError("sensor failure at step %d" % self.steps)
            if self.fault == "raise_long":
                raise RuntimeError("sensor failure at step %d: %s" % (self.steps, "x" * 200000))
            if self.fault == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fault == "exit":
                os._exit(3)
            if self.fault == "hang":
                time.sleep(3600)
            if self.fault == "slow":
                time.sleep(0.2)
        return super().step(action)


gym.register("Faulty-v0", entry_point=Faulty, max_episode_steps=500)
