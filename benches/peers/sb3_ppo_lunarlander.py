"""SB3 PPO with rl-baselines3-zoo's LunarLander hyperparameters on LunarLander-v3: the peer of
rlpg's `configs/reinforce_lunarlander.toml` (REINFORCE through the `gymnasium` bridge).

Zoo settings: 16 envs, n_steps 1024, batch 64, 4 epochs, gae_lambda 0.98, gamma 0.999,
ent_coef 0.01, 1M steps. Reports the mean return of the last 100 training episodes at the end
(what rlpg's summary calls `recent_mean_return`) and the wall time. Needs Box2D in the peer venv:

    ~/.cache/rlpg/peer/bin/pip install box2d==2.3.10 pygame-ce==2.5.8
    ~/.cache/rlpg/peer/bin/python benches/peers/sb3_ppo_lunarlander.py --seed 1
"""

import argparse
import json
import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timesteps", type=float, default=1e6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = make_vec_env("LunarLander-v3", n_envs=16, seed=args.seed)
    model = PPO("MlpPolicy", env, n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999,
                n_epochs=4, ent_coef=0.01, seed=args.seed, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=int(args.timesteps))
    wall = time.perf_counter() - start
    mean100 = float(np.mean([ep["r"] for ep in model.ep_info_buffer]))
    print(json.dumps({"peer": "SB3 PPO (zoo)", "env": "LunarLander-v3", "seed": args.seed,
                      "timesteps": int(args.timesteps), "mean100": round(mean100, 2),
                      "wall_s": round(wall, 1), "steps_per_s": round(args.timesteps / wall)}))


if __name__ == "__main__":
    main()
