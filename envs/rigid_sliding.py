"""Rigid sliding: a gripper fixed to an object slides it over the table to a goal pose."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from geomanip.envs import mjcf
from geomanip.envs.arrays import as_like
from geomanip.envs.base import yaw_matrix
from geomanip.envs.rigid import BodyStates, RigidTaskEnv, final_step_factor, norms, squared_change, yaw_matrices
from geomanip.envs.shapes import get_shape

LIFT = 0.001
"""Height (m) of the object's bottom above the table."""

# Masks taking the joints (x, y, yaw) to a position or linear velocity (x, y, 0) and an angular velocity
# (0, 0, yaw): elementwise products, exact and cheaper than indexing for such small arrays.
_PLANAR = np.array([1.0, 1.0, 0.0])
_SPIN = np.array([0.0, 0.0, 1.0])
_LIFT = np.array([0.0, 0.0, LIFT])


class RigidSlidingEnv(RigidTaskEnv):
    r"""Slide an object of one of the benchmark shapes to a goal position and yaw.

    The gripper is fixed to the object (one body with x and y slide joints and a yaw hinge). The height is
    locked 1 mm above the table and table friction is modelled as Coulomb friction on the joints (4 N on
    x and y, 0.2 N m on yaw, about mu m g for mu = 0.5): a height-locked body in contact with the floor gets
    an undetermined normal force in MuJoCo, and with it arbitrary friction. Velocity servos drive the joints.

    **Action** ``Box(-1, 1, (3,))``: planar velocity ``(vx, vy) * linear_scale`` (m/s) and yaw rate
    ``* yaw_scale`` (rad/s); clipped to ``[-1, 1]`` (``info["action_clipped"]``).

    **Observation**: see :class:`~geomanip.envs.rigid.RigidTaskEnv` (16 object keypoints, 1 gripper node with
    ``gripper_angvel``).

    **Reward** (``d``: distance to the goal position, ``theta``: yaw error, ``v``, ``omega``: object
    linear and angular speed, ``Δa``: action change):
    ``-w (d + 0.5 theta)`` (times ``final_weight`` in the last ``final_steps`` steps)
    ``- velocity_weight (|v| + |omega|) - action_rate_weight |Δa|^2``.

    **Start**: object x, y ~ U(-0.5, 0.5), yaw ~ U(-pi, pi); goal likewise, independently (our choice:
    the benchmark does not publish its sliding ranges).

    **Success**: position error below 2 cm and yaw error below 10 degrees.

    **Deviations**: as :class:`~geomanip.envs.rigid_insertion.RigidInsertionEnv`.
    """

    has_yaw = True

    def __init__(
        self,
        shape: str | tuple[str, ...] | list[str] = "train",
        horizon: int = 100,
        linear_scale: float = 1.0,
        yaw_scale: float = math.pi / 2,
        distance_weight: float = 0.8,
        final_weight: float = 5.0,
        final_steps: int = 2,
        velocity_weight: float = 0.1,
        action_rate_weight: float = 2e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(shape=shape, horizon=horizon, **kwargs)
        self.linear_scale, self.yaw_scale = linear_scale, yaw_scale
        self.distance_weight, self.final_weight, self.final_steps = distance_weight, final_weight, final_steps
        self.velocity_weight, self.action_rate_weight = velocity_weight, action_rate_weight
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)

    def _task_xml(self, variant: str) -> str:
        assets, meshes = mjcf.object_assets(get_shape(variant))
        g = mjcf.GRIPPER_HALF
        body = f"""
    {mjcf.ghost_body(meshes)}
    <body name="gripper0" pos="0 0 {LIFT}">
      <joint name="x" type="slide" axis="1 0 0" damping="1" frictionloss="4"/>
      <joint name="y" type="slide" axis="0 1 0" damping="1" frictionloss="4"/>
      <joint name="yaw" type="hinge" axis="0 0 1" damping="0.01" frictionloss="0.2"/>
      <geom class="gripper" pos="0 0 {mjcf.OBJECT_HEIGHT + g}"/>
      <body name="object">
        {mjcf.mesh_geoms(meshes, "object")}
      </body>
    </body>"""
        actuators = mjcf.velocity_actuators(["x", "y", "yaw"], [60, 60, 0.5], [60, 60, 3])
        return mjcf.scene("rigid_sliding", assets, body, actuators)

    def _task_reset(self, options: dict[str, Any]) -> None:
        rng = self.np_random
        goal_yaw = rng.uniform(-math.pi, math.pi)
        self._set_goal(np.array([*rng.uniform(-0.5, 0.5, size=2), 0.0]), yaw_matrix(goal_yaw))
        self.data.qpos[:] = [*rng.uniform(-0.5, 0.5, size=2), rng.uniform(-math.pi, math.pi)]
        self.data.qvel[:] = 0.0

    def readout(self, qpos: np.ndarray, qvel: np.ndarray) -> BodyStates:
        # qpos = (x, y, yaw) of the gripper-object body, whose frame is the object's; qvel their rates.
        planar = as_like(_PLANAR, qpos)
        pos = qpos * planar + as_like(_LIFT, qpos)
        lin, ang = qvel * planar, qvel * as_like(_SPIN, qvel)
        return BodyStates(pos, yaw_matrices(qpos[:, 2]), lin, ang, pos[:, None], lin[:, None], ang[:, None])

    def action_to_ctrl(self, action: np.ndarray) -> np.ndarray:
        return action * as_like(np.array([self.linear_scale, self.linear_scale, self.yaw_scale]), action)

    def reward_terms(
        self,
        s: BodyStates,
        errors: dict[str, np.ndarray],
        action: np.ndarray,
        prev_action: np.ndarray,
        t: np.ndarray,
    ) -> dict[str, np.ndarray]:
        k = final_step_factor(t, self.horizon, self.final_steps, self.final_weight)
        speed = norms(s.object_lin) + norms(s.object_ang)
        return {
            "distance": -self.distance_weight * k * errors["distance"],
            "orientation": -self.distance_weight * 0.5 * k * errors["orientation"],
            "velocity": -self.velocity_weight * speed,
            "action_rate": -self.action_rate_weight * squared_change(action, prev_action),
        }

    def success(self, s: BodyStates, errors: dict[str, np.ndarray], goal_pos: np.ndarray) -> np.ndarray:
        return (errors["distance"] < 0.02) & (errors["orientation"] < math.radians(10))
