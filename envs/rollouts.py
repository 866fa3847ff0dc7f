"""Write rope rollouts as multi-agent trajectories for the motion models.

``python -m geomanip.envs.rollouts --task RopeClosing-v0 --episodes 100 --out data/rope_closing [--policy scripted]``

The motion package never imports ``envs``; it reads these files. Each rope link is an agent. One file,
``<out>/rollouts.npz``, written atomically, holds (``S`` episodes, ``T = horizon + 1`` frames including the start,
``N`` links):

==================  ===================  ================================================================
key                 shape, dtype         meaning
==================  ===================  ================================================================
``positions``       ``[S, T, N, 3]`` f4  world-frame link midpoints (m), frame 0 the reset state
``grippers``        ``[S, T, 2, 3]`` f4  the two grippers (= rope ends) (m)
``actions``         ``[S, T - 1, A]`` f4 the actions taken between frames (in ``[-1, 1]``)
``success``         ``[S]`` bool         ``info["is_success"]`` at the last frame
``seeds``           ``[S]`` i8           the reset seed of each episode
``dt``              scalar f8            seconds between frames (the control period)
``task``            str                  the environment id
``policy``          str                  ``scripted``, ``random`` or ``smooth``
==================  ===================  ================================================================

Episodes that end early (an unstable physics step) are dropped and counted on stdout, so every episode has
``T`` frames. Policies: ``scripted`` (:mod:`geomanip.envs.scripted_deformable`), ``random`` (uniform actions, each step
independent) and ``smooth`` (random velocities that change slowly: an Ornstein-Uhlenbeck process with a
0.5 s time constant, clipped to ``[-1, 1]``), the last two giving motions the scripted controllers never make.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np

from geomanip import envs
from geomanip.envs.deformable import CONTROL_DT
from geomanip.envs.rope import RopeTaskEnv
from geomanip.envs.scripted_deformable import scripted_deformable_controller

__all__ = ["collect", "write_rollouts"]

POLICIES = ("scripted", "random", "smooth")


def collect(task: str, episodes: int, policy: str = "scripted", seed: int = 0) -> dict[str, np.ndarray]:
    """Run ``episodes`` episodes of a rope task under ``policy``; arrays laid out as in the module docstring."""
    if task not in envs.DEFORMABLE_TASKS:
        raise ValueError(f"task must be one of {list(envs.DEFORMABLE_TASKS)}, got {task!r}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if episodes < 1:
        raise ValueError(f"episodes must be positive, got {episodes}")
    env = gym.make(task).unwrapped
    if not isinstance(env, RopeTaskEnv):
        raise ValueError(f"{task} has no rope: rollouts are written for the rope tasks only")
    rng = np.random.default_rng(seed)
    dim = env.action_space.shape[0]
    theta = CONTROL_DT / 0.5  # Ornstein-Uhlenbeck mean reversion per step (0.5 s time constant)
    pos, grip, acts, success, seeds = [], [], [], [], []
    dropped = 0
    controller = scripted_deformable_controller(task)
    for ep in range(episodes):
        episode_seed = seed + ep
        obs, _ = env.reset(seed=episode_seed)
        p, g, a_list = [obs["link_pos"]], [obs["gripper_pos"]], []
        noise = np.zeros(dim)
        complete = True
        for _ in range(env.horizon):
            if policy == "scripted":
                a = controller(env)
            elif policy == "random":
                a = rng.uniform(-1, 1, dim)
            else:
                noise += -theta * noise + np.sqrt(2 * theta) * rng.normal(size=dim)
                a = np.clip(noise, -1, 1)
            obs, _, terminated, _, info = env.step(a)
            p.append(obs["link_pos"])
            g.append(obs["gripper_pos"])
            a_list.append(np.asarray(a, dtype=np.float32))
            if terminated:
                complete = False
                break
        if not complete:
            dropped += 1
            continue
        pos.append(np.stack(p))
        grip.append(np.stack(g))
        acts.append(np.stack(a_list))
        success.append(bool(info["is_success"]))
        seeds.append(episode_seed)
    if dropped:
        print(f"dropped {dropped} episode(s) that ended on an unstable step")
    if not pos:
        raise RuntimeError("every episode ended early; nothing to write")
    return {
        "positions": np.stack(pos).astype(np.float32),
        "grippers": np.stack(grip).astype(np.float32),
        "actions": np.stack(acts).astype(np.float32),
        "success": np.array(success),
        "seeds": np.array(seeds, dtype=np.int64),
        "dt": np.float64(CONTROL_DT),
        "task": np.array(task),
        "policy": np.array(policy),
    }


def write_rollouts(arrays: dict[str, np.ndarray], out: Path) -> Path:
    """Write ``<out>/rollouts.npz`` atomically (a reader never sees a half-written file); returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rollouts.npz"
    fd, tmp = tempfile.mkstemp(dir=out, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="RopeClosing-v0", help="RopeClosing-v0 or RopeShaping-v0")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--policy", default="scripted", choices=POLICIES)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1 per episode)")
    parser.add_argument("--out", type=Path, default=Path("data/rope_closing"))
    args = parser.parse_args()
    arrays = collect(args.task, args.episodes, args.policy, args.seed)
    path = write_rollouts(arrays, args.out)
    s, t, n, _ = arrays["positions"].shape
    print(f"{path}: {s} episodes x {t} frames x {n} links, {arrays['success'].mean():.0%} successful")


if __name__ == "__main__":
    main()
