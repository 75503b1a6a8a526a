"""Steps per second of Gymnasium's unwrapped classic-control envs, one core.

The peer of rlpg's `envs/benches/step_throughput.rs` (its `raw` cases): each env is
`gymnasium.make(id).unwrapped` (no time limit, no checker wrappers), stepped with precomputed
uniformly random actions, reset when an episode terminates. Each env is timed in interleaved
rounds; the fastest round is reported (least disturbed on a shared machine), with the median.

    python3 -m venv /tmp/gymvenv && /tmp/gymvenv/bin/pip install -r benches/peers/requirements-envs.txt
    /tmp/gymvenv/bin/python benches/peers/gymnasium_env_steps.py [--steps 20000] [--rounds 5]
"""

import argparse
import platform
import statistics
import time

import gymnasium as gym
import numpy as np

ENV_IDS = ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"]
TABLE = 4096


def actions_for(env, rng):
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        return [int(a) for a in rng.integers(0, space.n, size=TABLE)]
    low, high = float(space.low[0]), float(space.high[0])
    return [np.array([a], dtype=np.float32) for a in rng.uniform(low, high, size=TABLE)]


def run(env, actions, steps):
    start = time.perf_counter()
    for k in range(steps):
        _, _, terminated, _, _ = env.step(actions[k % TABLE])
        if terminated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--envs", nargs="*", default=ENV_IDS)
    args = parser.parse_args()
    print(f"gymnasium {gym.__version__}, numpy {np.__version__}, python {platform.python_version()}")
    envs = {}
    for i, env_id in enumerate(args.envs):
        env = gym.make(env_id).unwrapped
        env.reset(seed=0)
        envs[env_id] = (env, actions_for(env, np.random.default_rng(i)))
        run(env, envs[env_id][1], min(args.steps, 2000))  # warm-up
    rates = {env_id: [] for env_id in envs}
    for _ in range(args.rounds):
        for env_id, (env, actions) in envs.items():
            rates[env_id].append(run(env, actions, args.steps))
    for env_id, r in rates.items():
        print(f"{env_id}: fastest {max(r):,.0f} steps/s, median {statistics.median(r):,.0f} steps/s")


if __name__ == "__main__":
    main()
