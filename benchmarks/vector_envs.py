"""Control steps per second of the batched vector environment against raw physics on the same models.

Run: ``python -m benchmarks.vector_envs`` (``--quick`` for a smoke run).

For each rigid task and each configuration (a single environment; :class:`geomanip.envs.vector.RigidVectorEnv` with
16, 64 and 256 environments), a repetition runs whole episodes from a reset with uniformly random actions (the
resets that end them, automatic for the vector environment, included), then replays the same controls from
the same start states on the same models and data with nothing but ``ctrl`` writes and
``mj_step(m, d, nstep=frame_skip)``: the raw physics cost. The vector configurations also replay them
through ``mujoco.rollout`` (all environments in one call per control step, one thread), the alternative to
the ``mj_step`` loop. Environment and raw runs alternate, so machine load hits both alike; the table shows
medians over repetitions of steps/s and of overhead = env time / raw time - 1.

Times are CPU times of this process (``time.process_time``), which the other jobs of a shared machine
disturb less than wall-clock times; everything here runs on one thread.
"""

from __future__ import annotations

import argparse
import os

# Tiny matrix products only: keep OpenBLAS from starting threads whose spinning would count as CPU time.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import platform  # noqa: E402
import time  # noqa: E402

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from mujoco import rollout  # noqa: E402

from geomanip import envs  # noqa: E402
from geomanip.envs.base import STATE_SPEC  # noqa: E402
from geomanip.envs.vector import RigidVectorEnv  # noqa: E402

_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS
# What the rollout must be given per step besides the physics state: controls and the goal's mocap pose.
_CONTROL = mujoco.mjtState.mjSTATE_CTRL | mujoco.mjtState.mjSTATE_MOCAP_POS | mujoco.mjtState.mjSTATE_MOCAP_QUAT


class Episode:
    """What a raw replay needs: each environment's model and start state, and the controls it got.

    ``groups`` labels environments whose models are the same scene (one shape): ``mujoco.rollout`` needs
    models of one size signature per call, so its replay makes one call per group and step.
    """

    def __init__(
        self, models: list[mujoco.MjModel], datas: list[mujoco.MjData], frame_skip: int, groups: list[str]
    ) -> None:
        self.models, self.frame_skip = list(models), frame_skip
        self.starts = np.stack([_get_state(m, d, STATE_SPEC) for m, d in zip(models, datas, strict=True)])
        # Replays run on their own data: the environments' may be in use by later episodes by then.
        self.datas = [mujoco.MjData(m) for m in self.models]
        self.groups = [np.flatnonzero(np.array(groups) == g) for g in sorted(set(groups))]
        self.ctrls: list[np.ndarray] = []  # per control step, [B, nu]

    def restore(self) -> None:
        for m, d, s in zip(self.models, self.datas, self.starts, strict=True):
            mujoco.mj_setState(m, d, s, STATE_SPEC)

    def replay_mj_step(self) -> float:
        """CPU seconds of the raw replay with one ``mj_step(m, d, frame_skip)`` per environment and step."""
        self.restore()
        pairs = list(zip(self.models, self.datas, strict=True))
        t0 = time.process_time()
        for ctrl in self.ctrls:
            for i, (m, d) in enumerate(pairs):
                d.ctrl[:] = ctrl[i]
                mujoco.mj_step(m, d, self.frame_skip)
        return time.process_time() - t0

    def replay_rollout(self, pool: rollout.Rollout) -> float:
        """CPU seconds of the raw replay with one ``mujoco.rollout`` call per shape and step (one thread).

        ``rollout`` cannot return the solver's warm start, so each call starts from none (as an environment
        built on it would); the physics is therefore close to, not identical with, the ``mj_step`` replay.
        """
        self.restore()
        fs, t0 = self.frame_skip, 0.0
        calls = []
        for idx in self.groups:
            models = [self.models[i] for i in idx]
            state = np.stack([_get_state(self.models[i], self.datas[i], _FULL) for i in idx])
            control = np.stack([_get_state(self.models[i], self.datas[i], _CONTROL) for i in idx])
            control = np.ascontiguousarray(np.repeat(control[:, None], fs, axis=1))
            out = np.empty((len(idx), fs, state.shape[1]))
            calls.append((idx, models, [mujoco.MjData(models[0])], state, control, out))
        nu = self.models[0].nu
        t0 = time.process_time()
        for ctrl in self.ctrls:
            for idx, models, thread_data, state, control, out in calls:
                control[:, :, :nu] = ctrl[idx, None]
                pool.rollout(
                    models, thread_data, state, control, control_spec=_CONTROL, skip_checks=True, nstep=fs, state=out
                )
                state[:] = out[:, -1]
        return time.process_time() - t0


def _get_state(m: mujoco.MjModel, d: mujoco.MjData, spec: int) -> np.ndarray:
    s = np.empty(mujoco.mj_stateSize(m, spec))
    mujoco.mj_getState(m, d, s, spec)
    return s


def single_rep(env: envs.MujocoGraphEnv, episodes: int, rng: np.random.Generator) -> tuple[float, float, int]:
    """(env CPU s, raw CPU s, control steps) of ``episodes`` single-environment episodes with their resets."""
    env_time = raw_time = 0.0
    steps = 0
    for _ in range(episodes):
        actions = rng.uniform(-1, 1, (env.horizon, *env.action_space.shape))
        t0 = time.process_time()
        env.reset(seed=int(rng.integers(2**31)))
        env_time += time.process_time() - t0
        episode = Episode([env.model], [env.data], env.frame_skip, [env.shape.name])
        episode.ctrls = [env.action_to_ctrl(a[None]) for a in actions]  # what step() writes into ctrl
        t0 = time.process_time()
        for a in actions:
            env.step(a)
        env_time += time.process_time() - t0
        raw_time += episode.replay_mj_step()
        steps += len(actions)
    return env_time, raw_time, steps


def vector_rep(vec: RigidVectorEnv, rng: np.random.Generator, pool: rollout.Rollout) -> tuple[float, float, float, int]:
    """(env CPU s, raw ``mj_step`` CPU s, raw ``rollout`` CPU s, control steps) of one episode of every
    environment from the state the last one left (all reset together), the resets at its end included."""
    actions = rng.uniform(-1, 1, (vec.task.horizon, vec.num_envs, *vec.action_space.shape)).astype(np.float32)
    episode = Episode(vec.physics.models, vec.physics.datas, vec.task.frame_skip, vec._shapes)
    episode.ctrls = [vec.task.action_to_ctrl(a.astype(np.float64)) for a in actions]
    t0 = time.process_time()
    for a in actions:
        vec.step(a)
    env_time = time.process_time() - t0
    return env_time, episode.replay_mj_step(), episode.replay_rollout(pool), actions.shape[0] * vec.num_envs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="repetitions (the table shows medians)")
    parser.add_argument("--single-episodes", type=int, default=8, help="single-environment episodes per rep")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--tasks", nargs="+", default=list(envs.RIGID_TASKS))
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 rep, 1 episode, 4 environments")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.single_episodes, args.num_envs = 1, 1, [4]
    print(
        f"mujoco {mujoco.__version__}, numpy {np.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; CPU time; medians of {args.reps} reps"
    )
    header = (
        f"{'task':<27} | {'config':<11} | {'env steps/s':>11} | {'raw steps/s':>11} | {'overhead':>8} | "
        f"{'rollout steps/s':>15}"
    )
    print(header)
    print("-" * len(header))
    pool = rollout.Rollout(nthread=0)
    for task in args.tasks:
        rng = np.random.default_rng(0)
        single = gym.make(task).unwrapped
        for name in single.shapes:  # compile every scene before timing
            single.reset(options={"shape": name})
        vecs = {n: RigidVectorEnv(task, n, seed=1) for n in args.num_envs}
        for vec in vecs.values():
            vec.reset()
            for name in vec.task.shapes:  # the environments share one cache of compiled scenes
                vec.task.reset(options={"shape": name})
            vec.reset()
        rows: dict[str, list[tuple[float, float, float]]] = {"single": [], **{f"vector x{n}": [] for n in vecs}}
        for _ in range(args.reps):
            env_t, raw_t, steps = single_rep(single, args.single_episodes, rng)
            rows["single"].append((steps / env_t, steps / raw_t, float("nan")))
            for n, vec in vecs.items():
                env_t, raw_t, roll_t, steps = vector_rep(vec, rng, pool)
                rows[f"vector x{n}"].append((steps / env_t, steps / raw_t, steps / roll_t))
        for config, values in rows.items():
            v = np.array(values)
            env_rate, raw_rate, roll_rate = np.median(v, axis=0)
            overhead = np.median(v[:, 1] / v[:, 0]) - 1  # env time / raw time - 1, per rep
            roll = "" if np.isnan(roll_rate) else f"{roll_rate:15.0f}"
            print(
                f"{task:<27} | {config:<11} | {env_rate:11.0f} | {raw_rate:11.0f} | {overhead:7.0%} | {roll:>15}",
                flush=True,
            )
        for vec in vecs.values():
            vec.close()
    pool.close()


if __name__ == "__main__":
    main()
