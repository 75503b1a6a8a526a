#!/usr/bin/env python3
"""Side-by-side peers for the classic-control presets of issue #15: Stable-Baselines3 2.9.2 with
rl-baselines3-zoo's hyperparameters (hyperparams/{ppo,sac,dqn}.yml), one torch thread.

  ppo-acrobot SEED   PPO on Acrobot-v1 (zoo: 16 envs, VecNormalize, n_steps 256, gae 0.94, 4 epochs),
                     stops when the mean of the last 100 training episodes is >= -100 (zoo budget 1M)
  sac-mcc SEED       SAC + gSDE on MountainCarContinuous-v0 (zoo: 50k steps, batch 512, train_freq and
                     gradient_steps 32, ent_coef 0.1, gamma 0.9999, tau 0.01, log_std_init -3.67, 64x64);
                     10-episode deterministic eval every 2,500 steps (eval time excluded), stops at >= 90
  dqn-mountaincar SEED
                     DQN on MountainCar-v0 (zoo: 120k steps, lr 4e-3, batch 128, buffer 10k, 256x256, ...);
                     runs the zoo's whole budget, records when mean-100 first reaches -110 and its value at
                     the end

Prints one JSON line: steps and wall seconds from the start of learn() to the threshold (null if never),
plus the final value of the measured quantity. The returns counted are the raw environment returns
(Monitor sits inside VecNormalize)."""
import collections
import json
import sys
import time

MODES = ("ppo-acrobot", "sac-mcc", "dqn-mountaincar")
if len(sys.argv) != 3 or sys.argv[1] not in MODES or not sys.argv[2].isdigit():
    sys.exit(f"usage: sb3_classic.py {{{'|'.join(MODES)}}} SEED")
mode, seed = sys.argv[1], int(sys.argv[2])

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import DQN, PPO, SAC  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

torch.set_num_threads(1)


class Watch(BaseCallback):
    """Tracks mean-100 of training episodes (or a periodic deterministic eval) and the wall time."""

    def __init__(self, threshold, stop_at_threshold, eval_every=0, eval_env_id=None):
        super().__init__()
        self.threshold, self.stop = threshold, stop_at_threshold
        self.eval_every, self.eval_env_id = eval_every, eval_env_id
        self.win = collections.deque(maxlen=100)
        self.hit, self.last, self.t0, self.paused = None, None, None, 0.0

    def _on_training_start(self):
        self.t0 = time.perf_counter()

    def _on_step(self):
        if self.eval_every:
            if self.num_timesteps % self.eval_every != 0:
                return True
            t = time.perf_counter()
            env = Monitor(gym.make(self.eval_env_id))
            self.last, _ = evaluate_policy(self.model, env, n_eval_episodes=10, deterministic=True)
            self.paused += time.perf_counter() - t
        else:
            for info in self.locals.get("infos", []):
                if "episode" in info:
                    self.win.append(info["episode"]["r"])
            if len(self.win) < 100:
                return True
            self.last = float(np.mean(self.win))
        if self.hit is None and self.last >= self.threshold:
            self.hit = (self.num_timesteps, time.perf_counter() - self.t0 - self.paused)
            return not self.stop
        return True


if mode == "ppo-acrobot":
    cb = Watch(-100.0, True)
    env = VecNormalize(make_vec_env("Acrobot-v1", n_envs=16, seed=seed))
    model = PPO("MlpPolicy", env, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0,
                seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=1_000_000, callback=cb)
elif mode == "sac-mcc":
    cb = Watch(90.0, True, eval_every=2500, eval_env_id="MountainCarContinuous-v0")
    model = SAC("MlpPolicy", gym.make("MountainCarContinuous-v0"), learning_rate=3e-4, buffer_size=50_000,
                batch_size=512, ent_coef=0.1, train_freq=32, gradient_steps=32, gamma=0.9999, tau=0.01,
                learning_starts=0, use_sde=True, policy_kwargs=dict(log_std_init=-3.67, net_arch=[64, 64]),
                seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=50_000, callback=cb)
else:
    cb = Watch(-110.0, False)
    env = make_vec_env("MountainCar-v0", n_envs=1, seed=seed)
    model = DQN("MlpPolicy", env, learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000,
                gamma=0.98, target_update_interval=5000, train_freq=16, gradient_steps=8,
                exploration_fraction=0.2, exploration_final_eps=0.07, policy_kwargs=dict(net_arch=[256, 256]),
                seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=120_000, callback=cb)
print(json.dumps({"mode": mode, "seed": seed, "steps": cb.hit[0] if cb.hit else None,
                  "seconds": cb.hit[1] if cb.hit else None, "final": cb.last,
                  "total_seconds": time.perf_counter() - cb.t0 - cb.paused, "timesteps": model.num_timesteps}))
