"""What the deformable tasks share: ropes and cloth as MuJoCo flexes whose end or corner vertices are the grippers.

MuJoCo 4 builds ropes and cloth from a ``<flex>``: a set of vertex bodies joined by elements (edges for a rope,
triangles for cloth). Here every vertex is a small body with world-axis slide joints, and the grippers are
themselves the vertices they hold (the rope's two ends, the cloth's four corners): a heavier body with slide
joints driven by velocity servos. The flex's edge-length equality constraint (``<equality><flex/>``) makes the
material inextensible; there is no bending or shear stiffness (a chain and an inextensible sheet), which needs no
elasticity plugin and runs under ``implicitfast``. Holding a vertex *is* the grasp, so nothing slips, and the
servos' force limits bound how hard the grippers can pull against the material: an over-stretching action is
resisted by the constraint instead of tearing the model apart.

Conventions: vertex positions are world-frame body positions (``data.xpos``); since every vertex body hangs off
the world with slide joints along the world axes, its world velocity is its joint velocities (zero along an
axis it cannot move).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import gymnasium as gym
import numpy as np

from geomanip.envs.base import MujocoGraphEnv, control_rate

__all__ = [
    "DeformableTaskEnv",
    "CONTROL_DT",
    "PHYSICS",
    "path_edges",
    "resample_polyline",
    "winding_number",
]

CONTROL_DT = 0.02
"""Control period of the deformable tasks (s): the benchmark's 10 ms physics step times 2, 50 Hz."""

PHYSICS = {"timestep": 0.005, "integrator": "implicitfast", "solver": "Newton"}
"""Default physics of the deformable tasks, chosen by measurement (``python -m benchmarks.deformable_envs
--physics``, recorded in BENCHMARKS.md): a 5 ms step (4 per action), half the benchmark's, because MuJoCo's
soft constraints can be no stiffer than a time constant of two steps and the rope's edges stretched 3-4 times
more at 10 ms; the implicit-in-velocity integrator (the servos' damping is integrated implicitly; flex
elasticity, which would need ``discrete``, is not used) and the Newton solver (fewer iterations than CG on the
hundreds of edge constraints of the cloth)."""


def path_edges(num: int, hops: int) -> np.ndarray:
    """Each node of an open chain receives from its neighbours up to ``hops`` steps away on both sides, ``[2, E]``.

    The static stand-in for the benchmark's k nearest neighbours along a rope (``hops=2`` gives each interior
    node four neighbours), so that the graph schema does not change between steps.
    """
    src, dst = [], []
    for i in range(num):
        for k in range(1, hops + 1):
            for j in (i - k, i + k):
                if 0 <= j < num:
                    src.append(j)
                    dst.append(i)
    return np.array([src, dst], dtype=np.int64)


def winding_number(points: np.ndarray, centre: np.ndarray) -> float:
    """How many times the closed polygon through ``points`` ``[N, 2]`` (last joined to first) turns about ``centre``.

    About +-1 when the point lies inside a simple loop, about 0 outside; not rounded, so callers pick a margin.
    """
    rel = points - centre
    ang = np.arctan2(rel[:, 1], rel[:, 0])
    d = np.diff(np.append(ang, ang[0]))
    d = (d + math.pi) % (2 * math.pi) - math.pi
    return float(d.sum() / (2 * math.pi))


def resample_polyline(points: np.ndarray, num: int) -> np.ndarray:
    """``num`` points equally spaced by arc length along the polyline ``points`` ``[M, D]`` (ends included)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], num)
    return np.stack([np.interp(t, s, points[:, k]) for k in range(points.shape[1])], axis=1)


class DeformableTaskEnv(MujocoGraphEnv):
    """Base of the deformable tasks: a flex whose listed vertex bodies include the grippers.

    Subclasses build the scene with :meth:`vertex_body_xml` / :meth:`gripper_body_xml` and :meth:`scene_xml`,
    name the flex's vertex bodies in order in :attr:`vertex_names` (by the time a scene is loaded: a task whose
    scene variants differ in vertices sets them in :meth:`_task_scene_loaded` before calling this class's) and
    implement the remaining ``_task_*`` hooks of :class:`~geomanip.envs.base.MujocoGraphEnv`. This class reads
    every vertex's position and velocity once per step (:attr:`vertex_pos`, :attr:`vertex_vel`), writes start
    configurations (:meth:`set_vertices`) and turns actions into servo commands.

    Physics keywords (``timestep``, ``integrator``, ``solver``; defaults in :data:`PHYSICS`) exist so that the
    benchmark can measure alternatives; the tasks' documented behaviour holds for the defaults. Whatever the
    timestep, actions come every :data:`CONTROL_DT` (20 ms).

    ``observe_velocities=False`` makes every velocity of the observation (the ``*_vel`` keys) zero; spaces,
    keys and graph stay the same, so any policy runs unchanged and sees positions only. For imitation: the grippers
    are velocity servos, so a gripper's velocity is nearly the last action, and the scripted controllers' actions
    change slowly. A cloned policy can then lower its error by copying the last action from that velocity instead
    of reading the material's state, and in its own episodes it keeps doing whatever it did (the copycat problem
    of behaviour cloning). The controllers act on positions alone.
    """

    metadata = {**MujocoGraphEnv.metadata, "render_fps": control_rate(CONTROL_DT)}
    # A flex scene's data is large and allocating it costs little next to an episode's physics.
    reuse_data = False

    num_grippers = 2
    gripper_dofs = 2  # slide joints per gripper (2: planar x, y; 3: x, y, z), in that order
    gripper_mass = 1.0
    gripper_kv = 20.0  # velocity servo gain (N per m/s)
    gripper_force = 10.0  # servo force limit (N): with the mass, caps a gripper's acceleration at 10 m/s^2
    edge_solimp = "0.99 0.999 0.001"  # impedance near 1: nearly hard edge constraints

    def __init__(
        self,
        horizon: int,
        linear_scale: float = 1.0,
        timestep: float = PHYSICS["timestep"],
        integrator: str = PHYSICS["integrator"],
        solver: str = PHYSICS["solver"],
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
        observe_velocities: bool = True,
    ) -> None:
        if not isinstance(observe_velocities, bool):
            raise ValueError(
                f"{type(self).__name__}: observe_velocities must be True or False, got {observe_velocities!r}"
            )
        self.observe_velocities = observe_velocities
        if not 0 < timestep <= CONTROL_DT:
            raise ValueError(f"{type(self).__name__}: timestep must be in (0, {CONTROL_DT}] s, got {timestep}")
        frame_skip = max(1, round(CONTROL_DT / timestep))
        super().__init__(frame_skip=frame_skip, horizon=horizon, render_mode=render_mode, width=width, height=height)
        # A timestep that does not divide CONTROL_DT gives another control period.
        self.metadata = {**self.metadata, "render_fps": control_rate(timestep * frame_skip)}
        # Edge constraints as stiff as MuJoCo allows at this step: a time constant of two steps, critical damping.
        self.edge_solref = f"{2 * timestep:.6g} 1"
        # MJCF's spellings. No "discrete": it rejects flex edge damping, and it is only needed for flex
        # elasticity, which these tasks do not use.
        valid = {"Euler", "RK4", "implicit", "implicitfast"}
        if integrator not in valid:
            raise ValueError(f"{type(self).__name__}: integrator must be one of {sorted(valid)}, got {integrator!r}")
        if solver not in ("Newton", "CG", "PGS"):
            raise ValueError(f"{type(self).__name__}: solver must be 'Newton', 'CG' or 'PGS', got {solver!r}")
        self.linear_scale = linear_scale
        self.timestep, self.integrator, self.solver = timestep, integrator, solver
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.num_grippers * self.gripper_dofs,), dtype=np.float32)
        self.vertex_names: list[str] = []

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        return self._observed(obs), info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        return self._observed(obs), reward, terminated, truncated, info

    def _observed(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation as the policy gets it: velocities zero unless ``observe_velocities`` (class docstring)."""
        if self.observe_velocities:
            return obs
        return {k: np.zeros_like(v) if k.endswith("_vel") else v for k, v in obs.items()}

    # ------------------------------------------------------------------------------------------------
    # MJCF
    def vertex_body_xml(self, name: str, pos: np.ndarray, mass: float) -> str:
        """A flex vertex: a point mass with slide joints along the world x, y and z axes."""
        # MuJoCo forbids joint damping on flex vertex bodies; damping lives on the flex's edges instead.
        joints = "".join(f'<joint type="slide" axis="{a}"/>' for a in _AXES)
        i = max(mass * 1e-4, 1e-9)  # a point mass; MuJoCo needs some inertia on every body
        return (
            f'<body name="{name}" pos="{_fmt(pos)}">{joints}'
            f'<inertial pos="0 0 0" mass="{mass:.6g}" diaginertia="{i:.3g} {i:.3g} {i:.3g}"/></body>'
        )

    def gripper_body_xml(self, index: int, pos: np.ndarray, half: float = 0.04) -> str:
        """A gripper: a gravity-compensated cube with ``gripper_dofs`` slide joints; it is also a flex vertex.

        Its cube does not collide (the flex vertex it carries does): it marks where the material is held.
        """
        joints = "".join(
            f'<joint name="g{index}{c}" type="slide" axis="{a}" damping="1"/>'
            for c, a in zip("xyz"[: self.gripper_dofs], _AXES, strict=False)
        )
        return (
            f'<body name="gripper{index}" pos="{_fmt(pos)}" gravcomp="1">{joints}'
            f'<geom type="box" size="{half} {half} {half}" mass="{self.gripper_mass}" contype="0" conaffinity="0" '
            f'rgba="0.2 0.35 0.75 1"/><site name="grip{index}"/></body>'
        )

    def spans(self) -> list[tuple[int, int, float]]:
        """Pairs of grippers ``(i, j, length)`` that the material between them keeps within ``length`` (m)."""
        return []

    def spans_xml(self) -> str:
        """Length-limited tendons between gripper pairs: the material's inextensibility as the grippers feel it.

        MuJoCo's soft constraints act in proportion to the masses they join, and a rope's or cloth's vertices
        are light: a gripper servo pulling two held points apart would stretch the light edges between them
        (several times their length, measured) before their constraints pushed back with the servo's force.
        A tendon limit between the heavy grippers takes that load instead.
        """
        tendons = "\n".join(
            f'<spatial name="span{i}{j}" limited="true" range="0 {length:.6g}" '
            f'solreflimit="{self.edge_solref}">'
            f'<site site="grip{i}"/><site site="grip{j}"/></spatial>'
            for i, j, length in self.spans()
        )
        return f"<tendon>\n{tendons}\n</tendon>" if tendons else ""

    def actuators_xml(self) -> str:
        kv, f = self.gripper_kv, self.gripper_force
        return "\n".join(
            f'<velocity name="g{i}{c}" joint="g{i}{c}" kv="{kv}" forcerange="{-f} {f}"/>'
            for i in range(self.num_grippers)
            for c in "xyz"[: self.gripper_dofs]
        )

    def scene_xml(self, model: str, worldbody: str, flex: str, camera: str, lookat: str = "hanger") -> str:
        """The full MJCF document: physics options, floor, lights, a camera at ``camera`` aimed at the body
        ``lookat``, the bodies, the flex with its edge constraint, and the grippers' servos."""
        return f"""<mujoco model="{model}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{self.timestep}" integrator="{self.integrator}" solver="{self.solver}" cone="pyramidal"/>
  <visual><global offwidth="960" offheight="960"/><quality shadowsize="2048"/></visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" width="256" height="256" rgb1="0.75 0.75 0.75"
      rgb2="0.62 0.62 0.62"/>
    <texture name="sky" type="skybox" builtin="gradient" width="256" height="256" rgb1="0.55 0.65 0.8"
      rgb2="0.15 0.15 0.2"/>
    <material name="grid" texture="grid" texrepeat="16 16"/>
  </asset>
  <worldbody>
    <light pos="0 0 6" dir="0 0 -1" diffuse="0.5 0.5 0.5" specular="0.1 0.1 0.1"/>
    <light pos="3 -3 5" dir="-1 1 -1.5" diffuse="0.25 0.25 0.25" specular="0 0 0"/>
    <camera name="overview" mode="targetbody" target="{lookat}" pos="{camera}"/>
    <geom name="floor" type="plane" size="6 6 0.05" material="grid" friction="0.5 0.005 0.0001"/>
{worldbody}
  </worldbody>
  <deformable>
{flex}
  </deformable>
  <equality>
    <flex flex="{self.flex_name}" solref="{self.edge_solref}" solimp="{self.edge_solimp}"/>
  </equality>
  {self.spans_xml()}
  <actuator>
{self.actuators_xml()}
  </actuator>
</mujoco>"""

    flex_name = "material"

    # ------------------------------------------------------------------------------------------------
    # State access
    def _task_scene_loaded(self, variant: Hashable) -> None:
        m = self.model
        if not self.vertex_names:
            raise RuntimeError(f"{type(self).__name__}: vertex_names must list the flex's vertex bodies")
        self._vertex_ids = np.array([m.body(n).id for n in self.vertex_names])
        self._gripper_ids = np.array([m.body(f"gripper{i}").id for i in range(self.num_grippers)])
        self._gripper_vertex = np.array([self.vertex_names.index(f"gripper{i}") for i in range(self.num_grippers)])
        self._body_pos0 = m.body_pos[self._vertex_ids].copy()
        # Index of each vertex's x, y, z joint in qpos / qvel; m.nq / m.nv (a padding slot) where it has none.
        qidx = np.full((len(self._vertex_ids), 3), m.nq)
        vidx = np.full((len(self._vertex_ids), 3), m.nv)
        for k, b in enumerate(self._vertex_ids):
            for j in range(m.body_jntadr[b], m.body_jntadr[b] + m.body_jntnum[b]):
                axis = int(np.argmax(np.abs(m.jnt_axis[j])))
                qidx[k, axis], vidx[k, axis] = m.jnt_qposadr[j], m.jnt_dofadr[j]
        self._qidx, self._vidx = qidx, vidx
        self._qvel_pad = np.zeros(m.nv + 1)
        self._qpos_pad = np.zeros(m.nq + 1)

    def set_vertices(self, positions: np.ndarray) -> None:
        """Place every vertex at ``positions`` ``[V, 3]`` (world frame) at rest; axes a vertex cannot move
        along keep their model value."""
        d = self.data
        q = self._qpos_pad
        q[:-1] = d.qpos
        q[self._qidx] = positions - self._body_pos0
        d.qpos[:] = q[:-1]
        d.qvel[:] = 0.0

    def _read_vertices(self) -> None:
        self._qvel_pad[:-1] = self.data.qvel
        self.vertex_pos = self.data.xpos[self._vertex_ids]
        self.vertex_vel = self._qvel_pad[self._vidx]
        self.gripper_pos = self.vertex_pos[self._gripper_vertex]
        self.gripper_vel = self.vertex_vel[self._gripper_vertex]

    def _task_update(self) -> None:
        self._read_vertices()

    # ------------------------------------------------------------------------------------------------
    # Actions and reward helpers
    def _task_ctrl(self, action: np.ndarray) -> np.ndarray:
        return action * self.linear_scale

    def _final_steps(self, n: int) -> bool:
        """Whether the current step is among the last ``n`` of the episode."""
        return self.t > self.horizon - n

    @staticmethod
    def _action_rate(action: np.ndarray, prev_action: np.ndarray) -> float:
        """``|a_t - a_{t-1}|^2`` (the base passes zeros as the previous action on the first step)."""
        return float(np.sum((action - prev_action) ** 2))


_AXES = ("1 0 0", "0 1 0", "0 0 1")


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.6g}" for v in np.asarray(values, dtype=np.float64).ravel())
