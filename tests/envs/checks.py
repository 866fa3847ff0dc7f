"""Checks every environment test module runs the same way: the API checkers and seeded rollouts."""

import warnings

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env


def run_env_checkers(env: gym.Env) -> None:
    """Gymnasium's and SB3's environment checkers on an unwrapped environment."""
    check_env(env, skip_render_check=True)
    with warnings.catch_warnings():
        # SB3 notes that [nodes, 3] entries are not 1-D; they are graph node arrays, flattened by its extractor.
        warnings.filterwarnings("ignore", message=".*unconventional shape.*")
        sb3_check_env(env)


def flat(obs: dict[str, np.ndarray]) -> np.ndarray:
    """An observation dict as one vector (key order as the environment returns them)."""
    return np.concatenate([v.ravel() for v in obs.values()])


def seeded_rollout(env_id: str, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat observations ``[steps + 1, dim]`` and rewards ``[steps]`` under random actions seeded by ``seed``."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace, rewards = [flat(obs)], []
    for _ in range(steps):
        obs, r, *_ = env.step(env.action_space.sample())
        trace.append(flat(obs))
        rewards.append(r)
    return np.stack(trace), np.array(rewards)
