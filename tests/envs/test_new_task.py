"""A new task written from the documented hooks of MujocoGraphEnv alone: the base does the rest."""

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from geomanip.envs.base import GraphSpec, MujocoGraphEnv, full_edges, vec_box
from tests.envs.checks import run_env_checkers

POINT_MASS_XML = """
<mujoco model="point_mass">
  <option timestep="0.01"/>
  <worldbody>
    <body name="goal" mocap="true"><geom type="sphere" size="0.05" contype="0" conaffinity="0"/></body>
    <body name="mass">
      <joint name="x" type="slide" axis="1 0 0" damping="1"/>
      <joint name="y" type="slide" axis="0 1 0" damping="1"/>
      <geom type="sphere" size="0.05" mass="1"/>
    </body>
  </worldbody>
  <actuator><motor joint="x"/><motor joint="y"/></actuator>
</mujoco>
"""


class PointMassEnv(MujocoGraphEnv):
    r"""Push a point mass in the plane to a goal.

    **Action** ``Box(-1, 1, (2,))``: force on the mass along x and y (N).

    **Observation**: ``mass_pos``, ``mass_vel`` and ``goal_pos``, each ``[1, 3]``; one edge type,
    ``(goal, task, mass)``.

    **Reward**: ``distance`` ``-|p - g|`` and ``effort`` ``-0.01 |a|^2``.

    **Start**: mass and goal at ``U(-1, 1)^2``.

    **Success**: the mass within 5 cm of the goal.

    **Episode end**: ``horizon`` steps (truncation), or an unstable physics step (termination).
    """

    def __init__(self, horizon: int = 50, **kwargs: Any) -> None:
        super().__init__(frame_skip=4, horizon=horizon, **kwargs)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        keys = {"mass": ("mass_pos", "mass_vel"), "goal": ("goal_pos",)}
        self.graph_spec = GraphSpec({"mass": 1, "goal": 1}, keys, {("goal", "task", "mass"): full_edges(1, 1)})
        self.observation_space = gym.spaces.Dict({k: vec_box(1) for ks in keys.values() for k in ks})
        self.goal = np.zeros(3)

    def _task_xml(self, variant: Any) -> str:
        return POINT_MASS_XML

    def _task_reset(self, options: dict[str, Any]) -> None:
        self.goal = np.array([*self.np_random.uniform(-1, 1, 2), 0.0])
        self.data.mocap_pos[0] = self.goal
        self.data.qpos[:] = self.np_random.uniform(-1, 1, 2)

    def _task_ctrl(self, action: np.ndarray) -> np.ndarray:
        return action

    def _task_observation(self) -> dict[str, np.ndarray]:
        return {
            "mass_pos": np.array([[*self.data.qpos, 0.0]], dtype=np.float32),
            "mass_vel": np.array([[*self.data.qvel, 0.0]], dtype=np.float32),
            "goal_pos": self.goal[None].astype(np.float32),
        }

    def _task_errors(self) -> dict[str, float]:
        return {"distance": float(np.linalg.norm(self.data.qpos - self.goal[:2]))}

    def _task_reward_terms(self, action: np.ndarray, prev_action: np.ndarray) -> dict[str, float]:
        return {"distance": -self._task_errors()["distance"], "effort": -0.01 * float(action @ action)}

    def _task_success(self) -> bool:
        return self._task_errors()["distance"] < 0.05


def test_a_new_task_passes_the_gymnasium_and_sb3_checkers():
    run_env_checkers(PointMassEnv())


def test_the_base_sums_the_reward_terms_and_builds_info():
    env = PointMassEnv()
    _, info = env.reset(seed=0)
    assert info == {"is_success": False, "error_distance": env.errors()["distance"]}
    rng = np.random.default_rng(0)
    for action in [np.array([2.0, 0.0]), *rng.uniform(-1, 1, (5, 2))]:
        _, reward, terminated, truncated, info = env.step(action)
        assert set(info) == {
            "is_success",
            "error_distance",
            "reward_distance",
            "reward_effort",
            "action_clipped",
            "unstable",
        }
        assert reward == info["reward_distance"] + info["reward_effort"]
        assert not terminated and not truncated and info["unstable"] is False
        assert info["reward_distance"] == -info["error_distance"]
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([2.0, 0.0]))
    assert info["action_clipped"] is True and info["reward_effort"] == -0.01  # the clipped action is rewarded
    np.testing.assert_array_equal(env.data.ctrl, [1.0, 0.0])


def test_an_unstable_step_ends_the_episode_and_is_undone():
    env = PointMassEnv()
    obs, _ = env.reset(seed=1)
    env.data.qvel[:] = 1e9  # an exploding state
    after, reward, terminated, truncated, info = env.step(np.zeros(2))
    assert terminated and not truncated and info["unstable"] is True
    assert np.isfinite(reward) and all(np.isfinite(v).all() for v in after.values())
    for k in obs:  # back to the state before the step
        np.testing.assert_array_equal(after[k], obs[k], err_msg=k)


def test_the_horizon_truncates():
    env = PointMassEnv(horizon=3)
    env.reset(seed=0)
    assert [env.step(np.zeros(2))[3] for _ in range(3)] == [False, False, True]


def test_a_task_without_every_required_hook_cannot_be_built():
    class NoSuccess(PointMassEnv):
        _task_success = MujocoGraphEnv._task_success

    with pytest.raises(TypeError, match="_task_success"):
        NoSuccess()
