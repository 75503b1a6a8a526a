#!/usr/bin/env python3
"""Side-by-side peer timing: SB3 PPO (rl-zoo CartPole-v1 hyperparameters) or SB3 SAC (zoo Pendulum-v1),
one torch thread. Prints JSON with env steps and wall seconds (from the start of learn()) at which the
threshold was first reached: mean of last 100 training episodes >= 475 (PPO), or a 10-episode deterministic
eval >= -200 checked every 1000 steps (SAC; eval time excluded).
Usage: python sb3_time_to_threshold.py ppo SEED   |   python sb3_time_to_threshold.py sac SEED"""
import json, sys, time, collections
if len(sys.argv) != 3 or sys.argv[1] not in ("ppo", "sac") or not sys.argv[2].lstrip("-").isdigit():
    sys.exit("usage: sb3_time_to_threshold.py {ppo|sac} SEED")
import numpy as np, torch, gymnasium as gym
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
torch.set_num_threads(1)
algo, seed = sys.argv[1], int(sys.argv[2])

class Stop(BaseCallback):
    def __init__(self):
        super().__init__(); self.win = collections.deque(maxlen=100); self.hit = None; self.t0 = None; self.paused = 0.0
    def _on_training_start(self): self.t0 = time.perf_counter()
    def _on_step(self):
        if algo == "ppo":
            for info in self.locals.get("infos", []):
                if "episode" in info: self.win.append(info["episode"]["r"])
            if len(self.win) == 100 and np.mean(self.win) >= 475:
                self.hit = (self.num_timesteps, time.perf_counter() - self.t0 - self.paused); return False
        elif self.num_timesteps % 1000 == 0:
            t = time.perf_counter()
            m, _ = evaluate_policy(self.model, Monitor(gym.make("Pendulum-v1")), n_eval_episodes=10, deterministic=True)
            self.paused += time.perf_counter() - t
            if m >= -200:
                self.hit = (self.num_timesteps, time.perf_counter() - self.t0 - self.paused); return False
        return True

cb = Stop()
if algo == "ppo":
    class Lin:
        def __init__(s, v): s.v = v
        def __call__(s, p): return p * s.v
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    m = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
            learning_rate=Lin(1e-3), clip_range=Lin(0.2), seed=seed, device="cpu", verbose=0)
    m.learn(total_timesteps=300_000, callback=cb)
else:
    m = SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_rate=1e-3, seed=seed, device="cpu", verbose=0)
    m.learn(total_timesteps=20_000, callback=cb)
print(json.dumps({"algo": algo, "seed": seed, "steps": cb.hit[0] if cb.hit else None, "seconds": cb.hit[1] if cb.hit else None}))
