"""Gymnasium envs with multi-part actions, masks and infos, for the tests of rlpg's Gymnasium
bridge (envs/tests/gymnasium_multi.rs): `gymnasium.make("multi_envs:Shelves-v0", ...)` restocks
two shelves with a MultiDiscrete order (values counted from `start`, sb3-contrib's
`action_masks()` ruling out orders that do not fit) and reports lost sales in its `info`;
`multi_envs:Switches-v0` flips a MultiBinary of switches observed as a MultiBinary."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Shelves(gym.Env):
    CAP = 5

    def __init__(self, start=1, bad_mask=False, text_info=False):
        # Order sizes start..start+3 for each of two products; the observation is the stock,
        # a MultiDiscrete counted from `start` too.
        self.start = start
        self.action_space = spaces.MultiDiscrete([4, 4], start=[start, start])
        self.observation_space = spaces.MultiDiscrete([self.CAP + 1] * 2, start=[start, start])
        self.bad_mask, self.text_info = bad_mask, text_info
        self.stock = np.zeros(2, dtype=np.int64)

    def action_masks(self):
        # Per component: the order sizes that fit (MaskablePPO's flat layout), or one flag too
        # few when asked to misbehave.
        masks = [self.stock[i] + np.arange(4) <= self.CAP for i in range(2)]
        flat = np.concatenate(masks)
        return flat[:-1] if self.bad_mask else flat

    def obs(self):
        return self.stock + self.start

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.stock = self.np_random.integers(0, self.CAP + 1, size=2)
        return self.obs(), {}

    def step(self, action):
        order = np.asarray(action) - self.start
        if np.any(self.stock + order > self.CAP):
            raise ValueError("order %s does not fit the shelves %s" % (order, self.stock))
        demand = self.np_random.integers(0, 4, size=2)
        available = self.stock + order
        sold = np.minimum(demand, available)
        self.stock = available - sold
        info = {"lost": int((demand - sold).sum()), "ordered": float(order.sum())}
        if self.text_info:
            info["lost"] = "many"
        return self.obs(), float(sold.sum() - 0.1 * order.sum()), False, False, info


class Switches(gym.Env):
    def __init__(self):
        self.action_space = spaces.MultiBinary(4)
        self.observation_space = spaces.MultiBinary(4)
        self.on = np.zeros(4, dtype=np.int8)

    def action_masks(self):
        # Two flags per switch (may be 0, may be 1): switch 0 may not stay on.
        pairs = np.ones((4, 2), dtype=bool)
        if self.on[0]:
            pairs[0, 1] = False
        return pairs.ravel()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.on = self.np_random.integers(0, 2, size=4).astype(np.int8)
        return self.on.copy(), {}

    def step(self, action):
        action = np.asarray(action, dtype=np.int8)
        if self.on[0] and action[0]:
            raise ValueError("switch 0 may not stay on")
        self.on = action
        return self.on.copy(), float(action.sum()), False, False, {"on": int(action.sum())}


gym.register("Shelves-v0", entry_point=Shelves, max_episode_steps=30)
gym.register("Switches-v0", entry_point=Switches, max_episode_steps=20)
