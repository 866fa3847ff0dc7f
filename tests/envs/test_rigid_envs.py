import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from geomanip import envs
from geomanip.envs.base import yaw_matrix
from geomanip.envs.scripted import scripted_action
from geomanip.envs.shapes import INSERTION_SHAPES, TRAIN_SHAPES, UNSEEN_SHAPES
from tests.envs.checks import run_env_checkers, seeded_rollout

IDS = list(envs.RIGID_TASKS)


def run_scripted(env, seed, options=None):
    env.reset(seed=seed, options=options)
    for _ in range(env.horizon):
        _, _, terminated, truncated, info = env.step(scripted_action(env))
        assert not terminated
    return info


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("shape", ["train", "unseen"])
def test_gymnasium_and_sb3_checkers(env_id, shape):
    env = gym.make(env_id, shape=shape).unwrapped
    run_env_checkers(env)


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_episode_and_different_seeds_differ(env_id):
    def rollout(seed):
        return seeded_rollout(env_id, seed, 15)

    a, ra = rollout(3)
    b, rb = rollout(3)
    c, _ = rollout(4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ra, rb)
    assert np.abs(a[0] - c[0]).max() > 1e-2


@pytest.mark.parametrize("env_id", IDS)
def test_graph_spec_matches_the_observation(env_id):
    env = gym.make(env_id).unwrapped
    obs, info = env.reset(seed=0)
    spec = env.graph_spec
    keys = [k for ks in spec.node_keys.values() for k in ks]
    assert sorted(keys) == sorted(obs)
    for node_type, ks in spec.node_keys.items():
        for k in ks:
            assert obs[k].shape == (spec.node_counts[node_type], 3)
    for (src, _, dst), ei in spec.edge_index.items():
        assert ei.dtype == np.int64 and ei.shape[0] == 2
        assert ei[0].max() < spec.node_counts[src] and ei[1].max() < spec.node_counts[dst]
    assert ("gripper", "agent", "gripper") in spec.edge_index or spec.node_counts["gripper"] == 1
    # Keypoints are rigidly attached: their pairwise distances match the outline's.
    kp = obs["object_pos"].astype(np.float64)
    local = env._local_keypoints
    np.testing.assert_allclose(
        np.linalg.norm(kp[:, None] - kp[None], axis=-1),
        np.linalg.norm(local[:, None] - local[None], axis=-1),
        atol=1e-5,
    )
    assert info["is_success"] is False


@pytest.mark.parametrize("env_id", IDS)
def test_reward_is_the_sum_of_its_terms_and_info_is_complete(env_id):
    env = gym.make(env_id)
    env.reset(seed=1)
    for _ in range(5):
        _, reward, _, _, info = env.step(env.action_space.sample())
        terms = [v for k, v in info.items() if k.startswith("reward_")]
        assert len(terms) >= 2 and reward == pytest.approx(sum(terms))
        assert {"is_success", "action_clipped", "unstable", "shape"} <= set(info)


@pytest.mark.parametrize("env_id", IDS)
def test_bad_actions(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    n = env.action_space.shape[0]
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(np.full(n, np.nan))
    with pytest.raises(ValueError, match=f"shape \\({n},\\)"):
        env.step(np.zeros(n + 1))
    _, _, _, _, info = env.step(np.full(n, 3.0))
    assert info["action_clipped"] is True
    assert env.data.ctrl[0] == pytest.approx(env.linear_scale)  # clipped to 1, then scaled
    _, _, _, _, info = env.step(np.zeros(n))
    assert info["action_clipped"] is False


@pytest.mark.parametrize("env_id", IDS)
def test_unstable_step_ends_the_episode_without_nan(env_id):
    env = gym.make(env_id).unwrapped
    obs, _ = env.reset(seed=0)
    env.data.qvel[:] = 1e9  # an exploding state
    obs2, reward, terminated, truncated, info = env.step(np.zeros(env.action_space.shape))
    assert terminated and info["unstable"] is True
    assert all(np.isfinite(v).all() for v in obs2.values()) and np.isfinite(reward)


def test_unknown_arguments_raise():
    with pytest.raises(ValueError, match="unknown shape"):
        gym.make("RigidInsertion-v0", shape="blob")
    with pytest.raises(ValueError, match="not available"):
        gym.make("RigidInsertion-v0", shape="E")
    env = gym.make("RigidPushing-v0", shape="star")
    with pytest.raises(ValueError, match="not among this environment's shapes"):
        env.reset(options={"shape": "plus"})
    with pytest.raises(RuntimeError, match="reset"):
        gym.make("RigidPushing-v0").unwrapped.step(np.zeros(2))


def test_train_shapes_are_drawn_per_episode():
    env = gym.make("RigidSliding-v0").unwrapped
    seen = {env.reset(seed=s)[1]["shape"] for s in range(40)}
    assert seen == set(TRAIN_SHAPES)


# --- Physics: scripted controllers -------------------------------------------------------------


@pytest.mark.parametrize("shape", INSERTION_SHAPES + UNSEEN_SHAPES)
def test_scripted_insertion_puts_every_peg_in_its_hole(shape):
    env = envs.RigidInsertionEnv(shape=shape)
    for seed in (0, 1):
        info = run_scripted(env, seed)
        assert info["is_success"], info
        # The peg's bottom is at the hole's bottom: really inside, 4 cm below the block's top.
        assert env.object_pose()[0][2] - env.goal_pos[2] < 0.005


@pytest.mark.parametrize("peg,hole", [("hexagon", "triangle"), ("plus", "T"), ("rectangle", "diamond")])
@pytest.mark.parametrize("cls", [envs.RigidInsertionEnv, envs.RigidInsertionTwoAgentsEnv])
def test_a_wrong_peg_does_not_go_in(cls, peg, hole):
    env = cls(shape=peg)
    info = run_scripted(env, 0, options={"hole_shape": hole})
    assert not info["is_success"]
    # It sits on the block: its bottom stays about a hole depth above the hole's bottom.
    depth = (env.goal_rot.T @ (env.object_pose()[0] - env.goal_pos))[2]
    assert depth > 0.035


@pytest.mark.parametrize("shape", INSERTION_SHAPES)
def test_scripted_two_agent_insertion(shape):
    env = envs.RigidInsertionTwoAgentsEnv(shape=shape)
    for seed in (0, 1):
        info = run_scripted(env, seed)
        assert info["is_success"], info


def test_scripted_sliding():
    env = envs.RigidSlidingEnv()
    results = [run_scripted(env, seed)["is_success"] for seed in range(10)]
    assert all(results)


def test_scripted_pushing_mostly_succeeds():
    # Pushing with one point contact is the hardest to script; the controller is simple on purpose.
    env = envs.RigidPushingEnv()
    results = [run_scripted(env, seed)["is_success"] for seed in range(10)]
    assert sum(results) >= 7, results


def test_idle_episode_does_not_succeed():
    for env_id in IDS:
        env = gym.make(env_id).unwrapped
        env.reset(seed=0)
        for _ in range(env.horizon):
            _, _, _, truncated, info = env.step(np.zeros(env.action_space.shape))
        assert truncated and not info["is_success"]


# --- World frame: rotating the scene about the vertical axis rotates the observation -----------


def _transform_state(env, R, t):
    """Rotate (about z) and translate the scene of a rigid task in place, velocities included."""
    d = env.data
    yaw = math.atan2(R[1, 0], R[0, 0])
    qz = np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)])

    def quat_mul(a, b):
        out = np.zeros(4)
        mujoco.mju_mulQuat(out, a, b)
        return out

    for i in range(env.model.nmocap):
        d.mocap_pos[i] = R @ d.mocap_pos[i] + t
        d.mocap_quat[i] = quat_mul(qz, d.mocap_quat[i])
    env.goal_pos, env.goal_rot = R @ env.goal_pos + t, R @ env.goal_rot
    for j in range(env.model.njnt):
        q, v = env.model.jnt_qposadr[j], env.model.jnt_dofadr[j]
        kind = env.model.jnt_type[j]
        if kind == mujoco.mjtJoint.mjJNT_FREE:
            d.qpos[q : q + 3] = R @ d.qpos[q : q + 3] + t
            d.qpos[q + 3 : q + 7] = quat_mul(qz, d.qpos[q + 3 : q + 7])
            d.qvel[v : v + 3] = R @ d.qvel[v : v + 3]  # angular velocity (body frame) is unchanged
    # Slide joints come in x, y(, z) groups along the world axes; hinges are yaw.
    names = [env.model.joint(j).name for j in range(env.model.njnt)]
    for j, name in enumerate(names):
        if name.endswith("x") and env.model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE:
            qa, va = env.model.jnt_qposadr[j], env.model.jnt_dofadr[j]
            z_follows = j + 2 < len(names) and env.model.jnt_type[j + 2] == mujoco.mjtJoint.mjJNT_SLIDE
            d.qpos[qa : qa + 2] = R[:2, :2] @ d.qpos[qa : qa + 2] + t[:2]
            d.qvel[va : va + 2] = R[:2, :2] @ d.qvel[va : va + 2]
            if z_follows and names[j + 2].endswith("z"):
                d.qpos[qa + 2] += t[2]
        elif env.model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
            d.qpos[env.model.jnt_qposadr[j]] += yaw
    mujoco.mj_forward(env.model, d)


@pytest.mark.parametrize("env_id", IDS)
def test_observation_is_in_the_world_frame(env_id):
    a = gym.make(env_id).unwrapped
    b = gym.make(env_id).unwrapped
    a.reset(seed=5)
    b.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(10):  # move away from rest so velocities are non-zero
        act = rng.uniform(-1, 1, a.action_space.shape)
        a.step(act)
        b.step(act)
    R = yaw_matrix(0.7)
    has_floor = mujoco.mj_name2id(a.model, mujoco.mjtObj.mjOBJ_GEOM, "floor") >= 0
    t = np.array([0.3, -0.2, 0.0 if has_floor else 0.1])  # a floor fixes the height
    _transform_state(b, R, t)
    b._task_update()
    oa, ob = a._task_observation(), b._task_observation()
    for k in oa:
        expected = oa[k] @ R.T + (t if k in ("object_pos", "object_target", "gripper_pos") else 0)
        np.testing.assert_allclose(ob[k], expected, atol=2e-5, err_msg=k)


def test_flat_wrapper_for_mlp_baselines():
    env = gym.wrappers.FlattenObservation(gym.make("RigidInsertionTwoAgents-v0"))
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == ((16 * 3 + 2 * 2) * 3,)
    assert np.isfinite(obs).all()


@pytest.mark.parametrize("env_id", IDS)
def test_rgb_rendering(env_id):
    env = gym.make(env_id, render_mode="rgb_array", width=96, height=64)
    env.reset(seed=0)
    try:
        frame = env.render()
    except Exception as exc:  # no usable OpenGL backend on this machine
        pytest.skip(f"offscreen rendering unavailable: {exc}")
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # a scene, not a blank image
    env.close()
