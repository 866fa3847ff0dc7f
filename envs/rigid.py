"""What the four rigid tasks share: shape selection, goal bookkeeping, graph layout, and the task logic as
batched pure functions.

Everything that observation, reward and success need is computed by functions on arrays with a leading batch
dimension ``B``, from the generalised coordinates (``qpos``, ``qvel``) of each environment's MuJoCo state.
The single environment (:class:`RigidTaskEnv`) calls them with ``B = 1``; the vector environment
(:class:`geomanip.envs.vector.RigidVectorEnv`) with ``B = num_envs``, on NumPy arrays for C MuJoCo and on torch
tensors on the simulation's device for MuJoCo Warp (:mod:`geomanip.envs.arrays`). There is one implementation of
the task logic, and tests check that the single and the batched environment give bit-identical observations,
rewards and infos, and that the Warp batch agrees with them.

Conventions: rotation matrices act on column vectors (``world = R @ local + pos``); quaternions are MuJoCo's
``(w, x, y, z)``. The batched functions use few, whole-batch numpy operations (``matmul``, ``einsum``,
elementwise ufuncs), each of which computes every row with the same kernel whatever the batch size, so a
batch of one and a batch of many agree to the last bit.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from geomanip.envs.arrays import Array, as_like, device, float32, namespace
from geomanip.envs.base import (
    STATE_SPEC,
    GraphSpec,
    MujocoGraphEnv,
    full_edges,
    ring_edges,
    state_slices,
    vec_box,
)
from geomanip.envs.mjcf import OBJECT_HEIGHT
from geomanip.envs.shapes import ALL_SHAPES, NUM_KEYPOINTS, get_shape, resolve_shapes

__all__ = [
    "BodyStates",
    "RigidEpisode",
    "RigidTaskEnv",
    "cross_matrices",
    "final_step_factor",
    "keypoint_observation",
    "local_keypoints",
    "matrix_to_quat",
    "norms",
    "pose_errors",
    "quat_matrices",
    "rotate",
    "rotation_angles",
    "squared_change",
    "wrap_angle",
    "yaw_matrices",
]


# --------------------------------------------------------------------------------------------------
# Rotations (scalar helpers for sampling, batched ones for the task logic)
def wrap_angle(a: float) -> float:
    """Angle wrapped to ``[-pi, pi)``."""
    return (a + math.pi) % (2 * math.pi) - math.pi


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """MuJoCo quaternion ``(w, x, y, z)`` of a rotation matrix."""
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).ravel())
    return q


# Rotation matrices as linear maps of (cos, sin) and of the quaternion's products, so that a whole batch takes
# a few array operations (coefficients 0 and +-1 or +-2: they add no rounding beyond the terms').
_YAW_COS = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 0]])
_YAW_SIN = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 0]])
_YAW_CONST = np.array([[0.0, 0, 0], [0, 0, 0], [0, 0, 1]])
_QUAT_COEFFS = np.zeros((4, 4, 9))  # R.ravel() = (q q^T).ravel() @ _QUAT_COEFFS for a unit quaternion q
for _row, _terms in enumerate(
    [
        {(0, 0): 1, (1, 1): 1, (2, 2): -1, (3, 3): -1},
        {(1, 2): 2, (0, 3): -2},
        {(1, 3): 2, (0, 2): 2},
        {(1, 2): 2, (0, 3): 2},
        {(0, 0): 1, (1, 1): -1, (2, 2): 1, (3, 3): -1},
        {(2, 3): 2, (0, 1): -2},
        {(1, 3): 2, (0, 2): -2},
        {(2, 3): 2, (0, 1): 2},
        {(0, 0): 1, (1, 1): -1, (2, 2): -1, (3, 3): 1},
    ]
):
    for (_a, _b), _c in _terms.items():
        _QUAT_COEFFS[_a, _b, _row] = _c
_QUAT_COEFFS = _QUAT_COEFFS.reshape(16, 9)


def yaw_matrices(yaw: Array) -> Array:
    """Rotations about z by ``yaw`` ``[B]`` (rad): ``[B, 3, 3]``."""
    xp = namespace(yaw)
    cos, sin = xp.cos(yaw)[:, None, None], xp.sin(yaw)[:, None, None]
    return cos * as_like(_YAW_COS, yaw) + sin * as_like(_YAW_SIN, yaw) + as_like(_YAW_CONST, yaw)


def quat_matrices(q: Array) -> Array:
    """Rotation matrices ``[B, 3, 3]`` of quaternions ``[B, 4]`` ``(w, x, y, z)``, normalised first (as
    MuJoCo's kinematics does)."""
    q = q / norms(q)[:, None]
    # One [1, 16] x [16, 9] product per row (not one [B, 16] x [16, 9]): its rounding cannot depend on B.
    return ((q[:, :, None] * q[:, None, :]).reshape(-1, 1, 16) @ as_like(_QUAT_COEFFS, q)).reshape(-1, 3, 3)


def rotation_angles(R_a: Array, R_b: Array) -> Array:
    """Angles ``[B]`` (rad, in ``[0, pi]``) of the rotations taking frames ``R_b`` to frames ``R_a``."""
    xp = namespace(R_a)
    c = (xp.einsum("bij,bij->b", R_a, R_b) - 1.0) / 2.0  # trace(R_b^T R_a)
    return xp.acos(xp.clip(c, -1.0, 1.0))


def norms(x: Array) -> Array:
    """Euclidean norms over the last axis."""
    xp = namespace(x)
    return xp.sqrt(xp.einsum("...i,...i->...", x, x))


def rotate(R: Array, v: Array) -> Array:
    """``R @ v`` for rotations ``[B, 3, 3]`` and vectors ``[B, N, 3]``: ``[B, N, 3]``."""
    return v @ R.mT


# [w]x = w[_CROSS_INDEX] * _CROSS_SIGN: the cross-product matrix [[0, -w2, w1], [w2, 0, -w0], [-w1, w0, 0]].
_CROSS_INDEX = np.array([[0, 2, 1], [2, 0, 0], [1, 0, 0]])
_CROSS_SIGN = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])


def cross_matrices(w: Array) -> Array:
    """Cross-product matrices ``[B, 3, 3]`` of vectors ``[B, 3]``: ``cross_matrices(w)[b] @ r = w[b] x r``."""
    return w[:, as_like(_CROSS_INDEX, w)] * as_like(_CROSS_SIGN, w)


# --------------------------------------------------------------------------------------------------
# Batched task logic
@dataclass
class BodyStates:
    """World-frame poses and velocities of the object and the grippers, batch first.

    Velocities are those of the body frames' origins in the world frame (MuJoCo's ``mj_objectVelocity`` of
    ``mjOBJ_XBODY``; ``mjOBJ_BODY`` would give the velocity at the centre of mass).

    Shapes: ``object_pos``, ``object_lin``, ``object_ang``: ``[B, 3]``; ``object_rot``: ``[B, 3, 3]``;
    ``gripper_pos``, ``gripper_lin``, ``gripper_ang``: ``[B, G, 3]``.
    """

    object_pos: Array
    object_rot: Array
    object_lin: Array
    object_ang: Array
    gripper_pos: Array
    gripper_lin: Array
    gripper_ang: Array


def keypoint_observation(
    s: BodyStates, goal_pos: Array, goal_rot: Array, local_keypoints: Array, has_yaw: bool
) -> dict[str, Array]:
    """The graph observation of a batch: each entry ``[B, nodes, 3]`` float32 (see :class:`RigidTaskEnv`).

    Object nodes: keypoint positions ``R k + p``, velocities ``v + omega x (R k) = v + [omega]x R k`` and
    targets ``R_goal k + p_goal``, all three from one batched product of the local keypoints ``k``.

    Args:
        s: body states of the batch.
        goal_pos, goal_rot: goal frames ``[B, 3]``, ``[B, 3, 3]``.
        local_keypoints: the object's keypoints in its own frame, ``[B, K, 3]`` (shapes differ per episode).
        has_yaw: whether the grippers' angular velocities are observed (tasks with a yaw action).
    """
    R = s.object_rot
    B = R.shape[0]
    xp = namespace(R)
    # (concatenation of [:, None] views rather than stack: the same, without NumPy's Python-level overhead.)
    linear = xp.concat([R[:, None], (cross_matrices(s.object_ang) @ R)[:, None], goal_rot[:, None]], axis=1)
    offset = xp.concat([s.object_pos[:, None], s.object_lin[:, None], goal_pos[:, None]], axis=1)
    # All three maps in one [K, 3] x [3, 9] product per environment: numpy's stacked matmul costs per matrix.
    maps = xp.permute_dims(linear, (0, 3, 1, 2)).reshape(B, 3, 9)
    nodes = (local_keypoints @ maps).reshape(B, -1, 3, 3) + offset[:, None]  # [B, K, map, 3]
    nodes = float32(xp.permute_dims(nodes, (0, 2, 1, 3)))  # [B, map, K, 3], each map contiguous
    grippers = [s.gripper_pos, s.gripper_lin, s.gripper_ang] if has_yaw else [s.gripper_pos, s.gripper_lin]
    grip = float32(xp.concat([x[:, None] for x in grippers], axis=1))  # [B, 2 or 3, G, 3]
    obs = {
        "object_pos": nodes[:, 0],
        "object_vel": nodes[:, 1],
        "object_target": nodes[:, 2],
        "gripper_pos": grip[:, 0],
        "gripper_vel": grip[:, 1],
    }
    if has_yaw:
        obs["gripper_angvel"] = grip[:, 2]
    return obs


def pose_errors(s: BodyStates, goal_pos: Array, goal_rot: Array) -> dict[str, Array]:
    """Errors ``[B]`` of the object's pose against the goal's: planar ``distance`` (m), ``height`` difference
    (m), ``orientation`` angle (rad)."""
    xp = namespace(goal_pos)
    d = s.object_pos - goal_pos
    return {
        "distance": xp.hypot(d[:, 0], d[:, 1]),
        "height": xp.abs(d[:, 2]),
        "orientation": rotation_angles(s.object_rot, goal_rot),
    }


def final_step_factor(t: Array, horizon: int, final_steps: int, factor: float) -> Array:
    """``factor`` where step ``t`` ``[B]`` is among the last ``final_steps`` of the episode, else 1."""
    xp = namespace(t)
    # (A float64 table rather than where(..., factor, 1.0), whose Python floats become float32 in torch.)
    factors = xp.asarray([1.0, factor], dtype=xp.float64, device=device(t))
    return factors[xp.astype(t > horizon - final_steps, xp.int64)]


def squared_change(action: Array, prev_action: Array) -> Array:
    """``|a - a_prev|^2`` per row ``[B]``."""
    d = action - prev_action
    return namespace(d).einsum("bi,bi->b", d, d)


@functools.cache
def local_keypoints(shape: str) -> np.ndarray:
    """The keypoints ``[K, 3]`` of ``shape`` in the object frame, at mid-height (shared: do not modify)."""
    kp = get_shape(shape).keypoints
    out = np.column_stack([kp, np.full(len(kp), OBJECT_HEIGHT / 2)])
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class RigidEpisode:
    """What a batch needs of an episode that :meth:`RigidTaskEnv.begin_episode` started.

    Attributes:
        model, data: the episode's MuJoCo model and data (the environment's own: stepping them steps it).
        state: the start state, ``[nstate]`` of :data:`~geomanip.envs.base.STATE_SPEC` (a copy).
        goal_pos, goal_rot: the goal frame, ``[3]`` and ``[3, 3]``.
        local_keypoints: the object's keypoints in its own frame, ``[K, 3]`` (shared: do not modify).
        shape: the object's shape name.
    """

    model: mujoco.MjModel
    data: mujoco.MjData
    state: np.ndarray
    goal_pos: np.ndarray
    goal_rot: np.ndarray
    local_keypoints: np.ndarray
    shape: str


class RigidTaskEnv(MujocoGraphEnv):
    """Base of the rigid tasks: an extruded object of a selectable shape, grippers, a goal pose.

    The observation is a ``Dict`` of world-frame vectors, one entry per (node type, quantity), each
    ``[nodes, 3]`` float32; :attr:`graph_spec` says which entries belong to which node type and lists the
    typed edges. Object nodes are the shape's ``NUM_KEYPOINTS`` outline keypoints at mid-height:
    ``object_pos``, ``object_vel`` and ``object_target`` (the keypoints at the goal pose). Gripper nodes:
    ``gripper_pos``, ``gripper_vel`` and, for tasks with yaw actions, ``gripper_angvel``. Nothing is
    expressed in a canonical frame: rotating the scene rotates every vector.

    Edges: ``(object, internal, object)`` joins each keypoint to the two nearest on either side along the
    outline (a fixed ring, the same for every shape, standing in for the benchmark's k = 3 nearest
    neighbours so that the schema is static); ``(object, task, gripper)`` is complete and directed;
    ``(gripper, agent, gripper)`` is complete without self-loops (two-gripper tasks only).

    A rigid task implements the scene hooks of :class:`~geomanip.envs.base.MujocoGraphEnv` (:meth:`_task_xml`,
    :meth:`_task_reset`, which calls :meth:`_set_goal`) and the batched pure methods (no state is read or written
    but their arguments and the task's constant parameters): :meth:`readout`, :meth:`action_to_ctrl`,
    :meth:`reward_terms`, :meth:`success`, and optionally :meth:`goal_errors`. This class implements the other
    hooks with them, on a batch of one; :class:`geomanip.envs.vector.RigidVectorEnv` calls the same methods on
    whole batches, after starting each sub-environment's episode with :meth:`begin_episode`.

    **Reset options**: ``shape`` picks the episode's shape among the environment's shapes; for tasks with a
    hole, ``hole_shape`` gives the hole another shape than the peg.
    """

    # The control rate of the defaults: the scenes' 5 ms physics step (geomanip.envs.mjcf) times frame_skip=8.
    metadata = {**MujocoGraphEnv.metadata, "render_fps": 25}

    num_grippers = 1
    has_yaw = False
    has_hole = False
    allowed_shapes: tuple[str, ...] = ALL_SHAPES

    def __init__(
        self, shape: str | tuple[str, ...] | list[str] = "train", horizon: int = 100, frame_skip: int = 8, **kwargs: Any
    ) -> None:
        super().__init__(frame_skip=frame_skip, horizon=horizon, **kwargs)
        self.shapes = resolve_shapes(shape, self.allowed_shapes)
        self.shape = get_shape(self.shapes[0])
        g = self.num_grippers
        keys = {"object": ("object_pos", "object_vel", "object_target"), "gripper": ("gripper_pos", "gripper_vel")}
        if self.has_yaw:
            keys["gripper"] += ("gripper_angvel",)
        edges = {
            ("object", "internal", "object"): ring_edges(NUM_KEYPOINTS, 2),
            ("object", "task", "gripper"): full_edges(NUM_KEYPOINTS, g),
        }
        if g > 1:
            edges[("gripper", "agent", "gripper")] = full_edges(g, g, exclude_self=True)
        self.graph_spec = GraphSpec({"object": NUM_KEYPOINTS, "gripper": g}, keys, edges)
        counts = {"object": NUM_KEYPOINTS, "gripper": g}
        self.observation_space = gym.spaces.Dict({k: vec_box(counts[t]) for t, ks in keys.items() for k in ks})
        self._local_keypoints = np.zeros((NUM_KEYPOINTS, 3))
        self.goal_pos, self.goal_rot = np.zeros(3), np.eye(3)
        self._body_ids: dict[str, int] | None = None  # set with the first scene

    # ------------------------------------------------------------------------------------------------
    # Batched task logic: implemented by each task, shared with the vector environment.
    @abc.abstractmethod
    def readout(self, qpos: Array, qvel: Array) -> BodyStates:
        """Body poses and velocities from generalised coordinates ``[B, nq]``, ``[B, nv]``."""

    @abc.abstractmethod
    def action_to_ctrl(self, action: Array) -> Array:
        """Actuator controls ``[B, nu]`` for validated, clipped actions ``[B, A]``."""

    def goal_errors(self, s: BodyStates, goal_pos: Array, goal_rot: Array) -> dict[str, Array]:
        """Goal errors ``[B]`` (default :func:`pose_errors`); ``info`` reports each as ``error_<name>``."""
        return pose_errors(s, goal_pos, goal_rot)

    @abc.abstractmethod
    def reward_terms(
        self,
        s: BodyStates,
        errors: dict[str, Array],
        action: Array,
        prev_action: Array,
        t: Array,
    ) -> dict[str, Array]:
        """Reward terms ``[B]`` (the reward is their sum) at step ``t`` ``[B]`` (1 on the first step), for
        ``action`` ``[B, A]`` after ``prev_action`` (zeros on the first step)."""

    @abc.abstractmethod
    def success(self, s: BodyStates, errors: dict[str, Array], goal_pos: Array) -> Array:
        """Whether each state solves the task, ``[B]`` bool."""

    # ------------------------------------------------------------------------------------------------
    def begin_episode(self, seed: int | None = None, options: dict[str, Any] | None = None) -> RigidEpisode:
        """Start an episode up to its first observation (:meth:`MujocoGraphEnv.begin_episode`) and return what a
        batch needs of it. :class:`~geomanip.envs.vector.RigidVectorEnv` resets its sub-environments with this."""
        super().begin_episode(seed, options)
        return RigidEpisode(
            self.model,
            self.data,
            self._state[0].copy(),
            self.goal_pos,
            self.goal_rot,
            self._local_keypoints,
            self.shape.name,
        )

    def _task_variant(self, options: dict[str, Any]) -> Hashable:
        """Pick the episode's shape (``options["shape"]`` or a seeded draw); the scene variant is the shape, and
        the hole's shape for tasks with a hole (``options["hole_shape"]``, default the peg's, lets a wrong peg
        be tried)."""
        name = options.get("shape")
        if name is None:
            name = self.shapes[int(self.np_random.integers(len(self.shapes)))]
        elif name not in self.shapes:
            raise ValueError(f"options['shape']={name!r} is not among this environment's shapes {self.shapes}")
        self.shape = get_shape(name)
        self._local_keypoints = local_keypoints(name)
        if not self.has_hole:
            return self.shape.name
        hole = options.get("hole_shape", self.shape.name)
        get_shape(hole)  # raises a clear error for an unknown name
        return self.shape.name, hole

    def _task_scene_loaded(self, variant: Hashable) -> None:
        if self._body_ids is None:  # every scene of a task has the same bodies and state layout
            names = ["object"] + [f"gripper{i}" for i in range(self.num_grippers)]
            self._body_ids = {n: self.model.body(n).id for n in names}
            self._gripper_ids = np.array([self._body_ids[f"gripper{i}"] for i in range(self.num_grippers)])
            self._qpos_slice, self._qvel_slice = state_slices(self.model)

    def _set_goal(self, pos: np.ndarray, rot: np.ndarray) -> None:
        """Set the goal pose and move the goal's mocap body (the ghost or the hole fixture) there."""
        self.goal_pos, self.goal_rot = np.asarray(pos, dtype=np.float64), np.asarray(rot, dtype=np.float64)
        self.data.mocap_pos[0] = self.goal_pos
        self.data.mocap_quat[0] = matrix_to_quat(self.goal_rot)

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Object frame in the world: origin at the centre of its bottom face, z along the extrusion."""
        i = self._body_ids["object"]
        return self.data.xpos[i].copy(), self.data.xmat[i].reshape(3, 3).copy()

    def gripper_positions(self) -> np.ndarray:
        """World positions of the grippers' centres, ``[G, 3]``."""
        return self.data.xpos[self._gripper_ids]

    def keypoints(self, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
        """The object's keypoints ``[K, 3]`` for an object frame at ``pos``, ``rot``."""
        return self._local_keypoints @ rot.T + pos

    # ------------------------------------------------------------------------------------------------
    # MujocoGraphEnv hooks: the batched logic with a batch of one.
    def _task_ctrl(self, action: np.ndarray) -> np.ndarray:
        return self.action_to_ctrl(action[None])[0]

    def _task_update(self) -> None:
        # Read afresh, not taken from the step, so that edits of self.data count (also as the state an unstable
        # step goes back to).
        mujoco.mj_getState(self.model, self.data, self._state[0], STATE_SPEC)
        s = self.readout(self._state[:, self._qpos_slice], self._state[:, self._qvel_slice])
        self._states = s
        self._errors = self.goal_errors(s, self.goal_pos[None], self.goal_rot[None])
        self._success = bool(self.success(s, self._errors, self.goal_pos[None])[0])

    def _task_observation(self) -> dict[str, np.ndarray]:
        obs = keypoint_observation(
            self._states, self.goal_pos[None], self.goal_rot[None], self._local_keypoints[None], self.has_yaw
        )
        return {k: v[0] for k, v in obs.items()}

    def _task_reward_terms(self, action: np.ndarray, prev_action: np.ndarray) -> dict[str, float]:
        terms = self.reward_terms(self._states, self._errors, action[None], prev_action[None], np.array([self.t]))
        return {k: float(v[0]) for k, v in terms.items()}

    def _task_errors(self) -> dict[str, float]:
        """Goal errors of the current step: planar ``distance`` (m), ``height`` difference (m), ``orientation``
        angle (rad) (two-gripper insertion: 3-D ``distance``)."""
        return {k: float(v[0]) for k, v in self._errors.items()}

    def _task_success(self) -> bool:
        return self._success

    def _task_info(self) -> dict[str, Any]:
        return {"shape": self.shape.name}
