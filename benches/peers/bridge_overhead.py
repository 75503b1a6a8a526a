"""Env-steps per second of a Gymnasium env stepped by Python itself: the peer side of
`benches/peers/bridge_overhead.sh`.

Two ways, with the envs exactly as the bridge makes them (`gymnasium.make(ID)`, default wrappers):
* "python loop": `env.step(a)` on each of N envs, `env.reset()` when an episode ends: the Python
  env's own step time, which the bridge adds its overhead to;
* "SyncVectorEnv": Gymnasium's own vector env over the same N envs.
Prints one JSON line per way: the env-steps/s of each round and their median.

    ~/.cache/rlpg/gymnasium-venv/bin/python benches/peers/bridge_overhead.py [--env CartPole-v1]
        [--num-envs 8] [--batch-steps 5000] [--rounds 5]
"""

import argparse
import json
import statistics
import time

import gymnasium as gym
import numpy as np

TABLE = 4096


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--batch-steps", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, steps = args.num_envs, args.batch_steps
    rng = np.random.default_rng(12345)
    envs = [gym.make(args.env) for _ in range(n)]
    space = envs[0].action_space
    if isinstance(space, gym.spaces.Discrete):
        table = [[int(a) for a in row] for row in rng.integers(0, space.n, size=(TABLE, n))]
        batch = np.asarray(table)
    else:
        batch = rng.uniform(space.low, space.high, size=(TABLE, n) + space.shape).astype(space.dtype)
        table = [list(row) for row in batch]

    for i, env in enumerate(envs):
        env.reset(seed=i)
    loop = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for t in range(steps):
            for env, a in zip(envs, table[t % TABLE]):
                _, _, terminated, truncated, _ = env.step(a)
                if terminated or truncated:
                    env.reset()
        loop.append(steps * n / (time.perf_counter() - start))

    vec = gym.vector.SyncVectorEnv([lambda: gym.make(args.env) for _ in range(n)])
    vec.reset(seed=0)
    sync = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for t in range(steps):
            vec.step(batch[t % TABLE])
        sync.append(steps * n / (time.perf_counter() - start))

    for side, rounds in [("python loop", loop), ("Gymnasium SyncVectorEnv", sync)]:
        print(json.dumps({"side": side, "env": args.env, "num_envs": n,
                          "env_steps_per_s": [round(r, 1) for r in rounds],
                          "median": round(statistics.median(rounds), 1)}))


if __name__ == "__main__":
    main()
