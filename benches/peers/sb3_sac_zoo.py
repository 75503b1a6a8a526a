"""SB3 SAC with rl-baselines3-zoo's hyperparameters on a Gymnasium env, with deterministic
evaluations on the same schedule as rlpg's pathwise presets: the peer of
`configs/pathwise_lunarlander_continuous.toml` and `configs/pathwise_halfcheetah.toml` (the
pathwise agent through the `gymnasium` bridge).

Zoo settings (sac.yml):
  LunarLanderContinuous-v3: batch 256, learning rate lin_7.3e-4 (linear decay over zoo's 500k
    steps), buffer 1M, ent_coef auto, gamma 0.99, tau 0.01, one update per step, 10k random
    steps, [400, 300] networks.
  HalfCheetah-v5: SB3's SAC defaults (lr 3e-4, batch 256, tau 0.005, gamma 0.99, [256, 256])
    with 10k random steps; zoo's budget is 1M steps.

Every --eval-every steps, --eval-episodes deterministic episodes on a separate env. Stops at the
first evaluation whose mean reaches --target (if given) or at --max-steps. Prints one line per
evaluation and then one JSON line: every evaluation (step, mean, wall seconds since learn()
started, evaluations included), the step and wall time of the first one at the target (null if
none), and the steps/s. Needs Box2D (LunarLander) or MuJoCo (HalfCheetah) in the venv:

    ~/.cache/rlpg/peer/bin/pip install box2d==2.3.10 pygame-ce==2.5.8
    ~/.cache/rlpg/peer/bin/python benches/peers/sb3_sac_zoo.py LunarLanderContinuous-v3 \
        --seed 2 --target 200 --max-steps 300000
    ~/.cache/rlpg/peer/bin/pip install "gymnasium[mujoco]==1.4.0"   # MuJoCo 4.0.0 here
    ~/.cache/rlpg/peer/bin/python benches/peers/sb3_sac_zoo.py HalfCheetah-v5 --seed 1 \
        --max-steps 50000

rlpg's side: `rlpg train CONFIG --set seed=S` (its deterministic evaluations are
`eval/mean_return` in the run's TensorBoard events), or `rlpg bench CONFIG --seeds S
--target-eval 200` for the time to a target alone.
"""

import argparse
import json
import time

import gymnasium as gym
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

# Zoo's hyperparameters per env, and zoo's step budget (the learning-rate schedule's horizon).
ZOO = {
    "LunarLanderContinuous-v3": (
        500_000,
        dict(batch_size=256, learning_rate=lambda p: 7.3e-4 * p, buffer_size=1_000_000,
             ent_coef="auto", gamma=0.99, tau=0.01, train_freq=1, gradient_steps=1,
             learning_starts=10_000, policy_kwargs=dict(net_arch=[400, 300])),
    ),
    "HalfCheetah-v5": (1_000_000, dict(learning_starts=10_000)),
}


class EvalUntil(BaseCallback):
    """Deterministic evaluation every `every` steps; stops training at `target` or `max_steps`."""

    def __init__(self, env, every, episodes, target, max_steps, start):
        super().__init__()
        self.env, self.every, self.episodes = env, every, episodes
        self.target, self.max_steps, self.start = target, max_steps, start
        self.evals, self.reached = [], None

    def _on_step(self):
        step = self.num_timesteps
        if step % self.every == 0:
            mean, _ = evaluate_policy(self.model, self.env, n_eval_episodes=self.episodes,
                                      deterministic=True, warn=False)
            wall = time.perf_counter() - self.start[0]
            self.evals.append((step, round(float(mean), 1), round(wall, 1)))
            print(f"step {step} eval {mean:.1f} wall {wall:.0f}s", flush=True)
            if self.target is not None and mean >= self.target and self.reached is None:
                self.reached = (step, round(wall, 1))
                return False
        return step < self.max_steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", choices=sorted(ZOO))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--target", type=float, default=None)
    parser.add_argument("--max-steps", type=int, default=300_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budget, hyper = ZOO[args.env]
    env = gym.make(args.env)
    eval_env = gym.make(args.env)
    eval_env.reset(seed=args.seed + 10_000)
    model = SAC("MlpPolicy", env, seed=args.seed, device="cpu", verbose=0, **hyper)
    start = [0.0]
    callback = EvalUntil(eval_env, args.eval_every, args.eval_episodes, args.target,
                         args.max_steps, start)
    start[0] = time.perf_counter()
    # Zoo's whole budget, so that a decaying learning rate follows zoo's schedule; the callback
    # stops at the target or at --max-steps.
    model.learn(total_timesteps=budget, callback=callback)
    wall = time.perf_counter() - start[0]
    print(json.dumps({"peer": "SB3 SAC (zoo)", "env": args.env, "seed": args.seed,
                      "target": args.target, "evals": callback.evals,
                      "reached": callback.reached, "steps": int(model.num_timesteps),
                      "wall_s": round(wall, 1),
                      "steps_per_s": round(model.num_timesteps / wall, 1)}))


if __name__ == "__main__":
    main()
