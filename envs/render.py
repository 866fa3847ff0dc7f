"""Render a frame of each task under its scripted controller: ``python -m geomanip.envs.render [--out DIR]``.

Writes ``<out>/<EnvId>.png`` (default ``docs/images``), the frames shown in the README. Rendering is
offscreen through EGL on machines without a display.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import matplotlib.image

from geomanip import envs
from geomanip.envs.scripted import scripted_controller

# A different shape per task, so the README shows several.
SHAPES = {
    "RigidSliding-v0": "star",
    "RigidPushing-v0": "T",
    "RigidInsertion-v0": "plus",
    "RigidInsertionTwoAgents-v0": "heart",
}
# The two-gripper peg travels far before the hole is in view; the deformable tasks show their end state.
STEPS = {"RigidInsertionTwoAgents-v0": 75, "RopeClosing-v0": 150, "RopeShaping-v0": 199, "ClothHanging-v0": 99}
SEEDS = {"RopeShaping-v0": 6}  # a start where the scripted W succeeds


def render_task(env_id: str, out: Path, seed: int = 0, step: int = 30, size: int = 480) -> Path:
    """Run the scripted controller for ``step`` steps and save the rendered frame as a PNG."""
    deformable = env_id in envs.DEFORMABLE_TASKS
    kwargs = {} if deformable else {"shape": SHAPES.get(env_id, "train")}
    env = gym.make(env_id, render_mode="rgb_array", width=size, height=size, **kwargs)
    controller = scripted_controller(env_id)
    env.reset(seed=SEEDS.get(env_id, seed))
    for _ in range(step):
        env.step(controller(env.unwrapped))
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
    for env_id in [*envs.RIGID_TASKS, *envs.DEFORMABLE_TASKS]:
        step = args.step if args.step is not None else STEPS.get(env_id, 30)
        print(render_task(env_id, args.out, args.seed, step))


if __name__ == "__main__":
    main()
