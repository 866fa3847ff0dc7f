"""A batched vector environment for the rigid tasks: many environments stepped per Python call.

A single rigid environment spends more time in Python (action checks, observation, reward, info) than in
MuJoCo: its scenes are small (BENCHMARKS.md). :class:`RigidVectorEnv` steps ``num_envs`` environments of
one task at once: the physics of each is one ``mj_step(m, d, frame_skip)`` call, and everything else
(action checks, read-out of the bodies, observation, goal errors, reward terms, success, episode ends) is a
handful of numpy operations on arrays with a leading ``num_envs`` dimension, done by the same batched
functions of :mod:`geomanip.envs.rigid` that the single environment calls with a batch of one. Its observations,
rewards and infos are bit-identical to those of the single environments (a test checks it against SB3's
``DummyVecEnv``).

The physics sits behind a small batch interface (:mod:`geomanip.envs.mujoco_batch`): C MuJoCo by default, or
MuJoCo Warp on a GPU (``backend="warp"``, :mod:`geomanip.envs.warp_batch`), where the same task functions run on
torch tensors on the device and only what SB3 needs is copied to the host.

It implements Stable-Baselines3's :class:`~stable_baselines3.common.vec_env.VecEnv`, so PPO takes it
directly: finished episodes reset within the same step; the finished episode's last observation is in
``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` tells a time limit from a failure.
Wrap it in :class:`~stable_baselines3.common.vec_env.VecMonitor` for episode statistics.

:class:`GymRigidVectorEnv` puts Gymnasium's :class:`~gymnasium.vector.VectorEnv` interface on top of it (same-step
autoreset, batched spaces, dict infos): it is the rigid tasks' ``vector_entry_point``, so
``gym.make_vec("geomanip/RigidInsertion-v0", num_envs=8)`` returns one.

The sub-environments (:attr:`RigidVectorEnv.envs`, unwrapped task instances) own the MuJoCo models and data
and sample each episode (shape, start, goal) with their own seeded generators, through their public
:meth:`~geomanip.envs.rigid.RigidTaskEnv.begin_episode`, so episodes are those of the single environment. The
C backend steps their data directly (with the single environment's :func:`~geomanip.envs.base.step_physics`
and :func:`~geomanip.envs.base.validate_actions`): their own step counters and cached read-outs are not
updated, and ``env_method``/``get_attr`` see only what lives in ``model`` and ``data`` (with the Warp
backend, ``data`` holds the episode's start; :meth:`RigidVectorEnv.get_images` copies the worlds' poses in).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from geomanip.envs.arrays import to_numpy
from geomanip.envs.base import validate_actions
from geomanip.envs.mujoco_batch import MujocoBatch
from geomanip.envs.rigid import RigidTaskEnv, keypoint_observation
from geomanip.envs.rigid_insertion import RigidInsertionEnv
from geomanip.envs.rigid_insertion_two_agents import RigidInsertionTwoAgentsEnv
from geomanip.envs.rigid_pushing import RigidPushingEnv
from geomanip.envs.rigid_sliding import RigidSlidingEnv
from geomanip.envs.shapes import NUM_KEYPOINTS

__all__ = [
    "GymRigidVectorEnv",
    "RigidVectorEnv",
    "assign_shapes",
    "make_vector_env",
    "rigid_insertion_two_agents_vector_env",
    "rigid_insertion_vector_env",
    "rigid_pushing_vector_env",
    "rigid_sliding_vector_env",
]


class RigidVectorEnv(VecEnv):
    """``num_envs`` environments of one rigid task, stepped as a batch (SB3 ``VecEnv`` interface).

    Args:
        task: a registered id (``"RigidInsertion-v0"``, ...) or a :class:`~geomanip.envs.rigid.RigidTaskEnv` subclass.
        num_envs: number of environments.
        seed: if given, environment ``i`` is seeded with ``seed + i`` at the first :meth:`reset` (as
            ``VecEnv.seed``).
        backend: ``"mujoco"`` (C MuJoCo, :class:`~geomanip.envs.mujoco_batch.MujocoBatch`) or ``"warp"`` (MuJoCo
            Warp, :class:`~geomanip.envs.warp_batch.WarpBatch`; needs ``pip install "geomanip[warp]"``).
        device: where the Warp backend simulates and computes the task logic: ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"`` (the C backend runs on the CPU only).
        fixed_shapes: give each environment one shape for all its episodes, the environment's shapes dealt out
            in contiguous blocks (:func:`assign_shapes`), instead of a draw per episode. The Warp backend needs it
            (one Warp model per shape); with the C backend it gives the same episodes as the Warp backend.
        warp_options: keyword arguments of :class:`~geomanip.envs.warp_batch.WarpBatch` (``nconmax``, ``njmax``).
        infos: ``"every_step"`` (the single environment's info for every environment at every step) or
            ``"episode_end"`` (only finished episodes get their info, the others an empty dict: all SB3's
            training reads; building 4,096 info dicts costs milliseconds a step, which matters on a GPU).
        **env_kwargs: keyword arguments of every environment (``shape``, ``horizon``, reward weights,
            ``render_mode``, ...).

    Shapes: observations are a dict of ``[num_envs, nodes, 3]`` float32 arrays (the keys of the single
    environment); rewards ``[num_envs]`` float32 and dones ``[num_envs]`` bool, as SB3's ``DummyVecEnv``. With the
    Warp backend the task logic runs in torch on ``device`` and these are copied to the host once per step (SB3's
    interface takes NumPy).
    """

    def __init__(
        self,
        task: str | type[RigidTaskEnv],
        num_envs: int,
        seed: int | None = None,
        backend: str = "mujoco",
        device: str = "cpu",
        fixed_shapes: bool | None = None,
        warp_options: dict[str, Any] | None = None,
        infos: str = "every_step",
        **env_kwargs: Any,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"RigidVectorEnv: num_envs must be positive, got {num_envs}")
        if backend not in ("mujoco", "warp"):
            raise ValueError(f"RigidVectorEnv: backend must be 'mujoco' or 'warp', got {backend!r}")
        if infos not in ("every_step", "episode_end"):
            raise ValueError(f"RigidVectorEnv: infos must be 'every_step' or 'episode_end', got {infos!r}")
        self.infos = infos
        if backend == "mujoco" and device != "cpu":
            raise ValueError(f"RigidVectorEnv: the 'mujoco' backend runs on the CPU; device={device!r} needs 'warp'")
        if fixed_shapes is None:
            fixed_shapes = backend == "warp"
        elif backend == "warp" and not fixed_shapes:
            raise ValueError("RigidVectorEnv: the 'warp' backend needs fixed_shapes=True (one Warp model per shape)")
        make = (lambda kw: gym.make(task, **kw).unwrapped) if isinstance(task, str) else (lambda kw: task(**kw))
        first = make(env_kwargs)
        if not isinstance(first, RigidTaskEnv):
            raise TypeError(
                f"RigidVectorEnv: {task!r} is not a rigid task (RigidTaskEnv); use SB3's DummyVecEnv for other tasks"
            )
        kwargs = [env_kwargs] * num_envs
        if fixed_shapes:
            shapes = assign_shapes(first.shapes, num_envs)
            left_out = [s for s in first.shapes if s not in shapes]
            if left_out:
                gym.logger.warn(
                    f"RigidVectorEnv: {num_envs} environments with one shape each leave out shapes {left_out}; use at "
                    f"least {len(first.shapes)} environments to cover them all"
                )
            kwargs = [{**env_kwargs, "shape": shape} for shape in shapes]
            first.close()
            first = make(kwargs[0])
        self.envs: list[RigidTaskEnv] = [first] + [make(kw) for kw in kwargs[1:]]
        # All environments share the task's parameters, so any of them can evaluate the batched task logic.
        self.task: RigidTaskEnv = self.envs[0]
        # And one cache of compiled scenes: each shape compiles once, not once per environment.
        for env in self.envs[1:]:
            env.share_scenes(self.task)
        super().__init__(num_envs, self.task.observation_space, self.task.action_space)
        self.backend = backend
        if backend == "warp":
            from geomanip.envs.warp_batch import WarpBatch

            self.physics: MujocoBatch | WarpBatch = WarpBatch(num_envs, device, **(warp_options or {}))
        else:
            self.physics = MujocoBatch(num_envs)
        # Per-environment episode data, in the physics' array kind (NumPy, or torch tensors on its device).
        b, p = num_envs, self.physics
        self._t = p.asarray(np.zeros(b, dtype=np.int64))
        self._prev_action = p.asarray(np.zeros((b, *self.action_space.shape)))
        self._goal_pos = p.asarray(np.zeros((b, 3)))
        self._goal_rot = p.asarray(np.zeros((b, 3, 3)))
        self._local_keypoints = p.asarray(np.zeros((b, NUM_KEYPOINTS, 3)))
        self._shapes = [""] * b
        self._obs = {k: np.zeros((b, *s.shape), dtype=s.dtype) for k, s in self.observation_space.spaces.items()}
        self._actions: np.ndarray | None = None
        self._started = False
        if seed is not None:
            self.seed(seed)

    # ------------------------------------------------------------------------------------------------
    def _reset_envs(self, indices: list[int], seeds: list[int | None], options: list[dict[str, Any]]) -> None:
        """Reset environments ``indices`` and write their first observations into ``self._obs``.

        Each environment starts its episode as its ``reset`` does (``begin_episode``); the observations and
        reset infos of all of them then come from one batched pass (a test checks them against single resets).
        """
        episodes = [
            self.envs[i].begin_episode(seed, opts) for i, seed, opts in zip(indices, seeds, options, strict=True)
        ]
        physics = self.physics
        physics.load(indices, episodes)
        self._started = True
        idx = physics.index(indices)
        self._t[idx] = 0
        self._prev_action[idx] = 0.0
        self._goal_pos[idx] = physics.asarray(np.stack([e.goal_pos for e in episodes]))
        self._goal_rot[idx] = physics.asarray(np.stack([e.goal_rot for e in episodes]))
        self._local_keypoints[idx] = physics.asarray(np.stack([e.local_keypoints for e in episodes]))
        for i, e in zip(indices, episodes, strict=True):
            self._shapes[i] = e.shape
        task, goal_pos, goal_rot = self.task, self._goal_pos[idx], self._goal_rot[idx]
        s = task.readout(physics.qpos[idx], physics.qvel[idx])
        errors = task.goal_errors(s, goal_pos, goal_rot)
        obs = keypoint_observation(s, goal_pos, goal_rot, self._local_keypoints[idx], task.has_yaw)
        for k, v in obs.items():
            self._obs[k][indices] = to_numpy(v)
        keys = ["is_success", "shape", *(f"error_{k}" for k in errors)]
        columns = [to_numpy(task.success(s, errors, goal_pos)).tolist(), [self._shapes[i] for i in indices]]
        columns += [to_numpy(e).tolist() for e in errors.values()]
        for i, row in zip(indices, zip(*columns, strict=True), strict=True):
            self.reset_infos[i] = dict(zip(keys, row, strict=True))

    def reset(self) -> VecEnvObs:
        self._reset_envs(list(range(self.num_envs)), self._seeds, self._options)
        # Seeds and options are used once (SB3's convention).
        self._reset_seeds()
        self._reset_options()
        return {k: v.copy() for k, v in self._obs.items()}

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if not self._started or self._actions is None:
            raise RuntimeError("RigidVectorEnv: call reset() before step()")
        task, physics = self.task, self.physics
        a, clipped = validate_actions(self._actions, self.action_space.shape, type(self).__name__)
        self._actions = None
        a = physics.asarray(a)
        stable = physics.step(task.action_to_ctrl(a), task.frame_skip, task.max_speed)
        self._t += 1
        s = task.readout(physics.qpos, physics.qvel)
        errors = task.goal_errors(s, self._goal_pos, self._goal_rot)
        obs = keypoint_observation(s, self._goal_pos, self._goal_rot, self._local_keypoints, task.has_yaw)
        terms = task.reward_terms(s, errors, a, self._prev_action, self._t)
        self._prev_action[:] = a
        reward = sum(terms.values())
        success = task.success(s, errors, self._goal_pos)
        truncated = self._t >= task.horizon
        dones = truncated | ~stable

        # To the host (no-ops for NumPy): SB3 takes NumPy observations and one info dict per environment, with
        # Python floats and bools, as the single environment returns them, zipped from whole columns.
        obs = {k: to_numpy(v) for k, v in obs.items()}
        dones = to_numpy(dones)
        keys = ["is_success", "shape", *(f"error_{k}" for k in errors), *(f"reward_{k}" for k in terms)]
        keys += ["action_clipped", "unstable", "TimeLimit.truncated"]
        done = np.flatnonzero(dones).tolist()
        rows = slice(None) if self.infos == "every_step" else done
        columns = [success, *errors.values(), *terms.values(), clipped, ~stable, truncated & stable]
        columns = [to_numpy(c)[rows].tolist() for c in columns]
        columns.insert(1, self._shapes if self.infos == "every_step" else [self._shapes[i] for i in done])
        rows_infos = [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
        if self.infos == "every_step":
            infos = rows_infos
        else:
            infos = [{} for _ in range(self.num_envs)]
            for i, info in zip(done, rows_infos, strict=True):
                infos[i] = info
        # Finished episodes: keep their last observation, reset them, and return their first one instead.
        self._obs = obs
        if done:
            for i in done:
                infos[i]["terminal_observation"] = {k: v[i].copy() for k, v in obs.items()}
            self._reset_envs(done, [None] * len(done), [{}] * len(done))
        # obs is new every step and not kept beyond the next: no copy needed (unlike DummyVecEnv's buffers).
        return obs, to_numpy(reward).astype(np.float32), dones, infos

    # ------------------------------------------------------------------------------------------------
    # The rest of SB3's interface, on the sub-environments.
    def close(self) -> None:
        self.physics.close()
        for env in self.envs:
            env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            gym.logger.warn(f"RigidVectorEnv: render_mode is {self.render_mode!r}, images need 'rgb_array'")
            return [None] * self.num_envs
        images = []
        for i, env in enumerate(self.envs):
            # The batched step skips this refresh: bring the poses the renderer draws up to date.
            self.physics.write_back(i, env.data)
            mujoco.mj_kinematics(env.model, env.data)
            images.append(env.render())
        return images

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.envs[i], attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._get_indices(indices):
            setattr(self.envs[i], attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return [getattr(self.envs[i], method_name)(*method_args, **method_kwargs) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        # The sub-environments are bare task instances.
        return [False for _ in self._get_indices(indices)]


def make_vector_env(
    task: str | type[RigidTaskEnv],
    num_envs: int,
    seed: int | None = None,
    backend: str = "mujoco",
    device: str = "cpu",
    **env_kwargs: Any,
) -> RigidVectorEnv:
    """A :class:`RigidVectorEnv` of ``num_envs`` environments of ``task`` (a registered rigid id or class), on C
    MuJoCo (``backend="mujoco"``) or MuJoCo Warp (``backend="warp"``, ``device="cuda"`` or ``"cpu"``)."""
    return RigidVectorEnv(task, num_envs, seed=seed, backend=backend, device=device, **env_kwargs)


def assign_shapes(shapes: Sequence[str], num_envs: int) -> list[str]:
    """One shape per environment, ``shapes`` dealt out in contiguous blocks of (nearly) equal size: environment
    ``i`` gets ``shapes[i * len(shapes) // num_envs]``. With fewer environments than shapes, some are left out."""
    return [shapes[i * len(shapes) // num_envs] for i in range(num_envs)]


# ----------------------------------------------------------------------------------------------------
# Gymnasium's vector interface


def _batch_infos(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-environment info dicts as one dict of arrays with ``_key`` masks, the layout of Gymnasium's
    ``VectorEnv._add_info`` (same dtypes: bool, int and float columns as NumPy arrays, anything else in an object
    array, dicts recursively), built a column at a time instead of an environment at a time."""
    n = len(rows)
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for row in rows for k in row):
        present = [i for i, row in enumerate(rows) if key in row]
        first = rows[present[0]][key]
        if key == "final_obs":  # Gymnasium keeps these whole: an object array of observation dicts
            column: Any = np.full(n, None, dtype=object)
        elif isinstance(first, dict):
            column = _batch_infos([row.get(key, {}) for row in rows])
        elif type(first) in (int, float, bool) or isinstance(first, np.number):
            column = np.zeros(n, dtype=type(first))
        elif isinstance(first, np.ndarray):
            column = np.zeros((n, *first.shape), dtype=first.dtype)
        else:
            column = np.full(n, None, dtype=object)
        if not isinstance(column, dict):
            for i in present:
                column[i] = rows[i][key]
        mask = np.zeros(n, dtype=np.bool_)
        mask[present] = True
        out[key], out[f"_{key}"] = column, mask
    return out


class GymRigidVectorEnv(VectorEnv):
    """A :class:`RigidVectorEnv` behind Gymnasium's :class:`~gymnasium.vector.VectorEnv` interface.

    What :func:`gymnasium.make_vec` returns for a rigid task (its ``vector_entry_point``): the same episodes as
    ``make_vec(..., vectorization_mode="sync")``, stepped as one batch.

    Args:
        task: a rigid task class or registered id.
        num_envs: number of environments.
        max_episode_steps: the time limit (``make_vec`` passes the registered one, the task's default horizon,
            unless given). Without an explicit ``horizon`` it *is* the environments' horizon, so the reward's
            final-step terms fall on the last steps of the shortened or lengthened episode. With both, the
            environments keep ``horizon`` and episodes are cut at ``min(horizon, max_episode_steps)``, as
            :class:`~gymnasium.wrappers.TimeLimit` cuts a single environment.
        **env_kwargs: keyword arguments of every environment (``shape``, ``horizon``, ``render_mode``, ...).

    Same-step autoreset (``metadata["autoreset_mode"]`` is ``AutoresetMode.SAME_STEP``): an environment whose
    episode ends is reset within the step; the step returns its first observation and reset info, and the
    finished episode's last observation and info in ``infos["final_obs"]`` (an object array of observation
    dicts) and ``infos["final_info"]`` (a batched info dict), with masks ``infos["_final_obs"]`` and
    ``infos["_final_info"]``. Every info key ``k`` comes with its mask ``infos["_k"]``.

    ``terminated`` marks an unstable simulation step and ``truncated`` the time limit, as the single
    environment reports them (both can hold). Rewards are float64, bit-identical to the single environment's;
    observations are dicts of ``[num_envs, nodes, 3]`` float32 arrays. :meth:`reset` takes ``seed`` (an int:
    environment ``i`` gets ``seed + i``; or one per environment) and ``options`` (passed to every environment;
    ``options["reset_mask"]``, a ``[num_envs]`` bool array, resets only those environments).
    :attr:`graph_spec` is the environments' graph schema, for :func:`~geomanip.envs.graph_data.to_hetero_data`.
    """

    def __init__(
        self,
        task: str | type[RigidTaskEnv],
        num_envs: int = 1,
        max_episode_steps: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        if max_episode_steps == -1:  # gym.make's spelling of "no TimeLimit": the horizon alone ends episodes
            max_episode_steps = None
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"GymRigidVectorEnv: max_episode_steps must be positive or -1, got {max_episode_steps}")
        if max_episode_steps is not None and "horizon" not in env_kwargs:
            env_kwargs["horizon"] = max_episode_steps
        if env_kwargs.get("infos", "every_step") != "every_step":
            raise ValueError("GymRigidVectorEnv: Gymnasium's interface reports every step's info (infos='every_step')")
        self.vec = RigidVectorEnv(task, num_envs, **env_kwargs)
        task_env = self.vec.task
        self.time_limit = min(task_env.horizon, max_episode_steps or task_env.horizon)
        self.num_envs = num_envs
        self.single_observation_space = task_env.observation_space
        self.single_action_space = task_env.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {**task_env.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = task_env.render_mode
        self.graph_spec = task_env.graph_spec

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        n = self.num_envs
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"GymRigidVectorEnv: {len(seeds)} seeds for {n} environments")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            indices = list(range(n))
        else:
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"GymRigidVectorEnv: options['reset_mask'] must be a [{n}] bool array, not all False")
            indices = np.flatnonzero(mask).tolist()
        # RigidVectorEnv writes first observations into its buffer, which may be the last step's returned arrays.
        self.vec._obs = {k: v.copy() for k, v in self.vec._obs.items()}
        self.vec._reset_envs(indices, [seeds[i] for i in indices], [options] * len(indices))
        obs = {k: v.copy() for k, v in self.vec._obs.items()}
        chosen = set(indices)
        rows = [self.vec.reset_infos[i] if i in chosen else {} for i in range(n)]
        return obs, _batch_infos(rows)

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        vec = self.vec
        truncated = to_numpy(vec._t) + 1 >= self.time_limit
        obs, _, vec_dones, step_infos = vec.step(np.asarray(actions))
        terminated = np.array([info["unstable"] for info in step_infos], dtype=np.bool_)
        # The reward as the single environment sums it (in float64: RigidVectorEnv returns float32 for SB3).
        reward = np.zeros(self.num_envs)
        for key in step_infos[0]:
            if key.startswith("reward_"):
                reward = reward + np.array([info[key] for info in step_infos])
        final_obs = {i: info.pop("terminal_observation") for i, info in enumerate(step_infos) if vec_dones[i]}
        # Episodes the time limit cuts before the environments' horizon: RigidVectorEnv has not reset them.
        cut = np.flatnonzero(truncated & ~vec_dones).tolist()
        if cut:
            for i in cut:
                final_obs[i] = {k: v[i].copy() for k, v in obs.items()}
            vec._reset_envs(cut, [None] * len(cut), [{}] * len(cut))
            for k, v in obs.items():
                v[cut] = vec._obs[k][cut]
        rows = []
        for i, info in enumerate(step_infos):
            del info["TimeLimit.truncated"]  # SB3's flag; Gymnasium's is the truncated array
            if i in final_obs:
                rows.append({"final_obs": final_obs[i], "final_info": info, **vec.reset_infos[i]})
            else:
                rows.append(info)
        return obs, reward, terminated, truncated, _batch_infos(rows)

    def render(self) -> tuple[np.ndarray | None, ...]:
        return tuple(self.vec.get_images())

    def close_extras(self, **kwargs: Any) -> None:
        self.vec.close()


# Vector entry points of the registered rigid tasks (named by strings in the registry, so specs stay JSON-able).
def rigid_sliding_vector_env(num_envs: int = 1, **kwargs: Any) -> GymRigidVectorEnv:
    return GymRigidVectorEnv(RigidSlidingEnv, num_envs, **kwargs)


def rigid_pushing_vector_env(num_envs: int = 1, **kwargs: Any) -> GymRigidVectorEnv:
    return GymRigidVectorEnv(RigidPushingEnv, num_envs, **kwargs)


def rigid_insertion_vector_env(num_envs: int = 1, **kwargs: Any) -> GymRigidVectorEnv:
    return GymRigidVectorEnv(RigidInsertionEnv, num_envs, **kwargs)


def rigid_insertion_two_agents_vector_env(num_envs: int = 1, **kwargs: Any) -> GymRigidVectorEnv:
    return GymRigidVectorEnv(RigidInsertionTwoAgentsEnv, num_envs, **kwargs)
