"""Rigid pushing: a free gripper pushes an object across the table to a goal position."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from geomanip.envs import mjcf
from geomanip.envs.arrays import as_like, namespace, zeros
from geomanip.envs.base import yaw_matrix
from geomanip.envs.rigid import BodyStates, RigidTaskEnv, final_step_factor, quat_matrices, rotate
from geomanip.envs.shapes import get_shape

OBJECT_MASS = 3.0

GRIPPER_Z = mjcf.OBJECT_HEIGHT / 2 + 0.002
"""Height (m) of the gripper's centre: 2 mm above the table, at the object's mid-height."""

_PLANAR = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # the gripper's (x, y) joints in the world frame
_GRIPPER_OFFSET = np.array([0.0, 0.0, GRIPPER_Z])


class RigidPushingEnv(RigidTaskEnv):
    r"""Push an object of one of the benchmark shapes to a goal pose with a free gripper.

    The object (mass 3 kg, free joint) rests on the table; the gripper is a cube moved in the plane by
    velocity servos on two slide joints, 2 mm above the table (it does not touch the floor, only the object).

    **Action** ``Box(-1, 1, (2,))``: gripper planar velocity ``* linear_scale`` (m/s); clipped to
    ``[-1, 1]`` (``info["action_clipped"]``).

    **Observation**: see :class:`~geomanip.envs.rigid.RigidTaskEnv` (16 object keypoints, 1 gripper node).

    **Reward** (``d``: planar distance of the object to the goal, ``theta``: orientation error):
    ``-w (d + 0.1 theta)`` (times ``final_weight`` in the last ``final_steps`` steps)
    ``- proximity_weight |p_object - p_gripper|``.

    **Start**: object at (-0.5, 0) + U(-0.5, 0.5)^2 with yaw ~ U(-pi, pi) (the benchmark's sampling); goal at
    (0.5, 0) + U(-0.25, 0.25)^2 with yaw ~ U(-pi, pi) (ours); gripper 0.3 m from the object in a random
    direction.

    **Success**: position error below 3 cm. The orientation error is reported (``error_orientation``) but
    not required: the benchmark weighs it 0.1 against position, and a single point pusher controls it
    only indirectly.
    """

    def __init__(
        self,
        shape: str | tuple[str, ...] | list[str] = "train",
        horizon: int = 100,
        linear_scale: float = 1.0,
        distance_weight: float = 0.8,
        final_weight: float = 10.0,
        final_steps: int = 5,
        proximity_weight: float = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(shape=shape, horizon=horizon, **kwargs)
        self.linear_scale = linear_scale
        self.distance_weight, self.final_weight, self.final_steps = distance_weight, final_weight, final_steps
        self.proximity_weight = proximity_weight
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def _task_xml(self, variant: str) -> str:
        shape = get_shape(variant)
        assets, meshes = mjcf.object_assets(shape)
        density = OBJECT_MASS / (shape.polygon.area * mjcf.OBJECT_HEIGHT)
        # contype/conaffinity: floor 1/1, object 3/3, gripper 2/2, so the gripper touches only the object.
        body = f"""
    {mjcf.ghost_body(meshes)}
    <body name="object">
      <freejoint name="object"/>
      {mjcf.mesh_geoms(meshes, "object", f'density="{density:.6g}" contype="3" conaffinity="3"')}
    </body>
    <body name="gripper0" pos="0 0 {GRIPPER_Z}" gravcomp="1">
      <joint name="x" type="slide" axis="1 0 0" damping="1"/>
      <joint name="y" type="slide" axis="0 1 0" damping="1"/>
      <geom class="gripper" contype="2" conaffinity="2"/>
    </body>"""
        actuators = mjcf.velocity_actuators(["x", "y"], [50, 50], [100, 100])
        return mjcf.scene("rigid_pushing", assets, body, actuators)

    def _task_reset(self, options: dict[str, Any]) -> None:
        rng = self.np_random
        goal_yaw = rng.uniform(-math.pi, math.pi)
        self._set_goal(np.array([0.5 + rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25), 0.0]), yaw_matrix(goal_yaw))
        obj_xy = np.array([-0.5, 0.0]) + rng.uniform(-0.5, 0.5, size=2)
        yaw = rng.uniform(-math.pi, math.pi)
        a = rng.uniform(-math.pi, math.pi)
        self.data.qpos[:7] = [*obj_xy, 0.0, math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        self.data.qpos[7:] = obj_xy + 0.3 * np.array([math.cos(a), math.sin(a)])
        self.data.qvel[:] = 0.0

    def readout(self, qpos: np.ndarray, qvel: np.ndarray) -> BodyStates:
        # qpos = object free joint (position, quaternion), gripper (x, y); qvel = object linear velocity
        # (world frame), angular velocity (object frame), gripper (vx, vy).
        b = len(qpos)
        rot = quat_matrices(qpos[:, 3:7])
        planar = as_like(_PLANAR, qpos)
        grip_pos = qpos[:, 7:9] @ planar + as_like(_GRIPPER_OFFSET, qpos)
        grip_lin = qvel[:, 6:8] @ planar
        ang = rotate(rot, qvel[:, None, 3:6])[:, 0]
        grip_ang = zeros((b, 1, 3), qvel)
        return BodyStates(qpos[:, :3], rot, qvel[:, :3], ang, grip_pos[:, None], grip_lin[:, None], grip_ang)

    def action_to_ctrl(self, action: np.ndarray) -> np.ndarray:
        return action * self.linear_scale

    def reward_terms(
        self,
        s: BodyStates,
        errors: dict[str, np.ndarray],
        action: np.ndarray,
        prev_action: np.ndarray,
        t: np.ndarray,
    ) -> dict[str, np.ndarray]:
        k = final_step_factor(t, self.horizon, self.final_steps, self.final_weight)
        gap = s.object_pos[:, :2] - s.gripper_pos[:, 0, :2]
        return {
            "distance": -self.distance_weight * k * errors["distance"],
            "orientation": -self.distance_weight * 0.1 * k * errors["orientation"],
            "proximity": -self.proximity_weight * namespace(gap).hypot(gap[:, 0], gap[:, 1]),
        }

    def success(self, s: BodyStates, errors: dict[str, np.ndarray], goal_pos: np.ndarray) -> np.ndarray:
        return errors["distance"] < 0.03
