#!/usr/bin/env python3
"""Peer reference benchmarks: Gymnasium env stepping + Stable-Baselines3 PPO/A2C/SAC.

Subcommands (each writes one JSON file to --outdir, default ./results):
  env                     raw env stepping speed (single env, SyncVectorEnv(8), SB3 DummyVecEnv(8), ...)
  ppo  --seed S           PPO CartPole-v1, rl-baselines3-zoo tuned hyperparameters, 1e5 steps
  a2c  --seed S           A2C CartPole-v1, rl-baselines3-zoo hyperparameters (n_envs 8, ent_coef 0), 5e5 steps
  sac  --seed S           SAC Pendulum-v1, rl-baselines3-zoo hyperparameters (lr 1e-3), 20000 steps
  ppo-pendulum --seed S   PPO Pendulum-v1, rl-baselines3-zoo tuned hyperparameters (gSDE), 1e5 steps
Common: --threads N   torch.set_num_threads(N); 0 = leave torch default (= #cores)
"""
import argparse
import collections
import json
import os
import platform
import sys
import time

import numpy as np


def versions():
    import gymnasium
    import stable_baselines3
    import torch
    return dict(python=platform.python_version(), torch=torch.__version__, gymnasium=gymnasium.__version__,
                stable_baselines3=stable_baselines3.__version__, numpy=np.__version__,
                torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(), machine=platform.machine(),
                processor=_cpu_name(), loadavg_1_5_15=list(os.getloadavg()))


def _cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def save(outdir, name, data):
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, name)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    print("wrote", path)


# ============================================================================ env stepping

def bench_env(args):
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env

    N = int(args.env_steps)
    reps = args.reps
    res = []

    def timeit(fn):
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts)), [float(t) for t in ts]

    for env_id in ["CartPole-v1", "Pendulum-v1"]:
        rng = np.random.default_rng(0)
        probe = gym.make(env_id)
        if env_id == "CartPole-v1":
            acts1 = rng.integers(0, 2, size=N)
            acts1 = [int(a) for a in acts1]
        else:
            acts1 = list(rng.uniform(-2, 2, size=(N, 1)).astype(np.float32))

        # 1. gym.make (TimeLimit + OrderEnforcing + PassiveEnvChecker), pre-generated actions
        def single(env=gym.make(env_id), acts=acts1):
            env.reset(seed=0)
            for a in acts:
                _, _, te, tr, _ = env.step(a)
                if te or tr:
                    env.reset()
        med, all_ = timeit(single)
        res.append(dict(env=env_id, mode="single gym.make, pre-generated actions", n_envs=1, env_steps=N,
                        seconds=med, all_seconds=all_, env_steps_per_s=N / med))

        # 2. gym.make with action_space.sample() each step (typical 'random agent' loop)
        def single_sample(env=gym.make(env_id)):
            env.reset(seed=0)
            env.action_space.seed(0)
            for _ in range(N):
                _, _, te, tr, _ = env.step(env.action_space.sample())
                if te or tr:
                    env.reset()
        med, all_ = timeit(single_sample)
        res.append(dict(env=env_id, mode="single gym.make, action_space.sample() per step", n_envs=1, env_steps=N,
                        seconds=med, all_seconds=all_, env_steps_per_s=N / med))

        # 3. unwrapped env (no wrappers), manual time limit
        limit = probe.spec.max_episode_steps

        def raw(env=gym.make(env_id).unwrapped, acts=acts1):
            env.reset(seed=0)
            k = 0
            for a in acts:
                _, _, te, _, _ = env.step(a)
                k += 1
                if te or k >= limit:
                    env.reset()
                    k = 0
        med, all_ = timeit(raw)
        res.append(dict(env=env_id, mode="single env.unwrapped (no wrappers), pre-generated actions", n_envs=1,
                        env_steps=N, seconds=med, all_seconds=all_, env_steps_per_s=N / med))

        # 4. gymnasium SyncVectorEnv(8) (autoreset NextStep), N env steps in total
        nv = 8
        M = N // nv
        if env_id == "CartPole-v1":
            actsv = rng.integers(0, 2, size=(M, nv))
        else:
            actsv = rng.uniform(-2, 2, size=(M, nv, 1)).astype(np.float32)

        def sync(acts=actsv):
            venv = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(nv)])
            venv.reset(seed=0)
            for a in acts:
                venv.step(a)
            venv.close()
        med, all_ = timeit(sync)
        res.append(dict(env=env_id, mode="gymnasium.vector.SyncVectorEnv", n_envs=nv, env_steps=M * nv,
                        seconds=med, all_seconds=all_, env_steps_per_s=M * nv / med, vec_steps_per_s=M / med))

        # 5. SB3 DummyVecEnv(8) with Monitor (what SB3 PPO/A2C use)
        def dummy(acts=actsv):
            venv = make_vec_env(env_id, n_envs=nv, seed=0)
            venv.reset()
            for a in acts:
                venv.step(a)
            venv.close()
        med, all_ = timeit(dummy)
        res.append(dict(env=env_id, mode="SB3 make_vec_env DummyVecEnv+Monitor", n_envs=nv, env_steps=M * nv,
                        seconds=med, all_seconds=all_, env_steps_per_s=M * nv / med, vec_steps_per_s=M / med))

        # 6. Gymnasium's numpy-vectorized CartPoleVectorEnv (vector_entry_point)
        if env_id == "CartPole-v1":
            def vecentry(acts=actsv):
                venv = gym.make_vec(env_id, num_envs=nv, vectorization_mode="vector_entry_point")
                venv.reset(seed=0)
                for a in acts:
                    venv.step(a)
                venv.close()
            med, all_ = timeit(vecentry)
            res.append(dict(env=env_id, mode="gym.make_vec vector_entry_point (CartPoleVectorEnv, numpy-batched)",
                            n_envs=nv, env_steps=M * nv, seconds=med, all_seconds=all_,
                            env_steps_per_s=M * nv / med, vec_steps_per_s=M / med))
        for r in res:
            if r["env"] == env_id:
                print(f"{env_id:12s} {r['mode'][:60]:60s} n_envs={r['n_envs']} {r['env_steps_per_s']:12.0f} env-steps/s")
    save(args.outdir, "env_stepping.json", dict(versions=versions(), reps=reps, stat="median of reps", results=res))


# ============================================================================ RL helpers

class Lin:
    """rl-zoo 'lin_X' schedule: value * progress_remaining (1 -> 0)."""

    def __init__(self, v):
        self.v = v

    def __call__(self, progress_remaining):
        return progress_remaining * self.v


def make_tracker(threshold, window=100, curve_every=None):
    from stable_baselines3.common.callbacks import BaseCallback

    class Tracker(BaseCallback):
        def __init__(self):
            super().__init__()
            self.episodes = []  # [timesteps_at_end, return, length]
            self.win = collections.deque(maxlen=window)
            self.reached = None
            self.curve = []  # [timesteps, mean_last_100 (or fewer)]
            self._next_curve = curve_every

        def _on_step(self):
            for info in self.locals.get("infos", []):
                ep = info.get("episode")
                if ep is not None:
                    self.episodes.append([int(self.num_timesteps), float(ep["r"]), int(ep["l"])])
                    self.win.append(float(ep["r"]))
                    if self.reached is None and len(self.win) == window and np.mean(self.win) >= threshold:
                        self.reached = int(self.num_timesteps)
            if curve_every and self.num_timesteps >= self._next_curve:
                self.curve.append([int(self.num_timesteps), float(np.mean(self.win)) if self.win else None,
                                   len(self.episodes)])
                self._next_curve += curve_every
            return True

    return Tracker()


def setup_torch(threads, seed):
    import torch
    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def onpolicy_cartpole(args, algo):
    import gymnasium as gym
    import torch
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    nthreads = setup_torch(args.threads, args.seed)
    env = make_vec_env("CartPole-v1", n_envs=8, seed=args.seed)
    if algo == "ppo":
        hp = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                  learning_rate="lin_0.001", clip_range="lin_0.2")
        total = int(args.timesteps or 1e5)
        model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                    ent_coef=0.0, learning_rate=Lin(1e-3), clip_range=Lin(0.2), seed=args.seed, device="cpu",
                    verbose=0)
    else:
        hp = dict(ent_coef=0.0, note="all other A2C defaults: n_steps=5, lr=7e-4 const, RMSprop(alpha=0.99, eps=1e-5), "
                  "gamma=0.99, gae_lambda=1.0, vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=False")
        total = int(args.timesteps or 5e5)
        model = A2C("MlpPolicy", env, ent_coef=0.0, seed=args.seed, device="cpu", verbose=0)
    hp.update(n_envs=8, n_timesteps=total, policy="MlpPolicy (64x64 tanh, separate pi/vf)")
    cb = make_tracker(475.0, curve_every=args.curve_every)
    t0 = time.perf_counter()
    model.learn(total_timesteps=total, callback=cb)
    wall = time.perf_counter() - t0
    eval_env = Monitor(gym.make("CartPole-v1"))
    eval_env.reset(seed=args.seed + 1000)
    t1 = time.perf_counter()
    rets, lens = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True, return_episode_rewards=True)
    eval_wall = time.perf_counter() - t1
    out = dict(algo=algo.upper(), env="CartPole-v1", seed=args.seed, threads=nthreads, hyperparams=hp,
               versions=versions(), timesteps=int(model.num_timesteps), wall_s=wall,
               timesteps_per_s=model.num_timesteps / wall,
               timesteps_to_mean100_ge_475=cb.reached,
               final_mean100_train=float(np.mean(cb.win)) if cb.win else None,
               n_train_episodes=len(cb.episodes),
               eval=dict(n_episodes=20, deterministic=True, mean=float(np.mean(rets)), std=float(np.std(rets)),
                         min=float(np.min(rets)), wall_s=eval_wall),
               curve_mean100=cb.curve, episodes=cb.episodes)
    print(f"{algo} seed={args.seed} threads={nthreads}: wall={wall:.1f}s {out['timesteps_per_s']:.0f} ts/s "
          f"reach475@{cb.reached} eval={out['eval']['mean']:.1f}+-{out['eval']['std']:.1f}")
    save(args.outdir, f"{algo}_cartpole_seed{args.seed}_threads{args.threads}.json", out)


def sac_pendulum(args):
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    nthreads = setup_torch(args.threads, args.seed)
    total = int(args.timesteps or 20000)
    env = Monitor(gym.make("Pendulum-v1"))
    env.reset(seed=args.seed)
    model = SAC("MlpPolicy", env, learning_rate=1e-3, seed=args.seed, device="cpu", verbose=0)
    eval_env = Monitor(gym.make("Pendulum-v1"))
    eval_env.reset(seed=args.seed + 1000)
    every = args.eval_every

    class EvalCurve(BaseCallback):
        def __init__(self):
            super().__init__()
            self.curve, self.eval_time, self.episodes = [], 0.0, []

        def _on_step(self):
            for info in self.locals.get("infos", []):
                if "episode" in info:
                    self.episodes.append([int(self.num_timesteps), float(info["episode"]["r"])])
            if self.num_timesteps % every == 0:
                t = time.perf_counter()
                r, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True,
                                       return_episode_rewards=True)
                self.eval_time += time.perf_counter() - t
                last = [e[1] for e in self.episodes[-10:]]
                self.curve.append(dict(timesteps=int(self.num_timesteps), eval_mean=float(np.mean(r)),
                                       eval_std=float(np.std(r)),
                                       train_mean_last10=float(np.mean(last)) if last else None))
                print(f"  sac t={self.num_timesteps} eval={np.mean(r):.1f}", flush=True)
            return True

    cb = EvalCurve()
    t0 = time.perf_counter()
    model.learn(total_timesteps=total, callback=cb)
    wall = time.perf_counter() - t0
    train_wall = wall - cb.eval_time
    final = cb.curve[-1] if cb.curve and cb.curve[-1]["timesteps"] == total else None
    hp = dict(learning_rate=1e-3, n_timesteps=total, note="SB3 SAC defaults otherwise: buffer 1e6, learning_starts 100, "
              "batch 256, tau 0.005, gamma 0.99, train_freq 1, gradient_steps 1, ent_coef auto, net_arch [256,256] relu")
    out = dict(algo="SAC", env="Pendulum-v1", seed=args.seed, threads=nthreads, hyperparams=hp, versions=versions(),
               timesteps=int(model.num_timesteps), wall_s_total=wall, wall_s_excluding_eval=train_wall,
               timesteps_per_s=model.num_timesteps / train_wall,
               final_eval=dict(n_episodes=args.eval_episodes, mean=final["eval_mean"] if final else None,
                               std=final["eval_std"] if final else None),
               eval_curve=cb.curve, train_episodes=cb.episodes)
    print(f"sac seed={args.seed} threads={nthreads}: train wall={train_wall:.1f}s {out['timesteps_per_s']:.1f} ts/s "
          f"final eval={out['final_eval']['mean']}")
    save(args.outdir, f"sac_pendulum_seed{args.seed}_threads{args.threads}.json", out)


def ppo_pendulum(args):
    """PPO on Pendulum-v1 with rl-baselines3-zoo's tuned hyperparameters (hyperparams/ppo.yml:
    n_envs 4, n_steps 1024, batch 64, gae_lambda 0.95, gamma 0.9, 10 epochs, lr 1e-3, clip 0.2,
    ent_coef 0, gSDE with sde_sample_freq 4), then a 10-episode deterministic evaluation."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    nthreads = setup_torch(args.threads, args.seed)
    total = int(args.timesteps or 1e5)
    env = make_vec_env("Pendulum-v1", n_envs=4, seed=args.seed)
    hp = dict(n_envs=4, n_steps=1024, batch_size=64, gae_lambda=0.95, gamma=0.9, n_epochs=10, learning_rate=1e-3,
              clip_range=0.2, ent_coef=0.0, use_sde=True, sde_sample_freq=4, n_timesteps=total)
    model = PPO("MlpPolicy", env, n_steps=1024, batch_size=64, gae_lambda=0.95, gamma=0.9, n_epochs=10,
                learning_rate=1e-3, clip_range=0.2, ent_coef=0.0, use_sde=True, sde_sample_freq=4, seed=args.seed,
                device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=total)
    wall = time.perf_counter() - t0
    eval_env = Monitor(gym.make("Pendulum-v1"))
    eval_env.reset(seed=args.seed + 1000)
    rets, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True,
                              return_episode_rewards=True)
    out = dict(algo="PPO", env="Pendulum-v1", seed=args.seed, threads=nthreads, hyperparams=hp, versions=versions(),
               timesteps=int(model.num_timesteps), wall_s=wall, timesteps_per_s=model.num_timesteps / wall,
               eval=dict(n_episodes=args.eval_episodes, deterministic=True, mean=float(np.mean(rets)),
                         std=float(np.std(rets))))
    print(f"ppo-pendulum seed={args.seed} threads={nthreads}: wall={wall:.1f}s {out['timesteps_per_s']:.0f} ts/s "
          f"eval={out['eval']['mean']:.1f}+-{out['eval']['std']:.1f}")
    save(args.outdir, f"ppo_pendulum_seed{args.seed}_threads{args.threads}.json", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["env", "ppo", "a2c", "sac", "ppo-pendulum"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timesteps", type=float, default=None)
    ap.add_argument("--env-steps", type=float, default=1e5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--curve-every", type=int, default=2048)
    ap.add_argument("--eval-every", type=int, default=2000)
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--outdir", default="results")
    args = ap.parse_args()
    if args.cmd == "env":
        bench_env(args)
    elif args.cmd in ("ppo", "a2c"):
        onpolicy_cartpole(args, args.cmd)
    elif args.cmd == "ppo-pendulum":
        ppo_pendulum(args)
    else:
        sac_pendulum(args)


if __name__ == "__main__":
    main()
