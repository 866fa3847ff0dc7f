"""Two-gripper rigid insertion: two grippers hold a peg at two points and insert it into a tilted hole."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from geomanip.envs import mjcf
from geomanip.envs.arrays import zeros
from geomanip.envs.base import yaw_matrix
from geomanip.envs.rigid import (
    BodyStates,
    RigidTaskEnv,
    final_step_factor,
    matrix_to_quat,
    norms,
    pose_errors,
    quat_matrices,
    rotate,
)
from geomanip.envs.shapes import INSERTION_SHAPES, SHAPE_RADIUS, UNSEEN_SHAPES, get_shape

HOLE_CENTRE = np.array([0.0, 0.0, 1.0])
"""World position of the hole frame's origin (the scene floats: there is no floor)."""


def _pitch_matrix(pitch: float) -> np.ndarray:
    c, s = math.cos(pitch), math.sin(pitch)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


class RigidInsertionTwoAgentsEnv(RigidTaskEnv):
    r"""Insert a peg held by two grippers into a hole whose axis is tilted in space.

    Each gripper is a cube with three slide joints and velocity servos, joined to the peg by a ball-joint
    constraint (MuJoCo ``connect``) at mid-height, ``±0.6 R`` along the peg's x axis (``R`` = 0.1 m, the
    shape radius). Moving the grippers differently turns the peg. The rotation about the line through both
    grasp points is not controllable; the line passes through the peg's centre of mass, so accelerating
    the peg does not spin it about that line, and the start never needs it. The grippers are grasp points:
    their cubes do not collide (they would otherwise hit the block while the peg goes in). The scene
    floats (no floor) and the peg and grippers are gravity-compensated, as the benchmark's grippers hold
    the peg's weight.

    **Action** ``Box(-1, 1, (6,))``: linear velocities of gripper 0 and gripper 1 ``* linear_scale``
    (m/s), clipped to ``[-1, 1]``.

    **Observation**: see :class:`~geomanip.envs.rigid.RigidTaskEnv` (16 object keypoints, 2 gripper nodes, typed
    edges including ``(gripper, agent, gripper)``).

    **Reward** (``d``: 3-D distance of the peg frame to the fully inserted pose, ``theta``: rotation angle
    between them): ``-w (k_d d + 0.1 k_theta theta)`` with ``k_d = 5`` and ``k_theta = 7.5`` in the last
    ``final_steps`` steps, 1 before.

    **Start** (the benchmark's sampling): in the hole frame, the peg at x ~ U(0.25, 0.75),
    y ~ U(-0.75, 0.75), z ~ U(0.5, 1.25) m with its axis along the hole's and a random roll about it
    U(-pi, pi); the whole set is then rotated about the hole by pitch ~ U(-pi/2, 0) and yaw ~ U(-pi, pi).

    **Success**: peg frame within 1 cm of the inserted pose (so at least 3 cm deep in the 4 cm hole) and
    orientation error below 10 degrees.
    """

    num_grippers = 2
    has_hole = True
    allowed_shapes = INSERTION_SHAPES + UNSEEN_SHAPES
    anchor_offset = 0.6 * SHAPE_RADIUS

    def __init__(
        self,
        shape: str | tuple[str, ...] | list[str] = "train",
        horizon: int = 100,
        linear_scale: float = 1.0,
        distance_weight: float = 0.8,
        final_distance_weight: float = 5.0,
        final_orientation_weight: float = 7.5,
        final_steps: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(shape=shape, horizon=horizon, **kwargs)
        self.linear_scale = linear_scale
        self.distance_weight = distance_weight
        self.final_distance_weight, self.final_orientation_weight = final_distance_weight, final_orientation_weight
        self.final_steps = final_steps
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(6,), dtype=np.float32)
        z = mjcf.OBJECT_HEIGHT / 2
        self.anchors = np.array([[-self.anchor_offset, 0.0, z], [self.anchor_offset, 0.0, z]])

    def _task_xml(self, variant: tuple[str, str]) -> str:
        obj_assets, obj_meshes = mjcf.object_assets(get_shape(variant[0]))
        hole_assets, hole_meshes = mjcf.fixture_assets(get_shape(variant[1]))
        grippers = []
        for i in range(2):
            grippers.append(f"""
    <body name="gripper{i}" gravcomp="1">
      <joint name="g{i}x" type="slide" axis="1 0 0" damping="1"/>
      <joint name="g{i}y" type="slide" axis="0 1 0" damping="1"/>
      <joint name="g{i}z" type="slide" axis="0 0 1" damping="1"/>
      <geom class="gripper" contype="0" conaffinity="0"/>
      <site name="grip{i}"/>
    </body>""")
        anchor_sites = "\n".join(
            f'<site name="anchor{i}" pos="{a[0]:.6g} {a[1]:.6g} {a[2]:.6g}"/>' for i, a in enumerate(self.anchors)
        )
        body = f"""
    {mjcf.fixture_body(hole_meshes)}
    <body name="object" gravcomp="1">
      <freejoint name="object"/>
      {mjcf.mesh_geoms(obj_meshes, "object")}
      {anchor_sites}
    </body>
    {"".join(grippers)}"""
        joints = [f"g{i}{a}" for i in range(2) for a in "xyz"]
        actuators = mjcf.velocity_actuators(joints, [60] * 6, [60] * 6)
        equality = "\n".join(f'<connect site1="anchor{i}" site2="grip{i}" solref="0.01 1"/>' for i in range(2))
        extra = f"""  <equality>
{equality}
  </equality>
  <contact>
    <exclude body1="object" body2="gripper0"/>
    <exclude body1="object" body2="gripper1"/>
  </contact>"""
        return mjcf.scene(
            "rigid_insertion_two_agents",
            obj_assets + "\n" + hole_assets,
            body,
            actuators,
            floor=False,
            extra=extra,
            camera="0.5 -1.1 1.8",
        )

    def _task_reset(self, options: dict[str, Any]) -> None:
        rng = self.np_random
        scene_rot = yaw_matrix(rng.uniform(-math.pi, math.pi)) @ _pitch_matrix(rng.uniform(-math.pi / 2, 0.0))
        local_pos = np.array([rng.uniform(0.25, 0.75), rng.uniform(-0.75, 0.75), rng.uniform(0.5, 1.25)])
        obj_rot = scene_rot @ yaw_matrix(rng.uniform(-math.pi, math.pi))
        obj_pos = HOLE_CENTRE + scene_rot @ local_pos
        d = self.data
        self._set_goal(HOLE_CENTRE.copy(), scene_rot)
        d.qpos[:7] = [*obj_pos, *matrix_to_quat(obj_rot)]
        grip = self.anchors @ obj_rot.T + obj_pos
        d.qpos[7:10], d.qpos[10:13] = grip[0], grip[1]
        d.qvel[:] = 0.0

    def readout(self, qpos: np.ndarray, qvel: np.ndarray) -> BodyStates:
        # qpos = peg free joint (position, quaternion), then (x, y, z) of each gripper; qvel = peg linear
        # velocity (world frame), angular velocity (peg frame), then each gripper's linear velocity.
        b = len(qpos)
        rot = quat_matrices(qpos[:, 3:7])
        ang = rotate(rot, qvel[:, None, 3:6])[:, 0]
        grip_pos, grip_lin = qpos[:, 7:13].reshape(b, 2, 3), qvel[:, 6:12].reshape(b, 2, 3)
        return BodyStates(qpos[:, :3], rot, qvel[:, :3], ang, grip_pos, grip_lin, zeros((b, 2, 3), qvel))

    def action_to_ctrl(self, action: np.ndarray) -> np.ndarray:
        return action * self.linear_scale

    def goal_errors(self, s: BodyStates, goal_pos: np.ndarray, goal_rot: np.ndarray) -> dict[str, np.ndarray]:
        err = pose_errors(s, goal_pos, goal_rot)
        err["distance"] = norms(s.object_pos - goal_pos)  # 3-D: the hole's axis is tilted
        return err

    def reward_terms(
        self,
        s: BodyStates,
        errors: dict[str, np.ndarray],
        action: np.ndarray,
        prev_action: np.ndarray,
        t: np.ndarray,
    ) -> dict[str, np.ndarray]:
        kd = final_step_factor(t, self.horizon, self.final_steps, self.final_distance_weight)
        kt = final_step_factor(t, self.horizon, self.final_steps, self.final_orientation_weight)
        return {
            "distance": -self.distance_weight * kd * errors["distance"],
            "orientation": -self.distance_weight * 0.1 * kt * errors["orientation"],
        }

    def success(self, s: BodyStates, errors: dict[str, np.ndarray], goal_pos: np.ndarray) -> np.ndarray:
        return (errors["distance"] < 0.01) & (errors["orientation"] < math.radians(10))
