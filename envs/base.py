"""A thin MuJoCo base for the graph environments: model loading, stepping, stability checks, rendering.

Task modules subclass :class:`MujocoGraphEnv` and implement a short, marked list of methods (the ``_task_*``
hooks). The base owns the simulation and the Gymnasium API; tasks own the scene, sampling, observation,
reward and success; physics read-outs that the rigid tasks share live in :mod:`geomanip.envs.rigid`. The
helpers every task shares live here: :data:`OBS_BOUND`, :func:`vec_box`, :func:`yaw_matrix` and the edge
builders.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

__all__ = ["GraphSpec", "MujocoGraphEnv", "OBS_BOUND", "vec_box", "yaw_matrix"]

EdgeType = tuple[str, str, str]

OBS_BOUND = 1e3
"""Bound of every observed coordinate (m or m/s): unreachable, since unstable steps end the episode."""

# What an unstable step restores: the full integration state (time, qpos, qvel, act, mocap, ...).
_STATE = mujoco.mjtState.mjSTATE_INTEGRATION
# Warnings that mean the integration failed (MuJoCo then resets the data).
_BAD = [
    int(mujoco.mjtWarning.mjWARN_BADQPOS),
    int(mujoco.mjtWarning.mjWARN_BADQVEL),
    int(mujoco.mjtWarning.mjWARN_BADQACC),
]


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
    """

    node_counts: dict[str, int]
    node_keys: dict[str, tuple[str, ...]]
    edge_index: dict[EdgeType, np.ndarray] = field(default_factory=dict)

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


class MujocoGraphEnv(gym.Env):
    """Base of every environment: a MuJoCo model per scene variant, frame skip, stability, rendering.

    Subclasses build MJCF text for a scene variant (for example one object shape) in :meth:`_task_xml`;
    the compiled model is cached per variant, so switching shapes between episodes costs one compilation
    per shape and process. Actions go through :meth:`_validate_action`: wrong shapes and non-finite values
    raise a ``ValueError``; values outside ``[-1, 1]`` are clipped and reported as ``info["action_clipped"]``.

    Every step checks the simulation: a non-finite state, a MuJoCo integration failure (MuJoCo warns and
    resets its data) or a velocity above ``max_speed`` restores the state from before the step and ends the episode with
    ``terminated=True`` and ``info["unstable"] = True``. Observations are therefore never NaN.
    """

    #: ``render_fps`` is the control rate, ``1 / dt``: the tasks set their default's at class level (Gymnasium
    #: reads it before an environment exists) and each environment sets its own when it loads a model.
    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 25}

    #: Speed (m/s or rad/s in any generalised velocity) above which the simulation counts as unstable.
    max_speed = 100.0

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
        self._models: dict[Any, mujoco.MjModel] = {}
        self._variant: Any = None
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._renderer: mujoco.Renderer | None = None
        self._viewer: Any = None
        self.t = 0

    # ----------------------------------------------------------------------------------------------
    # Hooks for tasks
    def _task_xml(self, variant: Any) -> str:
        """MJCF text of the scene for ``variant``."""
        raise NotImplementedError

    def _task_reset(self, options: dict[str, Any]) -> None:
        """Sample the start and goal with ``self.np_random`` and write them into ``self.data``."""
        raise NotImplementedError

    def _task_apply_action(self, action: np.ndarray) -> None:
        """Write the (validated, clipped) action into ``self.data.ctrl``."""
        raise NotImplementedError

    def _task_update(self) -> None:
        """Read what observation, reward and info need from ``self.data`` once per step (optional)."""

    def _task_observation(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _task_reward(self, action: np.ndarray) -> tuple[float, dict[str, float]]:
        """The reward and its named terms (which sum to it)."""
        raise NotImplementedError

    def _task_info(self) -> dict[str, Any]:
        """Task-specific info, ``is_success`` included."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------------
    # Simulation
    @property
    def dt(self) -> float:
        """Control period in seconds (physics timestep times frame skip)."""
        return self.model.opt.timestep * self.frame_skip

    def _use_variant(self, variant: Any) -> None:
        """Load the scene of ``variant`` (compiled once, then cached) with freshly reset data.

        The data is reset even when the variant is unchanged: solver warm starts and warning counters
        carried over from the last episode would make equal seeds give unequal episodes.
        """
        if variant == self._variant and self.model is not None:
            mujoco.mj_resetData(self.model, self.data)
            return
        if variant not in self._models:
            self._models[variant] = mujoco.MjModel.from_xml_string(self._task_xml(variant))
        self.model = self._models[variant]
        self.metadata = {**self.metadata, "render_fps": control_rate(self.dt)}
        self.data = mujoco.MjData(self.model)
        self._saved_state = np.empty(mujoco.mj_stateSize(self.model, _STATE))
        self._variant = variant
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _simulate(self) -> bool:
        """Advance ``frame_skip`` physics steps; on instability restore the prior state and return False."""
        m, d = self.model, self.data
        mujoco.mj_getState(m, d, self._saved_state, _STATE)
        warnings_before = d.warning.number[_BAD].sum()
        mujoco.mj_step(m, d, nstep=self.frame_skip)
        # After a bad qpos/qvel/qacc MuJoCo warns and resets the data by itself, so the state looks fine:
        # the warning counters tell. Large or non-finite velocities are caught directly.
        # Written as "max < bound" so that a NaN velocity fails it too.
        ok = d.warning.number[_BAD].sum() == warnings_before and float(np.abs(d.qvel).max(initial=0.0)) < self.max_speed
        if not ok:
            mujoco.mj_setState(m, d, self._saved_state, _STATE)
        # mj_step leaves poses and velocities of the state before its last integration; bring the ones the
        # observation reads up to date (cheaper than a full mj_forward: no collision, no constraints).
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_comVel(m, d)
        return ok

    def _validate_action(self, action: Any) -> tuple[np.ndarray, bool]:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"{type(self).__name__}: action must have shape {self.action_space.shape}, got {a.shape}")
        lo, hi = a.min(), a.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{type(self).__name__}: action contains NaN or inf: {a}")
        if lo >= -1.0 and hi <= 1.0:
            return a, False
        return np.clip(a, -1.0, 1.0), True

    # ----------------------------------------------------------------------------------------------
    # Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        self._task_reset(options or {})
        mujoco.mj_forward(self.model, self.data)
        self._task_update()
        if self.render_mode == "human":
            self.render()
        return self._task_observation(), self._task_info()

    def step(self, action: Any):
        if self.data is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        a, clipped = self._validate_action(action)
        self._task_apply_action(a)
        stable = self._simulate()
        self._task_update()
        self.t += 1
        obs = self._task_observation()
        reward, terms = self._task_reward(a)
        info = {**self._task_info(), **{f"reward_{k}": v for k, v in terms.items()}}
        info["action_clipped"] = clipped
        info["unstable"] = not stable
        truncated = self.t >= self.horizon
        if self.render_mode == "human":
            self.render()
        return obs, reward, not stable, truncated, info

    def render(self):
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
