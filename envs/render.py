"""Render a frame of each task under its scripted controller: ``python -m envs.render [--out DIR]``.

Writes ``<out>/<EnvId>.png`` (default ``docs/images``), the frames shown in the README. Rendering is
offscreen through EGL on machines without a display.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import matplotlib.image

import envs
from envs.scripted import scripted_action

# A different shape per task, so the README shows several.
SHAPES = {
    "RigidSliding-v0": "star",
    "RigidPushing-v0": "T",
    "RigidInsertion-v0": "plus",
    "RigidInsertionTwoAgents-v0": "heart",
}
# The two-gripper peg travels far before the hole is in view.
STEPS = {"RigidInsertionTwoAgents-v0": 75}


def render_task(env_id: str, out: Path, seed: int = 0, step: int = 30, size: int = 480) -> Path:
    """Run the scripted controller for ``step`` steps and save the rendered frame as a PNG."""
    env = gym.make(env_id, render_mode="rgb_array", width=size, height=size, shape=SHAPES.get(env_id, "train"))
    env.reset(seed=seed)
    for _ in range(step):
        env.step(scripted_action(env.unwrapped))
    path = out / f"{env_id}.png"
    matplotlib.image.imsave(path, env.render())
    env.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step", type=int, default=None, help="control steps before the frame (default per task)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for env_id in envs.RIGID_TASKS:
        step = args.step if args.step is not None else STEPS.get(env_id, 30)
        print(render_task(env_id, args.out, args.seed, step))


if __name__ == "__main__":
    main()
