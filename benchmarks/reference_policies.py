"""Returns and success of fixed reference policies: what each task's reward ranks, and what action noise costs.

Run: ``python -m benchmarks.reference_policies [--tasks RigidPushing-v0,RigidInsertion-v0] [--episodes 20]
[--noise 0.3,1] [--gamma 0.99]`` (``--quick`` for a smoke run).

Every policy plays the same seeded episodes (seeds 50,000+, disjoint from training and evaluation) of the default
variants:

- ``hold still``: zero action; ``random``: uniform actions in ``[-1, 1]``. They are the reference of the table.
- ``scripted``: the task's scripted controller, which acts from the simulator's true state
  (:mod:`geomanip.envs.scripted`, :mod:`geomanip.envs.scripted_deformable`).
- ``scripted + N(0, s)``: the scripted action plus Gaussian noise of standard deviation ``s``, clipped to
  ``[-1, 1]``: what a Gaussian policy whose mean were the scripted action scores when it samples its actions, as
  PPO's policy does while it trains (its standard deviation starts at 1).
- On ``RigidPushing-v0`` two partial behaviours an exploring policy finds first: ``approach the object`` (the
  gripper heads for the object's centre) and ``head for the goal`` (the gripper heads for the goal position).
  Whether they beat holding still tells whether the reward leads a learner towards pushing.

Prints per task and policy: mean return; the mean discounted return from the start at ``--gamma`` (what PPO's critic
and advantages weigh: where a policy that solves the task scores below holding still there, the discount, not the
reward, makes the learner prefer holding still); success rate, and the median final goal error that the task's
success criterion reads (``info["error_<name>"]``: the object's, or the hole's, distance to the goal; the rope ends'
gap; the rope's shape error). Learning curves are judged against these (BENCHMARKS.md, "Reinforcement learning").
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from geomanip import envs
from geomanip.envs.scripted import scripted_controller

SEED = 50_000
ERROR = {"RopeClosing-v0": "ends", "RopeShaping-v0": "shape"}
"""The goal error reported per task, where it is not ``distance``."""
Policy = Callable[[gym.Env, np.random.Generator], np.ndarray]


def noisy(controller: Callable[[gym.Env], np.ndarray], std: float) -> Policy:
    """``controller``'s action plus Gaussian noise of standard deviation ``std``, clipped to ``[-1, 1]``."""
    return lambda env, rng: np.clip(controller(env) + rng.normal(0.0, std, env.action_space.shape), -1.0, 1.0)


def head_for(target: Callable[[gym.Env], np.ndarray]) -> Policy:
    """The pushing gripper moves straight at ``target(env)`` (planar), at full speed until close."""

    def act(env: gym.Env, rng: np.random.Generator) -> np.ndarray:
        return np.clip((target(env)[:2] - env.gripper_positions()[0, :2]) * 10.0, -1.0, 1.0)

    return act


def policies(task: str, noise: list[float]) -> dict[str, Policy]:
    scripted = scripted_controller(task)
    out: dict[str, Policy] = {
        "hold still": lambda env, rng: np.zeros(env.action_space.shape),
        "random": lambda env, rng: rng.uniform(-1.0, 1.0, env.action_space.shape),
        "scripted": lambda env, rng: scripted(env),
    }
    out |= {f"scripted + N(0, {s:g})": noisy(scripted, s) for s in noise}
    if task == "RigidPushing-v0":
        out["approach the object"] = head_for(lambda env: env.object_pose()[0])
        out["head for the goal"] = head_for(lambda env: env.goal_pos)
    return out


def play(task: str, policy: Policy, episodes: int, gamma: float) -> tuple[float, float, float, float]:
    """Mean return, mean return discounted by ``gamma``, success rate and median final goal error over ``episodes``
    seeded episodes."""
    env = gym.make(f"{envs.NAMESPACE}/{task}").unwrapped
    rng = np.random.default_rng(0)
    returns, discounted, successes, errors = [], [], [], []
    for i in range(episodes):
        env.reset(seed=SEED + i)
        total, total_discounted, weight, done, info = 0.0, 0.0, 1.0, False, {}
        while not done:
            _, reward, terminated, truncated, info = env.step(policy(env, rng))
            total += reward
            total_discounted += weight * reward
            weight *= gamma
            done = terminated or truncated
        returns.append(total)
        discounted.append(total_discounted)
        successes.append(float(info["is_success"]))
        errors.append(info[f"error_{ERROR.get(task, 'distance')}"])
    env.close()
    return float(np.mean(returns)), float(np.mean(discounted)), float(np.mean(successes)), float(np.median(errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(envs.TASK_IDS), help="comma-separated task ids")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task and policy")
    parser.add_argument("--noise", default="0.3,1", help="standard deviations of the noisy scripted policies")
    parser.add_argument("--gamma", type=float, default=0.99, help="discount of the discounted-return columns")
    parser.add_argument("--quick", action="store_true", help="two episodes per policy (a smoke test)")
    args = parser.parse_args()
    tasks = [envs.bare_id(t) for t in args.tasks.split(",")]
    unknown = [t for t in tasks if t not in envs.TASK_IDS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(envs.TASK_IDS)}")
    noise = [float(s) for s in args.noise.split(",") if s]
    if any(s <= 0 for s in noise):
        parser.error(f"--noise takes positive standard deviations, got {args.noise}")
    if not 0 < args.gamma <= 1:
        parser.error(f"--gamma must be in (0, 1], got {args.gamma}")
    episodes = 2 if args.quick else args.episodes

    print(f"{episodes} episodes per policy (seeds {SEED:,}+), default variants")
    at = f"at {args.gamma:g}"
    header = (
        f"{'task':<26} | {'policy':<22} | {'return':>8} | {'vs hold still':>13} | {at:>8} | {'vs hold still':>13} | "
        f"{'success':>7} | final error"
    )
    print(header)
    print("-" * len(header))
    for task in tasks:
        still, what = None, ERROR.get(task, "distance")
        for name, policy in policies(task, noise).items():
            ret, disc, success, error = play(task, policy, episodes, args.gamma)
            still = (ret, disc) if still is None else still
            print(
                f"{task:<26} | {name:<22} | {ret:8.1f} | {ret - still[0]:+13.1f} | {disc:8.1f} | "
                f"{disc - still[1]:+13.1f} | {success:7.0%} | {what} {error:.3f}"
            )


if __name__ == "__main__":
    main()
