"""Scripted controllers that solve the rigid tasks from privileged state (the simulator's true poses).

They show that each task is solvable within its horizon, give physical checks for the tests (a peg really
goes in, a wrong peg does not), and serve as demonstrators. Each takes the unwrapped environment and
returns an action in ``[-1, 1]``. Gains are in units of the action scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from geomanip.envs import RIGID_TASKS, mjcf
from geomanip.envs.base import yaw_matrix
from geomanip.envs.rigid import RigidTaskEnv, wrap_angle
from geomanip.envs.rigid_insertion import RigidInsertionEnv
from geomanip.envs.rigid_insertion_two_agents import RigidInsertionTwoAgentsEnv
from geomanip.envs.rigid_pushing import RigidPushingEnv
from geomanip.envs.rigid_sliding import RigidSlidingEnv
from geomanip.envs.scripted_deformable import scripted_deformable_controller
from geomanip.envs.shapes import SHAPE_RADIUS

__all__ = ["scripted_action", "scripted_controller"]


def _yaw(R: np.ndarray) -> float:
    return math.atan2(R[1, 0], R[0, 0])


def sliding_action(env: RigidSlidingEnv) -> np.ndarray:
    pos, rot = env.object_pose()
    yaw_error = wrap_angle(_yaw(env.goal_rot) - _yaw(rot))
    xy = np.clip((env.goal_pos[:2] - pos[:2]) * 6.0 / env.linear_scale, -1, 1)
    return np.array([*xy, np.clip(yaw_error * 3.0 / env.yaw_scale, -1, 1)])


def insertion_action(env: RigidInsertionEnv) -> np.ndarray:
    """Align above the hole at a safe height, then descend."""
    pos, rot = env.object_pose()
    xy_error = env.goal_pos[:2] - pos[:2]
    yaw_error = wrap_angle(_yaw(env.goal_rot) - _yaw(rot))
    aligned = np.linalg.norm(xy_error) < 0.002 and abs(yaw_error) < math.radians(1.5)
    z_target = env.goal_pos[2] if aligned else env.goal_pos[2] + mjcf.HOLE_DEPTH + 0.025
    a = np.zeros(4)
    a[:2] = xy_error * 8.0 / env.linear_scale
    a[2] = (z_target - pos[2]) * 8.0 / env.linear_scale
    a[3] = yaw_error * 3.0 / env.yaw_scale
    return np.clip(a, -1, 1)


def pushing_action(env: RigidPushingEnv) -> np.ndarray:
    """Get behind the object on the line to the goal (going around it if needed), then push along it."""
    pos, _ = env.object_pose()
    gripper = env.gripper_positions()[0, :2]
    to_goal = env.goal_pos[:2] - pos[:2]
    dist = np.linalg.norm(to_goal)
    u = to_goal / max(dist, 1e-9)
    n = np.array([-u[1], u[0]])
    rel = gripper - pos[:2]
    along, lateral = rel @ u, rel @ n
    reach = SHAPE_RADIUS + 1.5 * mjcf.GRIPPER_HALF + 0.01
    if along < -0.5 * SHAPE_RADIUS and abs(lateral) < 0.03:
        # Friction stalls a slow push: never command less than 0.4.
        speed = np.clip(dist * 4.0, 0.4, 1.0)
        return np.clip((u * speed - n * lateral * 10.0) / env.linear_scale, -1, 1)
    if along > -0.5 * SHAPE_RADIUS:
        side = 1.0 if lateral >= 0 else -1.0
        waypoint = pos[:2] + n * side * reach * 1.2 - u * reach * 0.5
    else:
        waypoint = pos[:2] - u * reach
    return np.clip((waypoint - gripper) * 10.0 / env.linear_scale, -1, 1)


def two_agent_insertion_action(env: RigidInsertionTwoAgentsEnv) -> np.ndarray:
    """Plan a small step of the peg pose toward the hole and move each gripper to its grasp point there."""
    pos, rot = env.object_pose()
    R_hole, p_hole = env.goal_rot, env.goal_pos
    p = R_hole.T @ (pos - p_hole)
    phi = _yaw(R_hole.T @ rot)
    lateral = np.linalg.norm(p[:2])
    above = mjcf.HOLE_DEPTH + 0.03
    if lateral > 0.004:
        # Travel sideways well above the block first, then straight along the hole axis.
        target = np.array([p[0], p[1], 0.15]) if p[2] < 0.12 else np.array([0.0, 0.0, max(p[2], 0.15)])
    elif abs(phi) > math.radians(1.5) or lateral > 0.002:
        target = np.array([0.0, 0.0, above])
    else:
        target = np.zeros(3)
    step = target - p
    limit = 0.8 * env.dt
    if np.linalg.norm(step) > limit:
        step *= limit / np.linalg.norm(step)
    p_next = p + step
    R_next = yaw_matrix(phi + float(np.clip(-phi, -env.dt, env.dt)))
    grasps = p_hole + (p_next + env.anchors @ R_next.T) @ R_hole.T
    return np.clip(((grasps - env.gripper_positions()) / env.dt / env.linear_scale).ravel(), -1, 1)


_CONTROLLERS = {
    RigidSlidingEnv: sliding_action,
    RigidPushingEnv: pushing_action,
    RigidInsertionEnv: insertion_action,
    RigidInsertionTwoAgentsEnv: two_agent_insertion_action,
}


def scripted_action(env: RigidTaskEnv) -> np.ndarray:
    """The scripted action for any rigid task (pass ``env.unwrapped``)."""
    for cls, controller in _CONTROLLERS.items():
        if isinstance(env, cls):
            return controller(env)
    raise TypeError(f"no scripted controller for {type(env).__name__}")


def scripted_controller(task: str) -> Callable[[Any], np.ndarray]:
    """A scripted controller of any task (a bare id): ``action = controller(env.unwrapped)``, in ``[-1, 1]``
    (:func:`scripted_action` for the rigid tasks, a new
    :func:`~geomanip.envs.scripted_deformable.scripted_deformable_controller` for the others). Use one per
    environment: rope shaping's remembers where its episode is."""
    return scripted_action if task in RIGID_TASKS else scripted_deformable_controller(task)
