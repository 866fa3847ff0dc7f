"""What the four rigid tasks share: shape selection, object keypoints, goal bookkeeping, graph layout."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from envs.base import GraphSpec, MujocoGraphEnv, full_edges, ring_edges
from envs.mjcf import OBJECT_HEIGHT
from envs.shapes import ALL_SHAPES, NUM_KEYPOINTS, get_shape, resolve_shapes

__all__ = ["RigidTaskEnv", "matrix_to_quat", "rotation_angle", "wrap_angle", "yaw_matrix"]


def wrap_angle(a: float) -> float:
    """Angle wrapped to ``[-pi, pi)``."""
    return (a + math.pi) % (2 * math.pi) - math.pi


def yaw_matrix(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_angle(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Angle (rad, in ``[0, pi]``) of the rotation taking frame ``R_b`` to frame ``R_a``."""
    c = (float((R_a * R_b).sum()) - 1.0) / 2.0  # trace(R_b^T R_a)
    return float(math.acos(min(1.0, max(-1.0, c))))


OBS_BOUND = 1e3
"""Bound of every observed coordinate (m or m/s): unreachable, since unstable steps end the episode."""


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """MuJoCo quaternion ``(w, x, y, z)`` of a rotation matrix."""
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).ravel())
    return q


def _vec_box(n: int) -> gym.spaces.Box:
    return gym.spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(n, 3), dtype=np.float32)


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
    """

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
        self.observation_space = gym.spaces.Dict({k: _vec_box(counts[t]) for t, ks in keys.items() for k in ks})
        self._local_keypoints = np.zeros((NUM_KEYPOINTS, 3))
        self.goal_pos, self.goal_rot = np.zeros(3), np.eye(3)
        self._prev_action: np.ndarray | None = None

    # ------------------------------------------------------------------------------------------------
    def _begin_episode(self, options: dict[str, Any]) -> None:
        """Pick the episode's shape (``options["shape"]`` or a seeded draw) and load its scene."""
        self._prev_action = None
        name = options.get("shape")
        if name is None:
            name = self.shapes[int(self.np_random.integers(len(self.shapes)))]
        elif name not in self.shapes:
            raise ValueError(f"options['shape']={name!r} is not among this environment's shapes {self.shapes}")
        self.shape = get_shape(name)
        kp = self.shape.keypoints
        self._local_keypoints = np.column_stack([kp, np.full(len(kp), OBJECT_HEIGHT / 2)])
        self._use_variant(self._variant_for(options))

    def _variant_for(self, options: dict[str, Any]) -> Any:
        """The scene variant (cache key of the compiled model): the shape, and the hole's shape for tasks with
        a hole (``options["hole_shape"]``, default the peg's, lets a wrong peg be tried)."""
        if not self.has_hole:
            return self.shape.name
        hole = options.get("hole_shape", self.shape.name)
        get_shape(hole)  # raises a clear error for an unknown name
        return self.shape.name, hole

    def _set_goal(self, pos: np.ndarray, rot: np.ndarray) -> None:
        """Set the goal pose and move the goal's mocap body (the ghost or the hole fixture) there."""
        self.goal_pos, self.goal_rot = np.asarray(pos, dtype=np.float64), np.asarray(rot, dtype=np.float64)
        self.data.mocap_pos[0] = self.goal_pos
        self.data.mocap_quat[0] = matrix_to_quat(self.goal_rot)

    def _is_success(self, errors: dict[str, float]) -> bool:
        """Whether the current state solves the task, from the goal errors (and any state)."""
        raise NotImplementedError

    def _task_info(self) -> dict[str, Any]:
        e = self.errors()
        return {
            "is_success": bool(self._is_success(e)),
            "shape": self.shape.name,
            **{f"error_{k}": v for k, v in e.items()},
        }

    def _use_variant(self, variant: Any) -> None:
        super()._use_variant(variant)
        names = ["object"] + [f"gripper{i}" for i in range(self.num_grippers)]
        self._body_ids = {n: self.model.body(n).id for n in names}
        self._gripper_ids = np.array([self._body_ids[f"gripper{i}"] for i in range(self.num_grippers)])
        self._velocities = np.zeros((1 + self.num_grippers, 6))

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

    def _task_update(self) -> None:
        m, d, vel = self.model, self.data, self._velocities
        self._pos, self._rot = self.object_pose()
        # Rows: [angular, linear] world-frame velocity of the object, then of each gripper.
        for row, body in enumerate((self._body_ids["object"], *self._gripper_ids)):
            mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_BODY, body, vel[row], 0)
        self._ang, self._lin = vel[0, :3].copy(), vel[0, 3:].copy()
        self._grip_ang, self._grip_lin = vel[1:, :3].copy(), vel[1:, 3:].copy()
        self._grip_pos = self.gripper_positions()
        self._errors = self._compute_errors()

    def _task_observation(self) -> dict[str, np.ndarray]:
        kp = self.keypoints(self._pos, self._rot)
        w = self._ang
        # omega x r for every keypoint, as one product with the cross-product matrix of omega.
        skew = np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])
        obs = {
            "object_pos": kp,
            "object_vel": self._lin + (kp - self._pos) @ skew.T,
            "object_target": self.keypoints(self.goal_pos, self.goal_rot),
            "gripper_pos": self._grip_pos,
            "gripper_vel": self._grip_lin,
        }
        if self.has_yaw:
            obs["gripper_angvel"] = self._grip_ang
        return {k: v.astype(np.float32) for k, v in obs.items()}

    def _final_steps(self, n: int) -> bool:
        """Whether the current step is among the last ``n`` of the episode."""
        return self.t > self.horizon - n

    def _action_rate(self, action: np.ndarray) -> float:
        prev = self._prev_action if self._prev_action is not None else np.zeros_like(action)
        self._prev_action = action.copy()
        return float(np.sum((action - prev) ** 2))

    def errors(self) -> dict[str, float]:
        """Goal errors of the current step: planar ``distance`` (m), ``height`` difference (m), ``orientation``
        angle (rad)."""
        return dict(self._errors)

    def _compute_errors(self) -> dict[str, float]:
        pos, rot = self._pos, self._rot
        return {
            "distance": float(np.hypot(*(pos[:2] - self.goal_pos[:2]))),
            "height": float(abs(pos[2] - self.goal_pos[2])),
            "orientation": rotation_angle(rot, self.goal_rot),
        }
