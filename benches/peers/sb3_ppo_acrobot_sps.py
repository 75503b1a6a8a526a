"""SB3 PPO with rl-baselines3-zoo's Acrobot-v1 settings (16 envs, n_steps 256, gae 0.94, gamma 0.99,
4 epochs, batch 64, VecNormalize obs+reward), one torch thread: env steps per second of learn()."""
import sys, time, torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
torch.set_num_threads(1)
seed, steps = int(sys.argv[1]), int(sys.argv[2])
env = VecNormalize(make_vec_env("Acrobot-v1", n_envs=16, seed=seed))
m = PPO("MlpPolicy", env, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0, seed=seed, device="cpu", verbose=0)
t = time.perf_counter(); c0 = time.process_time()
m.learn(total_timesteps=steps)
w, c = time.perf_counter() - t, time.process_time() - c0
print(f"sb3 ppo acrobot seed {seed}: {m.num_timesteps} steps, learn() wall {w:.2f} s ({m.num_timesteps/w:.0f} steps/s), cpu {c:.2f} s ({m.num_timesteps/c:.0f} steps/cpu-s)")
