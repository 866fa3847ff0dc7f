import math
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from geomanip import envs  # noqa: F401  (registers the environments)
from geomanip.policies import GraphLayout, HEPiNetwork, TransformerNetwork, make_policy
from tests.geometry import assert_close


def _obs(env_id, batch=3, seed=0):
    env = gym.make(env_id)
    layout = GraphLayout.from_env(env)
    g = torch.Generator().manual_seed(seed)
    obs = {
        k: torch.randn(batch, *space.shape, generator=g, dtype=torch.float64)
        for k, space in env.observation_space.items()
    }
    return layout, obs


def _rotate(obs, R, t):
    # Positions (and rigid targets, which are keypoint positions) move with the translation; velocities and
    # directions only rotate.
    return {k: v @ R.T + (t if k.endswith(("_pos", "_target")) else 0) for k, v in obs.items()}


def _z_rotation(angle):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _rotate_action(mean, layout, R):
    per = mean.reshape(mean.shape[0], -1, layout.linear_dims + int(layout.yaw))
    lin = per[..., : layout.linear_dims]
    lin = lin @ R[: layout.linear_dims, : layout.linear_dims].T
    return torch.cat([lin, per[..., layout.linear_dims :]], -1).reshape(mean.shape)


ENV_IDS = [
    "RigidInsertion-v0",
    "RigidInsertionTwoAgents-v0",
    "RigidPushing-v0",
    "RigidSliding-v0",
    "RopeClosing-v0",
    "RopeShaping-v0",
    "ClothHanging-v0",
]


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("heterogeneous", [True, False])
def test_hepi_and_empn_are_equivariant_about_the_vertical_axis(env_id, heterogeneous):
    layout, obs = _obs(env_id)
    torch.manual_seed(0)
    net = HEPiNetwork(layout, hidden=16, basis_dim=8, longitudes=8, heterogeneous=heterogeneous).double()
    R, t = _z_rotation(2 * math.pi * 3 / 8), torch.tensor([0.4, -1.3, 0.7], dtype=torch.float64)
    mean, value = net(obs)
    mean2, value2 = net(_rotate(obs, R, t))
    assert mean.shape == (3, layout.action_dim)
    assert mean.abs().max() > 1e-6
    assert_close(mean2, _rotate_action(mean, layout, R))
    assert_close(value2, value)


def test_hepi_is_approximately_equivariant_off_the_grid():
    # Between grid rotations the ring grid is not mapped onto itself: the error is small, not zero.
    layout, obs = _obs("RigidInsertion-v0")
    torch.manual_seed(0)
    net = HEPiNetwork(layout, hidden=16, basis_dim=8).double()
    R = _z_rotation(0.3)
    mean, _ = net(obs)
    mean2, _ = net(_rotate(obs, R, torch.zeros(3, dtype=torch.float64)))
    err = (mean2 - _rotate_action(mean, layout, R)).abs().max() / mean.abs().max()
    assert err < 0.5


def test_hepi_permutation_of_object_nodes():
    layout, obs = _obs("RigidInsertion-v0")
    torch.manual_seed(0)
    net = HEPiNetwork(layout, hidden=16, basis_dim=8).double()
    perm = torch.randperm(16)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(16)
    edges = {}
    for (s, r, d), (src, dst) in layout.edges.items():
        src = [int(inv[i]) if s == "object" else i for i in src]
        dst = [int(inv[i]) if d == "object" else i for i in dst]
        edges[(s, r, d)] = (tuple(src), tuple(dst))
    permuted = net.__class__(replace(layout, edges=edges), hidden=16, basis_dim=8).double()
    permuted.load_state_dict(net.state_dict())
    obs_p = {k: v[:, perm] if k.startswith("object") else v for k, v in obs.items()}
    mean, value = net(obs)
    mean_p, value_p = permuted(obs_p)
    assert_close(mean_p, mean)
    assert_close(value_p, value)


def test_the_transformer_is_not_equivariant():
    layout, obs = _obs("RigidInsertion-v0")
    torch.manual_seed(0)
    net = TransformerNetwork(layout, hidden=16).double()
    R, t = _z_rotation(2 * math.pi * 3 / 8), torch.tensor([0.4, -1.3, 0.7], dtype=torch.float64)
    mean, value = net(obs)
    mean2, value2 = net(_rotate(obs, R, t))
    assert (mean2 - _rotate_action(mean, layout, R)).abs().max() > 1e-3
    assert (value2 - value).abs().max() > 1e-3


@pytest.mark.parametrize("env_id", ["RigidInsertion-v0", "RopeClosing-v0"])
@pytest.mark.parametrize("name", ["hepi", "empn", "transformer", "mlp"])
def test_short_ppo_run_and_save_load(name, env_id, tmp_path):
    env = gym.make(env_id)
    policy, kwargs = make_policy(name, env, **({"hidden": 16} if name != "mlp" else {}))
    model = PPO(policy, env, policy_kwargs=kwargs, n_steps=64, batch_size=32, n_epochs=1, device="cpu", seed=0)
    model.learn(128)
    assert model.num_timesteps == 128
    obs, _ = env.reset(seed=3)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == env.action_space.shape and np.isfinite(action).all()
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], action)
    if name == "mlp":
        return
    # The identity head keeps the network's mean as the Gaussian's mean; the std starts at 1.
    std = loaded.policy.log_std.exp().detach()
    assert std.shape == (env.action_space.shape[0],)


def test_make_policy_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown policy 'gnn'"):
        make_policy("gnn", gym.make("RigidInsertion-v0"))


def test_hepi_starts_with_state_dependent_critic_and_comparable_action_scales():
    # Regressions of two initialisation defects that kept PPO from learning (BENCHMARKS.md, RL section): the
    # direction-averaged features, and so the critic, were constant to 1e-6 across states; the translation
    # means were 100x smaller than the yaw rate's.
    layout, obs = _obs("RigidInsertion-v0")
    obs = {k: v.float() for k, v in obs.items()}
    torch.manual_seed(0)
    net = HEPiNetwork(layout, hidden=16, basis_dim=16, longitudes=4)
    mean, latent = net(obs)
    assert latent.std(0).max() > 1e-3 * latent.abs().max()
    linear, yaw = mean[:, :3], mean[:, 3]
    assert linear.abs().mean() > 0.1 * yaw.abs().mean()


@pytest.mark.parametrize("heterogeneous", [True, False])
def test_yaw_rate_can_tell_a_scene_from_its_mirror_image(heterogeneous):
    # The right turn for a mirrored scene is the opposite one. A network whose edge invariants are all
    # reflection-invariant gives a scene and its mirror image (through a vertical plane of the grid) exactly
    # the same yaw rate; HEPi's chiral edge invariant lets them differ, rotation equivariance kept (above).
    layout, obs = _obs("RigidSliding-v0")
    torch.manual_seed(0)
    net = HEPiNetwork(layout, hidden=16, basis_dim=8, longitudes=4, heterogeneous=heterogeneous).double()
    mirror = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))
    yaw = net(obs)[0][:, -1]
    yaw_mirrored = net({k: v @ mirror for k, v in obs.items()})[0][:, -1]
    assert (yaw_mirrored - yaw).abs().max() > 1e-2 * yaw.abs().max()
