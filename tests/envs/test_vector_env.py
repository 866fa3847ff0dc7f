import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch._dynamo  # noqa: F401
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from geomanip import envs
from geomanip.envs.base import STATE_SPEC, state_slices
from geomanip.envs.rigid import quat_matrices
from geomanip.envs.shapes import get_shape
from geomanip.envs.vector import RigidVectorEnv, make_vector_env

IDS = list(envs.RIGID_TASKS)


def assert_same_infos(infos, ref_infos):
    for info, ref in zip(infos, ref_infos, strict=True):
        assert info.keys() == ref.keys()
        for k, v in info.items():
            if k == "terminal_observation":
                for key in v:
                    np.testing.assert_array_equal(v[key], ref[k][key], err_msg=key)
            else:
                assert v == ref[k] and type(v) is type(ref[k]), (k, v, ref[k])


def assert_same_step(vec_out, ref_out):
    """Observations, rewards, dones and infos (terminal observations included) identical to the last bit."""
    (obs, rew, done, infos), (ref_obs, ref_rew, ref_done, ref_infos) = vec_out, ref_out
    assert obs.keys() == ref_obs.keys()
    for k in obs:
        np.testing.assert_array_equal(obs[k], ref_obs[k], err_msg=k)
        assert obs[k].dtype == ref_obs[k].dtype
    np.testing.assert_array_equal(rew, ref_rew)
    assert rew.dtype == ref_rew.dtype
    np.testing.assert_array_equal(done, ref_done)
    assert_same_infos(infos, ref_infos)


@pytest.mark.parametrize("env_id", IDS)
def test_vector_env_equals_single_envs_in_dummy_vec_env(env_id):
    # Short episodes with shapes drawn per episode: several automatic resets, some of them switching scenes.
    kwargs = {"shape": "train", "horizon": 6}
    vec = RigidVectorEnv(env_id, 3, seed=7, **kwargs)
    ref = DummyVecEnv([lambda: gym.make(env_id, **kwargs) for _ in range(3)])
    ref.seed(7)
    obs, ref_obs = vec.reset(), ref.reset()
    for k in obs:
        np.testing.assert_array_equal(obs[k], ref_obs[k])
    assert_same_infos(vec.reset_infos, ref.reset_infos)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(14):
        # Out-of-range values too: clipping and info["action_clipped"] must agree as well.
        actions = rng.uniform(-1.3, 1.3, (3, *vec.action_space.shape)).astype(np.float32)
        out = vec.step(actions)
        assert_same_step(out, ref.step(actions))
        assert_same_infos(vec.reset_infos, ref.reset_infos)
        ends += out[2].sum()
        if out[2].any():
            assert all(info["TimeLimit.truncated"] for info, d in zip(out[3], out[2], strict=True) if d)
    assert ends == 6  # every environment ended two episodes (steps 6 and 12)


def _random_batch(env, b, rng):
    """A batch of ``b`` states, goals and actions of ``env``'s task (generalised coordinates at random)."""
    nq, nv = env.model.nq, env.model.nv
    qpos, qvel = rng.normal(size=(b, nq)), rng.normal(size=(b, nv))
    goal_pos = rng.normal(size=(b, 3))
    goal_rot = quat_matrices(rng.normal(size=(b, 4)))
    shapes = rng.choice(env.shapes, size=b)
    kp = np.stack([np.column_stack([get_shape(s).keypoints, np.full(16, 0.025)]) for s in shapes])
    action = rng.uniform(-1, 1, (b, *env.action_space.shape))
    prev = rng.uniform(-1, 1, (b, *env.action_space.shape))
    t = rng.integers(1, env.horizon + 1, b)
    return qpos, qvel, goal_pos, goal_rot, kp, action, prev, t


def _task_logic(env, qpos, qvel, goal_pos, goal_rot, kp, action, prev, t):
    s = env.readout(qpos, qvel)
    errors = env.goal_errors(s, goal_pos, goal_rot)
    out = {f"error_{k}": v for k, v in errors.items()}
    out |= {f"reward_{k}": v for k, v in env.reward_terms(s, errors, action, prev, t).items()}
    out |= envs.rigid.keypoint_observation(s, goal_pos, goal_rot, kp, env.has_yaw)
    out["success"] = env.success(s, errors, goal_pos)
    out["ctrl"] = env.action_to_ctrl(action)
    return out


@pytest.mark.parametrize("env_id", IDS)
def test_batched_task_logic_does_not_depend_on_the_batch_size(env_id):
    # The single environment evaluates the task logic with a batch of one, the vector environment with many:
    # every row of a batch of 64 must equal the same row evaluated alone, to the last bit.
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    batch = _random_batch(env, 64, np.random.default_rng(1))
    together = _task_logic(env, *batch)
    for i in range(64):
        alone = _task_logic(env, *(x[i : i + 1] for x in batch))
        for k, v in together.items():
            np.testing.assert_array_equal(v[i], alone[k][0], err_msg=f"{k}, row {i}")


@pytest.mark.parametrize("env_id", IDS)
def test_readout_matches_mujoco_kinematics(env_id):
    # The task logic reads poses and velocities from qpos/qvel directly; MuJoCo's kinematics must agree.
    env = gym.make(env_id).unwrapped
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    for _ in range(5):
        env.step(rng.uniform(-1, 1, env.action_space.shape))
    m, d = env.model, env.data
    d.qvel[:] = rng.normal(size=m.nv)  # every joint moving, so that the comparison covers every term
    mujoco.mj_forward(m, d)
    # Through the state vector, as both environments read it.
    state = np.zeros((1, mujoco.mj_stateSize(m, STATE_SPEC)))
    mujoco.mj_getState(m, d, state[0], STATE_SPEC)
    qpos, qvel = state_slices(m)
    np.testing.assert_array_equal(state[0, qpos], d.qpos)
    np.testing.assert_array_equal(state[0, qvel], d.qvel)
    s = env.readout(state[:, qpos], state[:, qvel])
    vel = np.zeros(6)

    def velocity(body):  # world-frame [angular, linear] velocity of the body frame's origin (XBODY, not the CoM)
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, body, vel, 0)
        return vel[:3].copy(), vel[3:].copy()

    obj = m.body("object").id
    np.testing.assert_allclose(s.object_pos[0], d.xpos[obj], atol=1e-12)
    np.testing.assert_allclose(s.object_rot[0], d.xmat[obj].reshape(3, 3), atol=1e-12)
    ang, lin = velocity(obj)
    np.testing.assert_allclose(s.object_ang[0], ang, atol=1e-10)
    np.testing.assert_allclose(s.object_lin[0], lin, atol=1e-10)
    for g in range(env.num_grippers):
        body = m.body(f"gripper{g}").id
        np.testing.assert_allclose(s.gripper_pos[0, g], d.xpos[body], atol=1e-12)
        ang, lin = velocity(body)
        np.testing.assert_allclose(s.gripper_lin[0, g], lin, atol=1e-10)
        np.testing.assert_allclose(s.gripper_ang[0, g], ang, atol=1e-10)
    # Keypoint velocities are those of points fixed on the body: v + omega x (p - origin).
    env._task_update()
    obs = env._task_observation()
    ang, lin = velocity(obj)
    expected = lin + np.cross(ang, obs["object_pos"].astype(np.float64) - d.xpos[obj])
    np.testing.assert_allclose(obs["object_vel"], expected, atol=1e-5)


def test_an_unstable_environment_ends_alone_and_the_others_run_on():
    a, b = RigidVectorEnv("RigidInsertion-v0", 3, seed=0), RigidVectorEnv("RigidInsertion-v0", 3, seed=0)
    a.reset(), b.reset()
    actions = np.zeros((3, 4), dtype=np.float32)
    a.step(actions), b.step(actions)
    a.physics.datas[1].qvel[:] = 1e9  # an exploding state in environment 1 only
    (obs, rew, done, infos), (ref_obs, ref_rew, _, _) = a.step(actions), b.step(actions)
    assert done.tolist() == [False, True, False]
    assert infos[1]["unstable"] is True and infos[1]["TimeLimit.truncated"] is False
    assert all(np.isfinite(v).all() for v in infos[1]["terminal_observation"].values()) and np.isfinite(rew).all()
    for k in obs:  # the others are untouched
        np.testing.assert_array_equal(obs[k][[0, 2]], ref_obs[k][[0, 2]])
    np.testing.assert_array_equal(rew[[0, 2]], ref_rew[[0, 2]])
    assert a._t.tolist() == [2, 0, 2]  # environment 1 was reset


def test_bad_actions_and_arguments():
    vec = make_vector_env("RigidPushing-v0", 2, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros((2, 2)))
    vec.reset()
    with pytest.raises(ValueError, match="NaN or inf"):
        vec.step(np.array([[0.0, 0.0], [np.nan, 0.0]]))
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros((2, 3)))
    _, _, _, infos = vec.step(np.array([[0.0, 3.0], [0.5, -0.5]]))
    assert [i["action_clipped"] for i in infos] == [True, False]
    assert vec.physics.datas[0].ctrl[1] == pytest.approx(vec.task.linear_scale)  # clipped to 1, then scaled
    with pytest.raises(ValueError, match="num_envs"):
        RigidVectorEnv("RigidPushing-v0", 0)
    with pytest.raises(TypeError, match="not a rigid task"):
        RigidVectorEnv("CartPole-v1", 2)


def test_ppo_trains_on_the_vector_env():
    # (torch._dynamo is imported at the top, at collection: it loads Triton, whose LLVM crashes the process if
    # Mesa's, loaded by an earlier EGL rendering test, came first, as when tests/envs runs alone.)
    vec = VecMonitor(make_vector_env("RigidSliding-v0", 4, seed=0, horizon=8))
    model = PPO("MultiInputPolicy", vec, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    assert len(model.ep_info_buffer) == 8  # 4 environments x 2 episodes of 8 steps in 16 steps each
    assert all(info["l"] == 8 for info in model.ep_info_buffer)


def test_episode_end_infos_are_the_full_infos_of_finished_episodes_only():
    full = make_vector_env("RigidSliding-v0", 3, seed=4, horizon=3)
    lean = make_vector_env("RigidSliding-v0", 3, seed=4, horizon=3, infos="episode_end")
    full.reset(), lean.reset()
    rng = np.random.default_rng(0)
    for _ in range(4):
        actions = rng.uniform(-1, 1, (3, 3))
        (obs_f, rew_f, done_f, info_f), (obs_l, rew_l, done_l, info_l) = full.step(actions), lean.step(actions)
        np.testing.assert_array_equal(rew_f, rew_l)
        for k in obs_f:
            np.testing.assert_array_equal(obs_f[k], obs_l[k])
        assert done_f.tolist() == done_l.tolist()
        for f, lean_info, done in zip(info_f, info_l, done_f, strict=True):
            if not done:
                assert lean_info == {}
                continue
            assert set(lean_info) == set(f)
            for k in f:
                if k == "terminal_observation":
                    for key in f[k]:
                        np.testing.assert_array_equal(lean_info[k][key], f[k][key])
                else:
                    assert lean_info[k] == f[k], k
    with pytest.raises(ValueError, match="infos"):
        make_vector_env("RigidSliding-v0", 2, infos="never")
    with pytest.raises(ValueError, match="every step"):  # Gymnasium's interface needs them all
        gym.make_vec("geomanip/RigidSliding-v0", num_envs=2, vectorization_mode="vector_entry_point", infos="x")
