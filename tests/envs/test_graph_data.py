"""to_hetero_data: observations as PyTorch Geometric HeteroData and Batch, laid out as the graph spec says."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, HeteroData

from geomanip import envs

CASES = [(envs.TASK_IDS[bare], {}) for bare in (*envs.RIGID_TASKS, *envs.DEFORMABLE_TASKS)]
CASES.append(("geomanip/ClothHanging-v0", {"all_particles": True}))


def observations(env_id: str, kwargs: dict, count: int) -> tuple[list[dict], envs.GraphSpec]:
    """``count`` different observations of one environment (a reset, then random steps)."""
    env = gym.make(env_id, **kwargs)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    out = [obs]
    for _ in range(count - 1):
        out.append(env.step(env.action_space.sample())[0])
    return out, env.unwrapped.graph_spec


def assert_graph_matches(data: HeteroData, obs: dict, spec: envs.GraphSpec) -> None:
    assert set(data.node_types) == set(spec.node_counts)
    assert set(data.edge_types) == set(spec.edge_types)
    for node_type, keys in spec.node_keys.items():
        store = data[node_type]
        assert store.num_nodes == spec.node_counts[node_type]
        assert store.x.shape == (spec.node_counts[node_type], len(keys), 3)
        for j, key in enumerate(keys):
            np.testing.assert_array_equal(store.x[:, j].numpy(), obs[key])
            np.testing.assert_array_equal(store[key].numpy(), obs[key])
        np.testing.assert_array_equal(store.pos.numpy(), obs[f"{node_type}_pos"])
        if node_type in spec.node_scalars:
            np.testing.assert_array_equal(store.scalars.numpy(), spec.node_scalars[node_type].astype(np.float32))
        else:
            assert "scalars" not in store
    for edge_type, index in spec.edge_index.items():
        assert data[edge_type].edge_index.dtype == torch.long
        np.testing.assert_array_equal(data[edge_type].edge_index.numpy(), index)


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_one_observation_is_a_hetero_graph_of_the_spec(env_id, kwargs):
    (obs,), spec = observations(env_id, kwargs, 1)
    data = envs.to_hetero_data(obs, spec)
    assert isinstance(data, HeteroData) and not isinstance(data, Batch)
    assert data.x_dict["gripper"].dtype == torch.float32
    assert_graph_matches(data, obs, spec)
    data.validate(raise_on_error=True)
    # The graph owns its tensors: changing it leaves the observation as it was.
    before = {k: v.copy() for k, v in obs.items()}
    data["gripper"].pos += 1.0
    for k, v in obs.items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_a_batched_observation_is_a_batch_with_offset_edges(env_id, kwargs):
    obs_list, spec = observations(env_id, kwargs, 3)
    batched = {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0]}
    batch = envs.to_hetero_data(batched, spec)
    assert isinstance(batch, Batch) and batch.num_graphs == 3
    for b, obs in enumerate(obs_list):
        assert_graph_matches(batch.get_example(b), obs, spec)
    for node_type, n in spec.node_counts.items():
        np.testing.assert_array_equal(batch[node_type].batch.numpy(), np.repeat(np.arange(3), n))
    for (src, rel, dst), index in spec.edge_index.items():
        offsets = np.array([[spec.node_counts[src]], [spec.node_counts[dst]]])
        expected = np.concatenate([index + b * offsets for b in range(3)], axis=1)
        np.testing.assert_array_equal(batch[src, rel, dst].edge_index.numpy(), expected)


def test_a_vector_environments_observation_converts_as_a_batch():
    vec = gym.make_vec("geomanip/RigidInsertionTwoAgents-v0", num_envs=2)
    obs, _ = vec.reset(seed=0)
    batch = envs.to_hetero_data(obs, vec.graph_spec)
    # Two grippers per environment, each with a position and a velocity.
    assert batch.num_graphs == 2 and batch["gripper"].x.shape == (4, 2, 3)
    np.testing.assert_array_equal(batch["object"].pos.numpy(), obs["object_pos"].reshape(-1, 3))


def test_tensors_are_taken_as_they_are():
    (obs,), spec = observations("geomanip/RigidSliding-v0", {}, 1)
    data = envs.to_hetero_data({k: torch.from_numpy(v).double() for k, v in obs.items()}, spec)
    assert data["object"].x.dtype == torch.float64
    np.testing.assert_array_equal(data["object"].pos.numpy(), obs["object_pos"])


def test_mismatched_observations_are_refused():
    (obs,), spec = observations("geomanip/RigidPushing-v0", {}, 1)
    with pytest.raises(KeyError, match="object_vel"):
        envs.to_hetero_data({k: v for k, v in obs.items() if k != "object_vel"}, spec)
    with pytest.raises(ValueError, match="object_pos"):
        envs.to_hetero_data({**obs, "object_pos": obs["object_pos"][:5]}, spec)
    with pytest.raises(ValueError, match="batched"):
        envs.to_hetero_data({**obs, "object_pos": obs["object_pos"][None]}, spec)
    batched = {k: np.stack([v, v]) for k, v in obs.items()}
    with pytest.raises(ValueError, match="batch sizes"):
        envs.to_hetero_data({**batched, "gripper_vel": batched["gripper_vel"][:1]}, spec)
