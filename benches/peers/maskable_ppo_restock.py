"""sb3-contrib's MaskablePPO (2.9.2) on rlpg's Restock-v0, stepped through rlpg_env.RlpgEnv
(rlpg's own env in a subprocess: the same dynamics, seeds, time limit and masks), the peer of
rlpg's masked agents in docs/benchmarks.md. With --flat: sb3's PPO on RestockFlat-v0 (the same
shop as one Discrete(125) order, over-capacity units clipped and charged, no masks). With
--env Restock6-v0: the six-product shop (--flat: Restock6Flat-v0, one Discrete(15625) order).

    $PY benches/peers/maskable_ppo_restock.py --seed 0 --timesteps 300000 --threshold 140
    $PY benches/peers/maskable_ppo_restock.py --env Restock6-v0 --seed 0 --threshold T

Defaults are MaskablePPO's own (n_steps 2048, batch 64, 10 epochs, lr 3e-4, gamma 0.99, 64x64
tanh): rl-baselines3-zoo has no entry for this env. 8 envs (DummyVecEnv), one torch thread.
Every --eval-every steps, a deterministic evaluation of --eval-episodes episodes, episode i
reset with seed 1,000,000 + seed + i (the seeds `rlpg eval` and training's evaluations use),
masks applied; the step at which its mean first reaches --threshold is recorded (evaluation
time excluded from the wall time). Writes results/maskable_ppo_ENV_SEED.json (ppo_ENV_SEED.json
with --flat) and prints one line."""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rlpg_env import RlpgEnv  # noqa: E402

from sb3_contrib import MaskablePPO  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402


# Each masked shop and its hand-flattened, punished version.
FLAT = {"Restock-v0": "RestockFlat-v0", "Restock6-v0": "Restock6Flat-v0"}


def evaluate(model, env, seed, episodes, masked):
    returns, lost = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=1_000_000 + seed + i)
        ret, lost_sales = 0.0, 0.0
        while True:
            if masked:
                action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
            else:
                action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            ret += reward
            lost_sales += info.get("lost_sales", 0.0)
            if terminated or truncated:
                break
        returns.append(ret)
        lost.append(lost_sales)
    return float(np.mean(returns)), float(np.std(returns)), float(np.mean(lost))


class Evals(BaseCallback):
    def __init__(self, args, eval_env):
        super().__init__()
        self.args, self.eval_env = args, eval_env
        self.next, self.evals, self.hit = args.eval_every, [], None
        self.t0, self.paused = None, 0.0

    def _on_training_start(self):
        self.t0 = time.perf_counter()

    def _on_step(self):
        if self.num_timesteps >= self.next:
            self.next += self.args.eval_every
            t = time.perf_counter()
            mean, std, lost = evaluate(
                self.model, self.eval_env, self.args.seed, self.args.eval_episodes, not self.args.flat
            )
            self.paused += time.perf_counter() - t
            self.evals.append([self.num_timesteps, mean, std, lost])
            if self.hit is None and mean >= self.args.threshold:
                seconds = time.perf_counter() - self.t0 - self.paused
                self.hit = [self.num_timesteps, seconds]
        return True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timesteps", type=int, default=300_000)
    p.add_argument("--threshold", type=float, default=140.0)
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--env", default="Restock-v0", choices=sorted(FLAT), help="the masked shop")
    p.add_argument("--flat", action="store_true", help="PPO on the shop flattened by hand instead")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--outdir", default="results")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    env_id = FLAT[args.env] if args.flat else args.env
    venv = DummyVecEnv([lambda: Monitor(RlpgEnv(env_id)) for _ in range(args.n_envs)])
    venv.seed(args.seed)
    algo = PPO if args.flat else MaskablePPO
    model = algo("MlpPolicy", venv, seed=args.seed, device="cpu", verbose=0)
    callback = Evals(args, RlpgEnv(env_id))
    start = time.perf_counter()
    model.learn(total_timesteps=args.timesteps, callback=callback)
    wall = time.perf_counter() - start
    final = evaluate(model, callback.eval_env, args.seed, 100, not args.flat)
    result = {
        "algo": "PPO" if args.flat else "MaskablePPO",
        "env": env_id,
        "seed": args.seed,
        "timesteps": args.timesteps,
        "threshold": args.threshold,
        "steps_to_threshold": callback.hit[0] if callback.hit else None,
        "seconds_to_threshold": callback.hit[1] if callback.hit else None,
        "final_eval_100": {"mean": final[0], "std": final[1], "lost_sales": final[2]},
        "evals": callback.evals,
        "train_seconds": wall - callback.paused,
        "steps_per_second": args.timesteps / max(wall - callback.paused, 1e-9),
    }
    os.makedirs(args.outdir, exist_ok=True)
    name = "%s_%s_%d.json" % ("ppo" if args.flat else "maskable_ppo", env_id, args.seed)
    with open(os.path.join(args.outdir, name), "w") as f:
        json.dump(result, f, indent=1)
    print(
        "%s %s seed %d: threshold %.0f at %s steps, final eval %.1f +- %.1f (lost sales %.1f), %.0f steps/s"
        % (
            result["algo"],
            env_id,
            args.seed,
            args.threshold,
            result["steps_to_threshold"],
            final[0],
            final[1],
            final[2],
            result["steps_per_second"],
        )
    )


if __name__ == "__main__":
    main()
