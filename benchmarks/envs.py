"""Control steps per second of each environment, against raw ``mj_step`` on the same model, and vectorised.

Run: ``python -m benchmarks.envs`` (``--quick`` for a smoke run).

Single process: episodes with uniformly random actions, timed per control step (``env.step``), then the
same action sequences replayed from the same start states with nothing but ``ctrl`` writes and
``mj_step(nstep=frame_skip)``: the raw physics cost. Overhead = env time / raw time - 1.
Vectorised: total control steps per second of ``gymnasium.vector.AsyncVectorEnv`` and SB3's
``SubprocVecEnv`` with ``--procs`` worker processes.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import mujoco
import numpy as np

from geomanip import envs


def single_process(env_id: str, episodes: int, seed: int = 0) -> tuple[float, float]:
    """(env steps/s, raw physics steps/s) over ``episodes`` random-action episodes."""
    env = gym.make(env_id).unwrapped
    rng = np.random.default_rng(seed)
    env_time = raw_time = 0.0
    steps = 0
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        start = (env.data.qpos.copy(), env.data.qvel.copy(), env.data.mocap_pos.copy(), env.data.mocap_quat.copy())
        actions = rng.uniform(-1, 1, (env.horizon, *env.action_space.shape))
        ctrls = []
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
            ctrls.append(env.data.ctrl.copy())
        env_time += time.perf_counter() - t0
        # Raw replay of the same episode.
        m, d = env.model, env.data
        mujoco.mj_resetData(m, d)
        d.qpos[:], d.qvel[:], d.mocap_pos[:], d.mocap_quat[:] = start
        mujoco.mj_forward(m, d)
        t0 = time.perf_counter()
        for c in ctrls:
            d.ctrl[:] = c
            mujoco.mj_step(m, d, nstep=env.frame_skip)
        raw_time += time.perf_counter() - t0
        steps += len(actions)
    return steps / env_time, steps / raw_time


def vectorised(env_id: str, procs: int, steps: int, kind: str) -> float:
    """Total control steps per second with ``procs`` worker processes."""
    if kind == "gymnasium":
        vec = gym.vector.AsyncVectorEnv([lambda: gym.make(env_id) for _ in range(procs)])
        vec.reset(seed=0)
        sample = vec.action_space.sample
        step = vec.step
    else:
        from stable_baselines3.common.vec_env import SubprocVecEnv

        vec = SubprocVecEnv([lambda: gym.make(env_id) for _ in range(procs)])
        vec.seed(0)
        vec.reset()

        def sample():
            return np.stack([vec.action_space.sample() for _ in range(procs)])

        step = vec.step
    for _ in range(10):
        step(sample())
    t0 = time.perf_counter()
    for _ in range(steps):
        step(sample())
    elapsed = time.perf_counter() - t0
    vec.close()
    return steps * procs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task, single process")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--vec-steps", type=int, default=500, help="vector steps per measurement")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.vec_steps = 2, 20
    print(
        f"mujoco {mujoco.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"vector workers {args.procs}"
    )
    header = (
        f"{'task':<28} | {'env steps/s':>11} | {'raw steps/s':>11} | {'overhead':>8} | "
        f"{'async x' + str(args.procs):>10} | {'subproc x' + str(args.procs):>11}"
    )
    print(header)
    print("-" * len(header))
    for env_id in envs.RIGID_TASKS:
        env_rate, raw_rate = single_process(env_id, args.episodes)
        overhead = raw_rate / env_rate - 1
        async_rate = vectorised(env_id, args.procs, args.vec_steps, "gymnasium")
        sub_rate = vectorised(env_id, args.procs, args.vec_steps, "sb3")
        print(
            f"{env_id:<28} | {env_rate:11.0f} | {raw_rate:11.0f} | {overhead:7.0%} | {async_rate:10.0f} | "
            f"{sub_rate:11.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
