"""gym.make_vec of the rigid tasks: the batched environment behind Gymnasium's VectorEnv, same-step autoreset."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from geomanip import envs
from geomanip.envs.vector import GymRigidVectorEnv

IDS = [envs.TASK_IDS[bare] for bare in envs.RIGID_TASKS]


def make_pair(env_id: str, num_envs: int, **kwargs):
    """The vector entry point's environment and Gymnasium's SyncVectorEnv (same-step autoreset) of ``env_id``."""
    vec = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    ref = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **kwargs,
    )
    return vec, ref


def assert_same(value, ref, where="") -> None:
    """Equal to the last bit, recursively through dicts and object arrays, with equal dtypes and keys."""
    if isinstance(ref, tuple):
        assert isinstance(value, tuple) and len(value) == len(ref), where
        for i, (v, r) in enumerate(zip(value, ref, strict=True)):
            assert_same(v, r, f"{where}[{i}]")
    elif isinstance(ref, dict):
        assert isinstance(value, dict) and value.keys() == ref.keys(), (where, sorted(value), sorted(ref))
        for k in ref:
            assert_same(value[k], ref[k], f"{where}/{k}")
    elif isinstance(ref, np.ndarray) and ref.dtype == object:
        assert value.dtype == object and value.shape == ref.shape, where
        for i, (v, r) in enumerate(zip(value, ref, strict=True)):
            assert_same(v, r, f"{where}[{i}]")
    elif isinstance(ref, np.ndarray):
        assert isinstance(value, np.ndarray) and value.dtype == ref.dtype, (where, value, ref)
        np.testing.assert_array_equal(value, ref, err_msg=where)
    else:
        assert value == ref and type(value) is type(ref), (where, value, ref)


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_returns_the_batched_environment_with_batched_spaces(env_id):
    vec = gym.make_vec(env_id, num_envs=4)  # the vector entry point is the default mode
    assert isinstance(vec, GymRigidVectorEnv) and vec.num_envs == 4
    assert vec.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    single = gym.make(env_id)
    assert vec.single_observation_space == single.observation_space
    assert vec.single_action_space == single.action_space
    assert vec.action_space.shape == (4, *single.action_space.shape)
    assert vec.metadata["render_fps"] == single.metadata["render_fps"]
    obs, info = vec.reset(seed=3)
    assert obs in vec.observation_space
    for key, space in single.observation_space.spaces.items():
        assert obs[key].shape == (4, *space.shape) and obs[key].dtype == np.float32
    assert info["_is_success"].all() and info["shape"].shape == (4,)
    obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())
    assert obs in vec.observation_space
    assert reward.shape == terminated.shape == truncated.shape == (4,)
    assert reward.dtype == np.float64 and terminated.dtype == truncated.dtype == np.bool_
    assert vec.spec.id == env_id and vec.spec.kwargs["vectorization_mode"] == "vector_entry_point"
    vec.close()


@pytest.mark.parametrize("env_id", IDS)
def test_trajectories_equal_sync_vector_env_across_autoresets(env_id):
    # Short episodes with shapes drawn per episode: several same-step resets, some of them switching scenes.
    vec, ref = make_pair(env_id, 3, shape="train", horizon=5)
    assert_same(vec.reset(seed=11), ref.reset(seed=11))
    rng = np.random.default_rng(0)
    ends = 0
    for t in range(1, 13):
        # Out-of-range values too: clipping and info["action_clipped"] must agree as well.
        actions = rng.uniform(-1.3, 1.3, vec.action_space.shape).astype(np.float32)
        out, ref_out = vec.step(actions), ref.step(actions)
        assert_same(out, ref_out, f"step {t}")
        obs, _, terminated, truncated, info = out
        assert not terminated.any()
        np.testing.assert_array_equal(truncated, t % 5 == 0)
        if truncated.any():
            ends += 1
            # Same-step autoreset: the last observation and info of the episode in infos, a new episode's
            # first observation and reset info (no reward terms: every environment ended) returned.
            assert info["_final_obs"].all() and info["_final_info"].all()
            assert info["final_info"]["_reward_distance"].all() and "reward_distance" not in info
            for i in range(3):
                assert not np.array_equal(info["final_obs"][i]["object_pos"], obs["object_pos"][i])
        else:
            assert "final_obs" not in info
    assert ends == 2
    vec.close()
    ref.close()


def test_max_episode_steps_is_the_horizon_of_the_batched_environments():
    # make_vec hands max_episode_steps to the vector entry point: episodes end there and the reward's final-step
    # terms fall on their last steps, as for single environments made with horizon=max_episode_steps=4.
    vec = gym.make_vec("geomanip/RigidSliding-v0", num_envs=2, max_episode_steps=4)
    ref = gym.make_vec(
        "geomanip/RigidSliding-v0",
        num_envs=2,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        horizon=4,
        max_episode_steps=4,
    )
    assert vec.vec.task.horizon == 4
    assert_same(vec.reset(seed=0), ref.reset(seed=0))
    for t in range(1, 10):
        actions = np.full(vec.action_space.shape, 0.5, dtype=np.float32)
        out = vec.step(actions)
        assert_same(out, ref.step(actions), f"step {t}")
        np.testing.assert_array_equal(out[3], t % 4 == 0)


def test_a_time_limit_below_the_horizon_cuts_episodes_like_time_limit():
    # With an explicit horizon, max_episode_steps is a TimeLimit: episodes end after 3 steps, rewards as for 8.
    vec, ref = make_pair("geomanip/RigidInsertion-v0", 2, horizon=8, max_episode_steps=3)
    assert vec.vec.task.horizon == 8
    assert_same(vec.reset(seed=5), ref.reset(seed=5))
    rng = np.random.default_rng(1)
    for t in range(1, 8):
        actions = rng.uniform(-1, 1, vec.action_space.shape).astype(np.float32)
        out = vec.step(actions)
        assert_same(out, ref.step(actions), f"step {t}")
        np.testing.assert_array_equal(out[3], t % 3 == 0)


def test_reset_takes_seed_lists_options_and_a_reset_mask():
    vec, ref = make_pair("geomanip/RigidPushing-v0", 3, shape="train", horizon=4)
    out = vec.reset(seed=[4, 7, 9], options={"shape": "star"})
    assert_same(out, ref.reset(seed=[4, 7, 9], options={"shape": "star"}))
    assert list(out[1]["shape"]) == ["star"] * 3
    # None leaves an environment's generator as it is: the others repeat their seeded episodes.
    obs, _ = vec.reset(seed=[4, None, 9], options={"shape": "star"})
    for i in (0, 2):
        np.testing.assert_array_equal(obs["object_target"][i], out[0]["object_target"][i])
    assert not np.array_equal(obs["object_target"][1], out[0]["object_target"][1])
    vec.reset(seed=1)
    ref.reset(seed=1)
    actions = np.zeros(vec.action_space.shape, dtype=np.float32)
    stepped, *_ = vec.step(actions)
    ref.step(actions)
    kept = {k: v.copy() for k, v in stepped.items()}
    mask = np.array([False, True, False])
    out = vec.reset(seed=20, options={"reset_mask": mask})
    assert_same(out, ref.reset(seed=20, options={"reset_mask": mask}))
    assert list(out[1]["_is_success"]) == [False, True, False]
    # The arrays the last step returned are the caller's: a partial reset leaves them alone.
    assert_same(stepped, kept)
    # Environment 1 is now a step behind: episodes end at different steps, infos mix reset and step entries.
    for t in range(2, 8):
        out = vec.step(actions)
        assert_same(out, ref.step(actions), f"step {t}")
        np.testing.assert_array_equal(out[3], [t == 4, t == 5, t == 4])
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.zeros(3, dtype=bool)})
    with pytest.raises(ValueError, match="seeds"):
        vec.reset(seed=[1, 2])


def test_step_before_reset_is_an_error():
    vec = gym.make_vec("geomanip/RigidSliding-v0", num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros(vec.action_space.shape, dtype=np.float32))
