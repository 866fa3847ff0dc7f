"""The MuJoCo base of every task: scenes, stepping, action checks, instability, reward and info.

:class:`MujocoGraphEnv` owns the simulation and the Gymnasium API. It compiles and caches each scene, checks
and clips actions, steps the physics, detects a diverged step (:func:`step_physics`, the one criterion, which
the batched :class:`~geomanip.envs.vector.RigidVectorEnv` uses too), sums the reward's named terms and builds
``info``. A task is one subclass implementing the ``_task_*`` hooks listed on :class:`MujocoGraphEnv`; it
never steps the simulation. The helpers every task shares live here as well: :data:`OBS_BOUND`,
:func:`vec_box`, :func:`yaw_matrix` and the edge builders.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import math
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from geomanip.envs.arrays import Array, namespace

__all__ = [
    "GraphSpec",
    "MujocoGraphEnv",
    "OBS_BOUND",
    "STATE_SPEC",
    "control_rate",
    "full_edges",
    "ring_edges",
    "stable_rows",
    "state_slices",
    "step_physics",
    "validate_actions",
    "vec_box",
    "yaw_matrix",
]

EdgeType = tuple[str, str, str]

STATE_SPEC = int(mujoco.mjtState.mjSTATE_INTEGRATION)
"""What a saved state holds: everything that determines the next step (time, qpos, qvel, warm start, ctrl,
mocap, ...), so that restoring it after an unstable step, or copying it, loses nothing. (A plain int: MuJoCo's
bindings take one faster than the enum, and it is passed once per environment and step.)"""

OBS_BOUND = 1e3
"""Bound of every observed coordinate (m or m/s): unreachable, since unstable steps end the episode."""


def _load_llvm_users_first() -> None:
    """Import Triton (when installed) before the first offscreen GL context exists.

    Mesa's EGL driver and Triton each bring their own LLVM; when Triton is loaded after an EGL context was
    made (PyTorch imports it when the first optimiser is built), the process segfaults (measured with mesa
    llvmpipe and triton 3.9). Loaded in this order, both work.
    """
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def control_rate(dt: float) -> int | float:
    """``1 / dt`` for ``metadata["render_fps"]``: an int when it is a whole number (as Gymnasium's own MuJoCo
    environments give it), else a float."""
    fps = 1.0 / dt
    return round(fps) if abs(fps - round(fps)) < 1e-9 * fps else fps


@dataclass(frozen=True)
class GraphSpec:
    """The static heterogeneous-graph schema of an environment's observation.

    Attributes:
        node_counts: number of nodes of each node type, e.g. ``{"object": 16, "gripper": 1}``.
        node_keys: for each node type, the observation keys holding its per-node vectors; each such
            observation entry has shape ``[node_counts[type], 3]`` and is expressed in the world frame.
        edge_index: for each edge type ``(source type, relation, destination type)``, a ``[2, E]`` int64
            array: row 0 indexes source nodes, row 1 destination nodes (the convention of ``kernels``).
        node_scalars: for the node types that have them, ``[node_counts[type], k]`` float arrays of fixed,
            rotation-invariant per-node features: which node is which, where the vectors cannot say it (a rope
            link's place along the rope). The same in every step and episode, so not part of the observation;
            a node permutation must permute them with the node's vectors.
    """

    node_counts: dict[str, int]
    node_keys: dict[str, tuple[str, ...]]
    edge_index: dict[EdgeType, np.ndarray] = field(default_factory=dict)
    node_scalars: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node_type, values in self.node_scalars.items():
            if node_type not in self.node_counts:
                raise ValueError(f"GraphSpec: node_scalars of unknown node type {node_type!r}")
            shape = np.shape(values)
            if len(shape) != 2 or shape[0] != self.node_counts[node_type] or not np.all(np.isfinite(values)):
                raise ValueError(
                    f"GraphSpec: node_scalars[{node_type!r}] must be finite, [{self.node_counts[node_type]}, k], "
                    f"got shape {list(shape)}"
                )

    @property
    def edge_types(self) -> list[EdgeType]:
        return list(self.edge_index)


def full_edges(num_src: int, num_dst: int, exclude_self: bool = False) -> np.ndarray:
    """Every source to every destination, ``[2, num_src * num_dst]`` (minus ``i -> i`` if ``exclude_self``)."""
    src, dst = np.meshgrid(np.arange(num_src), np.arange(num_dst), indexing="ij")
    keep = src != dst if exclude_self else np.ones_like(src, dtype=bool)
    return np.stack([src[keep], dst[keep]]).astype(np.int64)


def ring_edges(num: int, hops: int) -> np.ndarray:
    """Each node of a closed ring receives from its neighbours up to ``hops`` steps away on both sides."""
    dst = np.repeat(np.arange(num), 2 * hops)
    offsets = np.tile(np.concatenate([np.arange(1, hops + 1), -np.arange(1, hops + 1)]), num)
    return np.stack([(dst + offsets) % num, dst]).astype(np.int64)


def yaw_matrix(yaw: float) -> np.ndarray:
    """The rotation about the world z axis by ``yaw`` (rad), ``[3, 3]``."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def vec_box(n: int) -> gym.spaces.Box:
    """The observation space of ``n`` world-frame node vectors: ``[n, 3]`` float32 within :data:`OBS_BOUND`."""
    return gym.spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(n, 3), dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# Physics of one or a batch of environments
def state_slices(model: mujoco.MjModel) -> tuple[slice, slice]:
    """Where ``qpos`` and ``qvel`` lie in a state vector of :data:`STATE_SPEC`: after the time, in MuJoCo's
    order of state components (``mjtState``)."""
    return slice(1, 1 + model.nq), slice(1 + model.nq, 1 + model.nq + model.nv)


def stable_rows(qpos: Array, qvel: Array, max_speed: float) -> Array:
    """Which rows of a batch are stable, ``[B]`` bool: every ``|qpos|`` below 1e6 (finite, no body a thousand
    kilometres away) and every ``|qvel|`` below ``max_speed``, written as ``x < bound`` so that NaN fails. The one
    divergence criterion of every environment, single, batched or on MuJoCo Warp (NumPy or torch input)."""
    xp = namespace(qpos)
    return xp.all(xp.abs(qpos) < 1e6, axis=1) & xp.all(xp.abs(qvel) < max_speed, axis=1)


def step_physics(
    models: Sequence[mujoco.MjModel],
    datas: Sequence[mujoco.MjData],
    ctrl: np.ndarray,
    frame_skip: int,
    states: np.ndarray,
    max_speed: float,
) -> np.ndarray:
    """Advance each environment ``frame_skip`` physics steps; restore any that became unstable.

    One ``mj_step(m, d, nstep)`` call per environment (cheaper here than ``mujoco.rollout``, which also
    cannot hand back the solver's warm start; see BENCHMARKS.md), then one read of its state. A step is
    unstable when :func:`stable_rows` says so.

    Args:
        models, datas: the environments' MuJoCo models and data (``B`` of each).
        ctrl: ``[B, nu]`` controls.
        frame_skip: physics steps per control step.
        states: ``[B, nstate]`` :data:`STATE_SPEC` states: on entry those from before the step (what an unstable
            environment goes back to), on return those after it.
        max_speed: the velocity bound (m/s or rad/s, any generalised velocity).

    Returns:
        ``[B]`` bool: True where the step was stable.

    Models must have MuJoCo's auto-reset disabled (:class:`MujocoGraphEnv` disables it in every model it
    compiles): with it, MuJoCo resets a diverged simulation to its initial state, which a check of the state
    alone cannot tell apart.
    """
    before = states.copy()
    step, get_state, spec = mujoco.mj_step, mujoco.mj_getState, STATE_SPEC  # locals: this loop is hot
    for m, d, c, state in zip(models, datas, ctrl, states, strict=True):
        d.ctrl[:] = c
        step(m, d, frame_skip)
        get_state(m, d, state, spec)
    qpos, qvel = state_slices(models[0])
    ok = stable_rows(states[:, qpos], states[:, qvel], max_speed)
    for i in np.flatnonzero(~ok):
        states[i] = before[i]
        mujoco.mj_setState(models[i], datas[i], states[i], STATE_SPEC)
    return ok


def validate_actions(actions: Any, shape: tuple[int, ...], owner: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked actions ``[B, *shape]`` as float64 clipped to ``[-1, 1]``, and which rows were clipped ``[B]``.

    Raises a ``ValueError`` (naming ``owner``) for a wrong shape or a NaN/inf.
    """
    a = np.asarray(actions, dtype=np.float64)
    if a.shape[1:] != shape:
        raise ValueError(f"{owner}: action must have shape {shape}, got {a.shape[1:]}")
    largest = np.abs(a.reshape(len(a), -1)).max(axis=1)  # NaN if the row holds one
    if not np.isfinite(largest).all():
        raise ValueError(f"{owner}: action contains NaN or inf: {a}")
    clipped = largest > 1.0
    if clipped.any():
        a = np.clip(a, -1.0, 1.0)
    return a, clipped


# --------------------------------------------------------------------------------------------------
class MujocoGraphEnv(gym.Env, abc.ABC):
    r"""Base of every task: the scenes, stepping, action checks, instability, reward summation and ``info``.

    A task is one subclass. Its constructor calls ``super().__init__(frame_skip, horizon, ...)`` and sets
    ``action_space`` (a ``Box`` in ``[-1, 1]``), ``observation_space`` and ``graph_spec``; it then implements
    the hooks below and nothing else of the simulation. Each hook reads or writes ``self.data`` (and
    ``self.np_random`` for sampling); none steps the physics.

    **Hooks** (required):

    - :meth:`_task_xml` ``(variant) -> str``: the scene's MJCF text;
    - :meth:`_task_reset` ``(options)``: sample the episode's start (and goal) into ``self.data``;
    - :meth:`_task_ctrl` ``(action) -> ctrl``: actuator controls for a checked action;
    - :meth:`_task_observation` ``() -> dict``: the observation;
    - :meth:`_task_reward_terms` ``(action, prev_action) -> dict``: the reward's named terms;
    - :meth:`_task_errors` ``() -> dict``: goal errors;
    - :meth:`_task_success` ``() -> bool``: whether the task is solved.

    **Hooks** (optional): :meth:`_task_variant` picks the episode's scene variant (default: one scene);
    :meth:`_task_scene_loaded` caches ids of a newly loaded model; :meth:`_task_update` reads what the others
    need from ``self.data`` once per reset and step; :meth:`_task_info` adds task entries to ``info``.

    **Action**: checked by :func:`validate_actions`: a wrong shape or a NaN/inf raises a ``ValueError``; values
    outside ``[-1, 1]`` are clipped and ``info["action_clipped"]`` is True.

    **Reward**: the sum of :meth:`_task_reward_terms`, each reported as ``info["reward_<term>"]``.

    **Info** (every reset and step): ``is_success``, the task's extras, ``error_<name>`` for each goal error;
    after a step also ``reward_<term>``, ``action_clipped`` and ``unstable``.

    **Episode end**: truncation after ``horizon`` steps; termination on an unstable physics step. Every step is
    checked by :func:`step_physics`: a non-finite or huge position, or a generalised velocity at or above
    :attr:`max_speed`, restores the state of the last reset or step and ends the episode with
    ``terminated=True`` and ``info["unstable"] = True``, so observations are never NaN. MuJoCo's auto-reset is
    disabled in every scene, so a diverged step stays visible to that check.

    **Scenes**: the compiled model of each variant is cached, so switching variants between episodes costs one
    compilation per variant and process; :meth:`share_scenes` shares the cache among environments of a task.

    Args:
        frame_skip: physics steps per control step.
        horizon: control steps per episode.
        render_mode: ``"rgb_array"``, ``"human"`` or None.
        width, height: size of rendered frames (pixels).
    """

    #: ``render_fps`` is the control rate, ``1 / dt``: the tasks set their default's at class level (Gymnasium
    #: reads it before an environment exists) and each environment sets its own when it loads a model.
    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 25}

    #: Speed (m/s or rad/s in any generalised velocity) at or above which the simulation counts as unstable.
    max_speed = 100.0

    #: Whether data of a scene left for another is kept for the scene's next episode (reset, it equals new
    #: data): allocating it costs as much as several physics steps of the small rigid scenes.
    reuse_data = True

    def __init__(
        self, frame_skip: int, horizon: int, render_mode: str | None = None, width: int = 480, height: int = 480
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if horizon < 1 or frame_skip < 1:
            raise ValueError(f"horizon and frame_skip must be positive, got {horizon} and {frame_skip}")
        self.frame_skip = frame_skip
        self.horizon = horizon
        self.render_mode = render_mode
        self.width, self.height = width, height
        self._models: dict[Hashable, mujoco.MjModel] = {}
        self._data_pool: dict[Hashable, list[mujoco.MjData]] = {}  # idle data of each scene variant
        self._variant: Hashable = None
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._state = np.zeros((1, 0))  # [1, nstate]: the state of the last reset or step
        self._prev_action: np.ndarray | None = None
        self._renderer: mujoco.Renderer | None = None
        self._viewer: Any = None
        self.t = 0

    # ----------------------------------------------------------------------------------------------
    # Hooks for tasks
    @abc.abstractmethod
    def _task_xml(self, variant: Hashable) -> str:
        """MJCF text of the scene of ``variant`` (what :meth:`_task_variant` returned)."""

    def _task_variant(self, options: dict[str, Any]) -> Hashable:
        """The scene variant of the episode about to start (a hashable cache key of its compiled model, for
        example a shape name); may draw from ``self.np_random``. Called first in every reset. Default: one
        scene."""
        return None

    def _task_scene_loaded(self, variant: Hashable) -> None:
        """Cache what the task reads from ``self.model`` (body ids, index maps) whenever it becomes the model
        of another variant (optional)."""

    @abc.abstractmethod
    def _task_reset(self, options: dict[str, Any]) -> None:
        """Sample the episode's start (and goal) with ``self.np_random`` and write it into ``self.data``, which
        holds the episode's scene, freshly reset. The base runs ``mj_forward`` afterwards."""

    @abc.abstractmethod
    def _task_ctrl(self, action: np.ndarray) -> np.ndarray:
        """Actuator controls ``[nu]`` for a checked action (float64, within ``[-1, 1]``)."""

    def _task_update(self) -> None:
        """Read what observation, reward, errors and success need from ``self.data``, once after each reset and
        step (optional)."""

    @abc.abstractmethod
    def _task_observation(self) -> dict[str, np.ndarray]:
        """The observation, an element of ``observation_space``."""

    @abc.abstractmethod
    def _task_reward_terms(self, action: np.ndarray, prev_action: np.ndarray) -> dict[str, float]:
        """The reward's named terms for the step just taken (``self.t`` counts it: 1 on the first step); the
        reward is their sum. ``action`` is the checked action, ``prev_action`` the previous step's (zeros on the
        first step)."""

    @abc.abstractmethod
    def _task_errors(self) -> dict[str, float]:
        """Goal errors of the current state; ``info`` reports each as ``error_<name>``."""

    @abc.abstractmethod
    def _task_success(self) -> bool:
        """Whether the current state solves the task (``info["is_success"]``)."""

    def _task_info(self) -> dict[str, Any]:
        """Task entries of ``info`` besides those the base writes (optional)."""
        return {}

    # ----------------------------------------------------------------------------------------------
    # Simulation
    @property
    def dt(self) -> float:
        """Control period in seconds (physics timestep times frame skip)."""
        return self.model.opt.timestep * self.frame_skip

    def share_scenes(self, other: MujocoGraphEnv) -> None:
        """Use ``other``'s cache of compiled scenes (and pool of idle data): environments of one task in one
        process then compile each scene once. A model is read-only during simulation, so many data can share
        it."""
        self._models, self._data_pool = other._models, other._data_pool

    def _use_variant(self, variant: Hashable) -> None:
        """Make the scene of ``variant`` current (compiled once, then cached) with freshly reset data.

        The data is reset even when the variant is unchanged: solver warm starts and warning counters
        carried over from the last episode would make equal seeds give unequal episodes.
        """
        if variant == self._variant and self.model is not None:
            mujoco.mj_resetData(self.model, self.data)
            return
        if variant not in self._models:
            model = mujoco.MjModel.from_xml_string(self._task_xml(variant))
            # A diverged step must stay visible (NaN or huge) for step_physics to undo it, not be reset silently.
            model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_AUTORESET
            self._models[variant] = model
        if self.data is not None and self.reuse_data:
            self._data_pool.setdefault(self._variant, []).append(self.data)
        self.model = self._models[variant]
        kept = self._data_pool.get(variant)
        if kept:
            self.data = kept.pop()
            mujoco.mj_resetData(self.model, self.data)
        else:
            self.data = mujoco.MjData(self.model)
        self._variant = variant
        self.metadata = {**self.metadata, "render_fps": control_rate(self.dt)}
        self._state = np.zeros((1, mujoco.mj_stateSize(self.model, STATE_SPEC)))
        if self._renderer is not None:  # a renderer is bound to one model
            self._renderer.close()
            self._renderer = None
        self._task_scene_loaded(variant)

    def _simulate(self, ctrl: np.ndarray | None = None) -> bool:
        """Advance ``frame_skip`` physics steps with ``ctrl`` (default: the controls in ``self.data``); on
        instability restore the state of the last reset or step and return False."""
        m, d = self.model, self.data
        ctrl = d.ctrl if ctrl is None else ctrl
        ok = step_physics([m], [d], ctrl[None], self.frame_skip, self._state, self.max_speed)
        # mj_step leaves poses of the state before its last substep; refresh them for the tasks' read-outs and
        # rendering (velocities are current: qvel is integrated state).
        mujoco.mj_kinematics(m, d)
        return bool(ok[0])

    def _validate_action(self, action: Any) -> tuple[np.ndarray, bool]:
        a, clipped = validate_actions(
            np.asarray(action, dtype=np.float64)[None], self.action_space.shape, type(self).__name__
        )
        return a[0], bool(clipped[0])

    def _info(self) -> dict[str, Any]:
        info = {"is_success": bool(self._task_success()), **self._task_info()}
        info.update({f"error_{k}": float(v) for k, v in self._task_errors().items()})
        return info

    def errors(self) -> dict[str, float]:
        """Goal errors of the current step (see the task's :meth:`_task_errors`)."""
        return {k: float(v) for k, v in self._task_errors().items()}

    def is_success(self) -> bool:
        """Whether the current step solves the task."""
        return bool(self._task_success())

    # ----------------------------------------------------------------------------------------------
    # Gymnasium API
    def begin_episode(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """Start an episode up to its first observation: seed ``np_random`` (as :meth:`reset` does), load the
        episode's scene with fresh data, sample the start and run the forward dynamics once.

        :meth:`reset` is this, then the task's read-out, observation and ``info``. Batched environments call it
        for each sub-environment and compute the rest for the whole batch; a task base may return what they
        need (:meth:`geomanip.envs.rigid.RigidTaskEnv.begin_episode`). Here it returns None.
        """
        super().reset(seed=seed)
        options = options or {}
        self.t = 0
        self._prev_action = None
        self._use_variant(self._task_variant(options))
        self._task_reset(options)
        mujoco.mj_forward(self.model, self.data)
        mujoco.mj_getState(self.model, self.data, self._state[0], STATE_SPEC)
        return None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.begin_episode(seed, options)
        self._task_update()
        if self.render_mode == "human":
            self.render()
        return self._task_observation(), self._info()

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self.data is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        a, clipped = self._validate_action(action)
        stable = self._simulate(self._task_ctrl(a))
        self._task_update()
        self.t += 1
        obs = self._task_observation()
        prev = self._prev_action if self._prev_action is not None else np.zeros_like(a)
        terms = {k: float(v) for k, v in self._task_reward_terms(a, prev).items()}
        self._prev_action = a.copy()
        info = self._info()
        info.update({f"reward_{k}": v for k, v in terms.items()})
        info["action_clipped"] = clipped
        info["unstable"] = not stable
        truncated = self.t >= self.horizon
        if self.render_mode == "human":
            self.render()
        return obs, float(sum(terms.values())), not stable, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to make().")
            return None
        if self.render_mode == "human":
            if self._viewer is None:
                from mujoco import viewer

                self._viewer = viewer.launch_passive(self.model, self.data)
            self._viewer.sync()
            return None
        if self._renderer is None:
            if mujoco.GLContext.__module__.endswith("glfw") and not os.environ.get("DISPLAY"):
                # GLFW without a display aborts the whole process; say what to do instead.
                raise RuntimeError(
                    "no display for MuJoCo's GLFW backend: set MUJOCO_GL=egl (or osmesa) before mujoco is "
                    "imported, or import envs before mujoco, which sets it on headless machines"
                )
            _load_llvm_users_first()
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        self._renderer.update_scene(self.data, camera=self._camera())
        return self._renderer.render()

    def _camera(self) -> str | int:
        return "overview"

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None
