"""A batched vector environment for the rigid tasks: many environments stepped per Python call.

A single rigid environment spends more time in Python (action checks, observation, reward, info) than in
MuJoCo: its scenes are small (BENCHMARKS.md). :class:`RigidVectorEnv` steps ``num_envs`` environments of
one task at once: the physics of each is one ``mj_step(m, d, frame_skip)`` call, and everything else
(action checks, read-out of the bodies, observation, goal errors, reward terms, success, episode ends) is a
handful of numpy operations on arrays with a leading ``num_envs`` dimension, done by the same batched
functions of :mod:`geomanip.envs.rigid` that the single environment calls with a batch of one. Its observations,
rewards and infos are bit-identical to those of the single environments (a test checks it against SB3's
``DummyVecEnv``).

It implements Stable-Baselines3's :class:`~stable_baselines3.common.vec_env.VecEnv`, so PPO takes it
directly: finished episodes reset within the same step; the finished episode's last observation is in
``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` tells a time limit from a failure.
Wrap it in :class:`~stable_baselines3.common.vec_env.VecMonitor` for episode statistics.

The sub-environments (:attr:`RigidVectorEnv.envs`, unwrapped task instances) own the MuJoCo models and data
and sample each episode (shape, start, goal) with their own seeded generators, so episodes are those of the
single environment. The vector environment steps their data directly: their own step counters and cached
read-outs are not updated, and ``env_method``/``get_attr`` see only what lives in ``model`` and ``data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from geomanip.envs.rigid import (
    STATE_SPEC,
    RigidTaskEnv,
    keypoint_observation,
    state_slices,
    step_physics,
    validate_actions,
)
from geomanip.envs.shapes import NUM_KEYPOINTS

__all__ = ["RigidVectorEnv", "make_vector_env"]


class RigidVectorEnv(VecEnv):
    """``num_envs`` environments of one rigid task, stepped as a batch (SB3 ``VecEnv`` interface).

    Args:
        task: a registered id (``"RigidInsertion-v0"``, ...) or a :class:`~geomanip.envs.rigid.RigidTaskEnv` subclass.
        num_envs: number of environments.
        seed: if given, environment ``i`` is seeded with ``seed + i`` at the first :meth:`reset` (as
            ``VecEnv.seed``).
        **env_kwargs: keyword arguments of every environment (``shape``, ``horizon``, reward weights,
            ``render_mode``, ...).

    Shapes: observations are a dict of ``[num_envs, nodes, 3]`` float32 arrays (the keys of the single
    environment); rewards ``[num_envs]`` float32 and dones ``[num_envs]`` bool, as SB3's ``DummyVecEnv``.
    """

    def __init__(
        self, task: str | type[RigidTaskEnv], num_envs: int, seed: int | None = None, **env_kwargs: Any
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"RigidVectorEnv: num_envs must be positive, got {num_envs}")
        if isinstance(task, str):
            self.envs = [gym.make(task, **env_kwargs).unwrapped for _ in range(num_envs)]
        else:
            self.envs = [task(**env_kwargs) for _ in range(num_envs)]
        if not isinstance(self.envs[0], RigidTaskEnv):
            raise TypeError(
                f"RigidVectorEnv: {task!r} is not a rigid task (RigidTaskEnv); use SB3's DummyVecEnv for other tasks"
            )
        # All environments share the task's parameters, so any of them can evaluate the batched task logic.
        self.task: RigidTaskEnv = self.envs[0]
        # And one cache of compiled scenes (a model is read-only during simulation, so the environments' data
        # can share it: each shape is compiled once, not once per environment) and one pool of idle data.
        for env in self.envs[1:]:
            env._models, env._data_pool = self.task._models, self.task._data_pool
        super().__init__(num_envs, self.task.observation_space, self.task.action_space)
        b, g = num_envs, self.task.num_grippers
        self._models: list[mujoco.MjModel] = [None] * b  # type: ignore[list-item]
        self._datas: list[mujoco.MjData] = [None] * b  # type: ignore[list-item]
        self._states: np.ndarray | None = None  # [B, nstate], allocated at the first reset
        self._t = np.zeros(b, dtype=np.int64)
        self._prev_action = np.zeros((b, *self.action_space.shape))
        self._goal_pos = np.zeros((b, 3))
        self._goal_rot = np.zeros((b, 3, 3))
        self._local_keypoints = np.zeros((b, NUM_KEYPOINTS, 3))
        self._shapes = [""] * b
        self._obs = {k: np.zeros((b, *s.shape), dtype=s.dtype) for k, s in self.observation_space.spaces.items()}
        self._actions: np.ndarray | None = None
        self._num_grippers = g
        if seed is not None:
            self.seed(seed)

    # ------------------------------------------------------------------------------------------------
    def _reset_envs(self, indices: list[int], seeds: list[int | None], options: list[dict[str, Any]]) -> None:
        """Reset environments ``indices`` and write their first observations into ``self._obs``.

        Each environment samples its episode as ``MujocoGraphEnv.reset`` does; the observations and reset
        infos of all of them then come from one batched pass (a test checks them against single resets).
        """
        for i, seed, opts in zip(indices, seeds, options, strict=True):
            env = self.envs[i]
            # MujocoGraphEnv.reset up to its observation: seed, sample the episode, forward kinematics.
            gym.Env.reset(env, seed=seed)
            env.t = 0
            env._task_reset(opts)
            mujoco.mj_forward(env.model, env.data)
            if self._states is None:
                self._states = np.zeros((self.num_envs, env._state.shape[1]))
                self._qpos, self._qvel = state_slices(env.model)
            mujoco.mj_getState(env.model, env.data, self._states[i], STATE_SPEC)
            self._models[i], self._datas[i] = env.model, env.data
            self._goal_pos[i], self._goal_rot[i] = env.goal_pos, env.goal_rot
            self._local_keypoints[i] = env._local_keypoints
            self._shapes[i] = env.shape.name
        idx = np.asarray(indices)
        self._t[idx] = 0
        self._prev_action[idx] = 0.0
        task, goal_pos, goal_rot = self.task, self._goal_pos[idx], self._goal_rot[idx]
        s = task.readout(self._states[idx, self._qpos], self._states[idx, self._qvel])
        errors = task.goal_errors(s, goal_pos, goal_rot)
        obs = keypoint_observation(s, goal_pos, goal_rot, self._local_keypoints[idx], task.has_yaw)
        for k, v in obs.items():
            self._obs[k][idx] = v
        keys = ["is_success", "shape", *(f"error_{k}" for k in errors)]
        columns = [task.success(s, errors, goal_pos).tolist(), [self._shapes[i] for i in indices]]
        columns += [e.tolist() for e in errors.values()]
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
        if self._states is None or self._actions is None:
            raise RuntimeError("RigidVectorEnv: call reset() before step()")
        task = self.task
        a, clipped = validate_actions(self._actions, self.action_space.shape, type(self).__name__)
        self._actions = None
        stable = step_physics(
            self._models, self._datas, task.action_to_ctrl(a), task.frame_skip, self._states, task.max_speed
        )
        self._t += 1
        s = task.readout(self._states[:, self._qpos], self._states[:, self._qvel])
        errors = task.goal_errors(s, self._goal_pos, self._goal_rot)
        obs = keypoint_observation(s, self._goal_pos, self._goal_rot, self._local_keypoints, task.has_yaw)
        terms = task.reward_terms(s, errors, a, self._prev_action, self._t)
        self._prev_action = a.copy()
        reward = sum(terms.values())
        success = task.success(s, errors, self._goal_pos)
        truncated = self._t >= task.horizon
        dones = truncated | ~stable

        # One info dict per environment (SB3's interface), zipped from whole columns: Python floats and bools,
        # as the single environment returns them.
        keys = ["is_success", "shape", *(f"error_{k}" for k in errors), *(f"reward_{k}" for k in terms)]
        keys += ["action_clipped", "unstable", "TimeLimit.truncated"]
        columns = [success, *errors.values(), *terms.values(), clipped, ~stable, truncated & stable]
        columns = [c.tolist() for c in columns]
        columns.insert(1, self._shapes)
        infos = [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
        # Finished episodes: keep their last observation, reset them, and return their first one instead.
        self._obs = obs
        done = np.flatnonzero(dones).tolist()
        if done:
            for i in done:
                infos[i]["terminal_observation"] = {k: v[i].copy() for k, v in obs.items()}
            self._reset_envs(done, [None] * len(done), [{}] * len(done))
        # obs is new every step and not kept beyond the next: no copy needed (unlike DummyVecEnv's buffers).
        return obs, reward.astype(np.float32), dones, infos

    # ------------------------------------------------------------------------------------------------
    # The rest of SB3's interface, on the sub-environments.
    def close(self) -> None:
        for env in self.envs:
            env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            gym.logger.warn(f"RigidVectorEnv: render_mode is {self.render_mode!r}, images need 'rgb_array'")
            return [None] * self.num_envs
        images = []
        for env in self.envs:
            # The batched step skips this refresh: bring the poses the renderer draws up to date.
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
    task: str | type[RigidTaskEnv], num_envs: int, seed: int | None = None, **env_kwargs: Any
) -> RigidVectorEnv:
    """A :class:`RigidVectorEnv` of ``num_envs`` environments of ``task`` (a registered rigid id or class)."""
    return RigidVectorEnv(task, num_envs, seed=seed, **env_kwargs)
