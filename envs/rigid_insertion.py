"""Rigid insertion: one gripper holds a peg and must insert it into the matching hole."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from geomanip.envs import mjcf
from geomanip.envs.arrays import as_like
from geomanip.envs.base import yaw_matrix
from geomanip.envs.rigid import BodyStates, RigidTaskEnv, final_step_factor, yaw_matrices
from geomanip.envs.shapes import INSERTION_SHAPES, UNSEEN_SHAPES, get_shape

_Z = np.array([0.0, 0.0, 1.0])


class RigidInsertionEnv(RigidTaskEnv):
    r"""Insert a peg of one of the benchmark shapes into its hole.

    The gripper holds the peg rigidly (peg and gripper are one body with three slide joints and a yaw
    hinge, velocity-servoed). The hole is a block with the peg's outline grown by ``HOLE_CLEARANCE`` (3 mm)
    on every side, 4 cm deep, closed by a plate; the peg is 5 cm tall.

    **Action** ``Box(-1, 1, (4,))``: gripper linear velocity ``(vx, vy, vz) * linear_scale`` (m/s) and yaw
    rate ``* yaw_scale`` (rad/s). Values outside ``[-1, 1]`` are clipped (``info["action_clipped"]``).

    **Observation**: see :class:`~geomanip.envs.rigid.RigidTaskEnv` (16 object keypoint nodes, 1 gripper node with
    ``gripper_angvel``). ``object_target`` is the keypoints of the peg fully inserted.

    **Reward** (``d``: planar distance of the peg frame to the hole frame, ``theta``: orientation error,
    ``dz``: height difference; ``d`` and ``theta`` weigh ``final_weight`` times more in the last
    ``final_steps`` steps): ``-w (d + 0.5 theta + 0.5 dz)`` with ``w = distance_weight``. ``info`` carries
    each term as ``reward_<name>``.

    **Start**: hole frame at the origin with yaw ~ U(-pi, pi); peg x, y ~ U(-1, 1), bottom 2 cm above
    the block plus U(0, 0.5) m, yaw ~ U(-pi, pi) (the benchmark's sampling).

    **Success** (``info["is_success"]``): the peg is in the hole: its bottom within 1 cm of the hole's
    bottom, planar error below 1 cm, orientation error below 10 degrees. A peg cannot get that low
    anywhere but inside its hole, so this is a geometric test of insertion.

    **Reset options**: ``shape`` picks the episode's shape among the environment's shapes;
    ``hole_shape`` gives the hole another shape than the peg (a wrong-peg check).

    **Episode end**: ``horizon`` steps (truncation), or an unstable simulation step (termination).

    **Deviations from the benchmark**: MuJoCo with dt 5 ms and 8 substeps (25 Hz, as the original's
    4 x 10 ms); the yaw-rate scale (pi/2 rad/s) is ours, the original's is not published.

    Args:
        shape: a shape name, ``"train"`` (the 8 insertion shapes, drawn per episode), ``"unseen"`` or a list.
        horizon: control steps per episode.
        linear_scale, yaw_scale: action scales.
        distance_weight, final_weight, final_steps: reward parameters.
        render_mode: ``"rgb_array"`` or ``"human"``.
    """

    has_yaw = True
    has_hole = True
    allowed_shapes = INSERTION_SHAPES + UNSEEN_SHAPES

    def __init__(
        self,
        shape: str | tuple[str, ...] | list[str] = "train",
        horizon: int = 100,
        linear_scale: float = 1.0,
        yaw_scale: float = math.pi / 2,
        distance_weight: float = 0.8,
        final_weight: float = 5.0,
        final_steps: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(shape=shape, horizon=horizon, **kwargs)
        self.linear_scale, self.yaw_scale = linear_scale, yaw_scale
        self.distance_weight, self.final_weight, self.final_steps = distance_weight, final_weight, final_steps
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)

    def _task_xml(self, variant: tuple[str, str]) -> str:
        obj_assets, obj_meshes = mjcf.object_assets(get_shape(variant[0]))
        hole_assets, hole_meshes = mjcf.fixture_assets(get_shape(variant[1]))
        g = mjcf.GRIPPER_HALF
        body = f"""
    {mjcf.fixture_body(hole_meshes)}
    <body name="gripper0" gravcomp="1">
      <joint name="x" type="slide" axis="1 0 0" damping="1"/>
      <joint name="y" type="slide" axis="0 1 0" damping="1"/>
      <joint name="z" type="slide" axis="0 0 1" damping="1"/>
      <joint name="yaw" type="hinge" axis="0 0 1" damping="0.01"/>
      <geom class="gripper" pos="0 0 {mjcf.OBJECT_HEIGHT + g}"/>
      <body name="object">
        {mjcf.mesh_geoms(obj_meshes, "object")}
      </body>
    </body>"""
        actuators = mjcf.velocity_actuators(["x", "y", "z", "yaw"], [60, 60, 60, 0.5], [60, 60, 60, 3])
        return mjcf.scene("rigid_insertion", obj_assets + "\n" + hole_assets, body, actuators)

    def _task_reset(self, options: dict[str, Any]) -> None:
        rng = self.np_random
        hole_yaw = rng.uniform(-math.pi, math.pi)
        self._set_goal(np.array([0.0, 0.0, mjcf.FIXTURE_BASE]), yaw_matrix(hole_yaw))
        xy = rng.uniform(-1.0, 1.0, size=2)
        z = mjcf.FIXTURE_BASE + mjcf.HOLE_DEPTH + 0.02 + rng.uniform(0.0, 0.5)
        self.data.qpos[:] = [xy[0], xy[1], z, rng.uniform(-math.pi, math.pi)]
        self.data.qvel[:] = 0.0

    def readout(self, qpos: np.ndarray, qvel: np.ndarray) -> BodyStates:
        # qpos = (x, y, z, yaw) of the gripper-peg body, whose frame is the peg's; qvel their rates.
        pos, lin, ang = qpos[:, :3], qvel[:, :3], qvel[:, 3:4] * as_like(_Z, qvel)
        return BodyStates(pos, yaw_matrices(qpos[:, 3]), lin, ang, pos[:, None], lin[:, None], ang[:, None])

    def action_to_ctrl(self, action: np.ndarray) -> np.ndarray:
        s = self.linear_scale
        return action * as_like(np.array([s, s, s, self.yaw_scale]), action)

    def reward_terms(
        self,
        s: BodyStates,
        errors: dict[str, np.ndarray],
        action: np.ndarray,
        prev_action: np.ndarray,
        t: np.ndarray,
    ) -> dict[str, np.ndarray]:
        k = final_step_factor(t, self.horizon, self.final_steps, self.final_weight)
        w = self.distance_weight
        return {
            "distance": -w * k * errors["distance"],
            "orientation": -w * 0.5 * k * errors["orientation"],
            "height": -w * 0.5 * errors["height"],
        }

    def success(self, s: BodyStates, errors: dict[str, np.ndarray], goal_pos: np.ndarray) -> np.ndarray:
        inserted = s.object_pos[:, 2] - goal_pos[:, 2] < 0.01
        return inserted & (errors["distance"] < 0.01) & (errors["orientation"] < math.radians(10))
