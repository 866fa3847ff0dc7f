"""The deformable tasks: speed against raw ``mj_step``, physics settings, and a soak of random/extreme actions.

Run: ``python -m benchmarks.deformable_envs`` (speed), ``--physics`` (integrator/solver/timestep choices),
``--soak 900`` (episodes of random and extreme actions); ``--quick`` for a smoke run.

- **Speed** (as ``benchmarks/envs.py`` for the rigid tasks): episodes with uniformly random actions, timed per
  control step (``env.step``), then the same controls replayed from the same start states with nothing but
  ``ctrl`` writes and ``mj_step(nstep=frame_skip)``: the raw physics cost. Overhead = env time / raw time - 1.
  Rates per CPU second of the process (what one core gives, unaffected by other jobs on a shared machine) and
  per wall-clock second. Vectorised: total control steps per wall second of SB3's ``SubprocVecEnv`` with
  ``--procs`` workers.
- **Physics**: for each task and each (timestep, integrator, solver), control steps per CPU second of the
  physics (``frame_skip`` steps per 20 ms action, plus the env's stability check) under uniform, random-sign
  and constant full-speed actions, the largest relative edge stretch of the rope or cloth seen at any step,
  and how many episodes went unstable (the env's own check: non-finite or exploding state, or a MuJoCo
  bad-qpos/qvel/qacc warning).
- **Soak**: episodes of four action kinds (uniform random; random signs, i.e. always full speed; one constant
  full-speed vector per episode, which pulls the grippers apart; values up to 3x the range, clipped), counting
  unstable steps, non-finite observations or rewards, exceptions and any MuJoCo warning.
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

IDS = list(envs.DEFORMABLE_TASKS)
ACTION_KINDS = ("uniform", "signs", "constant", "beyond")


def single_process(env_id: str, episodes: int, seed: int = 0, **kwargs) -> dict[str, float]:
    """Control steps/s of the env and of the raw physics over random-action episodes, per wall-clock second
    and per CPU second of this process (the rate one core would give on an otherwise idle machine)."""
    env = gym.make(env_id, **kwargs).unwrapped
    rng = np.random.default_rng(seed)
    env_time = raw_time = env_cpu = raw_cpu = 0.0
    steps = unstable = 0
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        start = (env.data.qpos.copy(), env.data.qvel.copy(), env.data.mocap_pos.copy())
        actions = rng.uniform(-1, 1, (env.horizon, *env.action_space.shape))
        ctrls = []
        t0, c0 = time.perf_counter(), time.process_time()
        for a in actions:
            *_, terminated, _, info = env.step(a)
            ctrls.append(env.data.ctrl.copy())
            if terminated:
                unstable += int(info["unstable"])
                break
        env_time += time.perf_counter() - t0
        env_cpu += time.process_time() - c0
        m, d = env.model, env.data
        mujoco.mj_resetData(m, d)
        d.qpos[:], d.qvel[:], d.mocap_pos[:] = start
        mujoco.mj_forward(m, d)
        t0, c0 = time.perf_counter(), time.process_time()
        for c in ctrls:
            d.ctrl[:] = c
            mujoco.mj_step(m, d, nstep=env.frame_skip)
        raw_time += time.perf_counter() - t0
        raw_cpu += time.process_time() - c0
        steps += len(ctrls)
    return {
        "env_wall": steps / env_time,
        "raw_wall": steps / raw_time,
        "env_cpu": steps / env_cpu,
        "raw_cpu": steps / raw_cpu,
        "unstable": unstable,
    }


def vectorised(env_id: str, procs: int, steps: int) -> float:
    """Total control steps per second of SB3's ``SubprocVecEnv`` with ``procs`` workers."""
    from stable_baselines3.common.vec_env import SubprocVecEnv

    vec = SubprocVecEnv([lambda: gym.make(env_id) for _ in range(procs)])
    vec.seed(0)
    vec.reset()
    rng = np.random.default_rng(0)
    shape = (procs, *vec.action_space.shape)
    for _ in range(5):
        vec.step(rng.uniform(-1, 1, shape))
    t0 = time.perf_counter()
    for _ in range(steps):
        vec.step(rng.uniform(-1, 1, shape))
    elapsed = time.perf_counter() - t0
    vec.close()
    return steps * procs / elapsed


def max_stretch(env) -> float:
    """Largest relative edge-length error of the rope or cloth now (MuJoCo's edge lengths of the last step)."""
    m, d = env.model, env.data
    mujoco.mj_fwdPosition(m, d)  # edge lengths are computed with the constraints
    return float(np.abs(d.flexedge_length / m.flexedge_length0 - 1).max())


def episode_actions(kind: str, rng: np.random.Generator, horizon: int, dim: int) -> np.ndarray:
    if kind == "uniform":
        return rng.uniform(-1, 1, (horizon, dim))
    if kind == "signs":
        return rng.choice([-1.0, 1.0], (horizon, dim))
    if kind == "constant":
        return np.tile(rng.choice([-1.0, 1.0], dim), (horizon, 1))
    return rng.uniform(-3, 3, (horizon, dim))


def soak(episodes: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Run ``episodes`` episodes spread over the tasks and action kinds; counts per task."""
    results = {}
    per_task = max(1, episodes // len(IDS))
    for k, env_id in enumerate(IDS):
        env = gym.make(env_id, holes="all").unwrapped if env_id == "ClothHanging-v0" else gym.make(env_id).unwrapped
        rng = np.random.default_rng(seed + k)
        r = {"episodes": 0, "steps": 0, "unstable": 0, "nonfinite": 0, "exceptions": 0, "warnings": 0, "stretch": 0.0}
        for ep in range(per_task):
            kind = ACTION_KINDS[ep % len(ACTION_KINDS)]
            env.reset(seed=seed + 1000 * k + ep)
            actions = episode_actions(kind, rng, env.horizon, env.action_space.shape[0])
            try:
                for a in actions:
                    obs, reward, terminated, _, info = env.step(a)
                    r["steps"] += 1
                    finite = np.isfinite(reward) and all(np.isfinite(v).all() for v in obs.values())
                    r["nonfinite"] += int(not finite)
                    if terminated:
                        r["unstable"] += int(info["unstable"])
                        break
                r["stretch"] = max(r["stretch"], max_stretch(env))
            except Exception as exc:  # counted and reported: the soak must never crash
                r["exceptions"] += 1
                print(f"  {env_id} episode {ep} ({kind}): {type(exc).__name__}: {exc}", flush=True)
            r["warnings"] += int(env.data.warning.number.sum())
            r["episodes"] += 1
        results[env_id] = r
        print(f"  {env_id}: {r}", flush=True)
    return results


def physics(episodes: int) -> None:
    """Raw speed and stability of each task under each (timestep, integrator, solver)."""
    options = [
        (0.01, "implicitfast", "Newton"),
        (0.01, "implicitfast", "CG"),
        (0.01, "Euler", "Newton"),
        (0.005, "implicitfast", "Newton"),
        (0.005, "implicitfast", "CG"),
        (0.005, "Euler", "Newton"),
        (0.0025, "implicitfast", "Newton"),
    ]
    header = (
        f"{'task':<16} | {'dt':>6} | {'integrator':<12} | {'solver':<6} | {'ctrl/s cpu':>10} | {'stretch':>8} | "
        "unstable"
    )
    print(header)
    print("-" * len(header))
    for env_id in IDS:
        for dt, integrator, solver in options:
            # The same control period (20 ms) whatever the step; edge constraints as stiff as the step allows.
            env = gym.make(env_id, timestep=dt, integrator=integrator, solver=solver).unwrapped
            rng = np.random.default_rng(0)
            raw_time, steps, unstable, stretch = 0.0, 0, 0, 0.0
            for ep in range(episodes):
                for kind in ("uniform", "signs", "constant"):
                    env.reset(seed=ep)
                    d = env.data
                    actions = episode_actions(kind, rng, env.horizon, env.action_space.shape[0])
                    for a in actions:
                        d.ctrl[:] = a * env.linear_scale
                        t0 = time.process_time()
                        ok = env._simulate()  # mj_step x frame_skip plus the env's stability check
                        raw_time += time.process_time() - t0
                        steps += 1
                        if not ok:
                            unstable += 1
                            break
                        stretch = max(stretch, max_stretch(env))
            name = env_id.replace("-v0", "")
            print(
                f"{name:<16} | {dt:6.4f} | {integrator:<12} | {solver:<6} | {steps / raw_time:10.0f} | "
                f"{stretch:7.1%} | {unstable}/{3 * episodes}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=5, help="episodes per task, single process")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--vec-steps", type=int, default=200, help="vector steps per measurement")
    parser.add_argument("--physics", action="store_true", help="compare timestep/integrator/solver choices")
    parser.add_argument("--soak", type=int, default=0, help="episodes of random/extreme actions (0: no soak)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.vec_steps = 1, 10
    print(f"mujoco {mujoco.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    if args.physics:
        physics(args.episodes)
        return
    if args.soak:
        t0 = time.perf_counter()
        results = soak(args.soak)
        total = {k: sum(r[k] for r in results.values()) for k in ("episodes", "steps", "unstable", "nonfinite")}
        total["exceptions"] = sum(r["exceptions"] for r in results.values())
        print(f"soak total: {total}, {time.perf_counter() - t0:.0f} s")
        return
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    header = (
        f"{'task':<16} | {'env/s cpu':>9} | {'raw/s cpu':>9} | {'overhead':>8} | {'env/s wall':>10} | "
        f"{'raw/s wall':>10} | {'subproc x' + str(args.procs):>11}"
    )
    print(header)
    print("-" * len(header))
    for env_id in IDS:
        r = single_process(env_id, args.episodes)
        sub_rate = vectorised(env_id, args.procs, args.vec_steps)
        print(
            f"{env_id.replace('-v0', ''):<16} | {r['env_cpu']:9.0f} | {r['raw_cpu']:9.0f} | "
            f"{r['raw_cpu'] / r['env_cpu'] - 1:7.0%} | {r['env_wall']:10.0f} | {r['raw_wall']:10.0f} | "
            f"{sub_rate:11.0f}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
