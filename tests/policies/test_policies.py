import math
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from torch import nn

from geomanip import envs  # noqa: F401  (registers the environments)
from geomanip.kernels import lift_vectors, orientation_invariants, readout_scalars, readout_vectors
from geomanip.policies import GraphLayout, HEPiNetwork, TransformerNetwork, make_policy
from geomanip.policies.graph_obs import batch_edges, node_vectors
from geomanip.policies.hepi import edge_invariants
from geomanip.policies.sb3 import DeepSetsCritic, GraphActorCriticPolicy
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


def _permuted(layout, obs, node_type, perm):
    """The layout and observation with ``node_type``'s nodes reordered by ``perm`` (node ``perm[j]`` becomes node
    ``j``): vectors, edges and node scalars move together."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    edges = {}
    for (s, r, d), (src, dst) in layout.edges.items():
        src = [int(inv[i]) if s == node_type else i for i in src]
        dst = [int(inv[i]) if d == node_type else i for i in dst]
        edges[(s, r, d)] = (tuple(src), tuple(dst))
    scalars = dict(layout.node_scalars or {})
    if node_type in scalars:
        scalars[node_type] = tuple(scalars[node_type][int(i)] for i in perm)
    obs_p = {k: v[:, perm] if k.startswith(node_type) else v for k, v in obs.items()}
    return replace(layout, edges=edges, node_scalars=scalars or None), obs_p


def test_hepi_permutation_of_object_nodes():
    layout, obs = _obs("RigidInsertion-v0")
    torch.manual_seed(0)
    net = HEPiNetwork(layout, hidden=16, basis_dim=8).double()
    layout_p, obs_p = _permuted(layout, obs, "object", torch.randperm(16))
    permuted = net.__class__(layout_p, hidden=16, basis_dim=8).double()
    permuted.load_state_dict(net.state_dict())
    mean, value = net(obs)
    mean_p, value_p = permuted(obs_p)
    assert_close(mean_p, mean)
    assert_close(value_p, value)


@pytest.mark.parametrize("heterogeneous", [True, False])
def test_hepi_permutation_of_rope_links_that_carry_their_place(heterogeneous):
    # Rope links are not interchangeable: each has its place along the rope (layout.node_scalars). Permuting
    # the links together with their places (and edges) leaves HEPi's and EMPN's outputs unchanged; changing the
    # places alone changes them, so the network reads them.
    layout, obs = _obs("RopeShaping-v0")
    n = layout.node_counts["link"]
    torch.manual_seed(0)
    net = HEPiNetwork(layout, hidden=16, basis_dim=8, heterogeneous=heterogeneous).double()
    layout_p, obs_p = _permuted(layout, obs, "link", torch.randperm(n))
    assert layout_p.node_scalars["link"] != layout.node_scalars["link"]
    permuted = HEPiNetwork(layout_p, hidden=16, basis_dim=8, heterogeneous=heterogeneous).double()
    permuted.load_state_dict(net.state_dict())
    mean, value = net(obs)
    mean_p, value_p = permuted(obs_p)
    assert_close(mean_p, mean)
    assert_close(value_p, value)
    reversed_places = dict(layout.node_scalars, link=layout.node_scalars["link"][::-1])
    other = HEPiNetwork(
        replace(layout, node_scalars=reversed_places), hidden=16, basis_dim=8, heterogeneous=heterogeneous
    ).double()
    other.load_state_dict(net.state_dict())
    mean_r, value_r = other(obs)
    assert (mean_r - mean).abs().max() > 1e-6 * mean.abs().max()
    assert (value_r - value).abs().max() > 1e-6 * value.abs().max()


@pytest.mark.parametrize("cls", ["transformer", "deepsets"])
def test_the_baselines_read_the_node_scalars(cls):
    layout, obs = _obs("RopeClosing-v0")
    reversed_places = dict(layout.node_scalars, link=layout.node_scalars["link"][::-1])
    torch.manual_seed(0)
    make = (lambda lay: TransformerNetwork(lay, hidden=16)) if cls == "transformer" else DeepSetsCritic
    net = make(layout).double()
    other = make(replace(layout, node_scalars=reversed_places)).double()
    other.load_state_dict(net.state_dict())
    a, b = net.forward_critic(obs), other.forward_critic(obs)
    assert a.shape == b.shape and (a - b).abs().max() > 1e-6


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


def _reference_hepi(net, obs):
    # HEPi written directly on the batched edge list with the kernels' FiberConv and HeteroConv (gather and
    # scatter per edge), as the network was before its dense formulation; same modules, same weights.
    lay, merged = net.layout, ("node", "edge", "node")
    pos_a = obs[f"{lay.actuator}_pos"]
    B, device = pos_a.shape[0], pos_a.device
    grid = net.grid.to(device, pos_a.dtype)
    pos, f = {}, {}
    for t in lay.node_counts:
        p, v = node_vectors(obs, lay, t)
        pos[t] = p
        bias = net.type_embedding[t]
        if t in net.scalar_embed:  # node scalars: one bias per node, the same in every graph of the batch
            bias = (bias + net.scalar_embed[t](torch.tensor(lay.node_scalars[t], dtype=v.dtype))).repeat(B, 1)[:, None]
        f[t] = net.embed[t](lift_vectors(v, grid)) + bias
    edges = {
        et: batch_edges(idx, lay.node_counts[et[0]], lay.node_counts[et[2]], B, device) for et, idx in lay.edges.items()
    }
    order = list(lay.node_counts)
    if not net.heterogeneous:
        start = {t: sum(lay.node_counts[u] * B for u in order[: order.index(t)]) for t in order}
        shifted = [ei + torch.tensor([[start[s]], [start[d]]]) for (s, _, d), ei in edges.items()]
        edges = {merged: torch.cat(shifted, 1)}
        pos = {"node": torch.cat([pos[t] for t in order])}
        f = {"node": torch.cat([f[t] for t in order])}
    fiber = net.fiber_basis(orientation_invariants(grid))
    bases = {}
    for et, ei in edges.items():
        invariants = torch.asinh(edge_invariants(pos[et[0]], pos[et[2]], ei, grid) / net.length_scale)
        bases[et] = {"spatial_basis": net.spatial_basis["__".join(et)](invariants)}
    for k, (conv, update) in enumerate(zip(net.convs, net.updates, strict=True)):
        step = net.steps[k % len(net.steps)]
        nodes = {t: {"f": f[t]} for t in {et[0] for et in step} | {et[2] for et in step}}
        out = conv(nodes, {et: edges[et] for et in step}, {et: bases[et] for et in step}, fiber_basis=fiber)
        for t, u in out.items():
            f[t] = f[t] + update[t](u)
    if not net.heterogeneous:
        f = dict(zip(order, torch.split(f["node"], [lay.node_counts[t] * B for t in order]), strict=True))
    fa = f[lay.actuator]
    vec = 3.0 * readout_vectors(net.head_vector(fa), grid)[:, 0]
    scal = readout_scalars(net.head_scalar(fa))
    linear = (vec * scal[:, :1])[:, : lay.linear_dims]
    mean = (torch.cat([linear, scal[:, 1:]], 1) if lay.yaw else linear).reshape(B, -1)
    pooled = sum(net.critic_node(readout_scalars(f[t])).reshape(B, -1, net.hidden).sum(1) for t in f)
    return mean, net.critic_out(pooled)


@pytest.mark.parametrize("env_id", ["RigidInsertion-v0", "RigidInsertionTwoAgents-v0", "RopeClosing-v0"])
@pytest.mark.parametrize("heterogeneous", [True, False])
def test_dense_hepi_matches_the_edge_list_formulation(env_id, heterogeneous):
    # The network runs on dense per-type tensors (fixed graph, averaged by reshapes or a fixed matrix, the two
    # mixing steps as one matrix); it must compute what FiberConv and HeteroConv compute on the edge list.
    layout, obs = _obs(env_id, batch=4)
    torch.manual_seed(0)
    net = HEPiNetwork(layout, hidden=16, basis_dim=8, longitudes=4, layers=2, heterogeneous=heterogeneous).double()
    first = net(obs)  # calibrates its convolutions (through their own forward)
    for a, b in zip(first, _reference_hepi(net, obs), strict=True):
        assert_close(a, b, rtol=1e-12)
    mean, latent = net(obs)
    ref_mean, ref_latent = _reference_hepi(net, obs)
    assert_close(mean, ref_mean, rtol=1e-12)
    assert_close(latent, ref_latent, rtol=1e-12)
    assert_close(net.forward_actor(obs), ref_mean, rtol=1e-12)
    assert_close(net.forward_critic(obs), ref_latent, rtol=1e-12)
    # Gradients flow to the same parameters.
    (mean.sum() + latent.sum()).backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    net.zero_grad()
    sum(x.sum() for x in _reference_hepi(net, obs)).backward()
    ref_grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        assert_close(grads[name], ref_grads[name], rtol=1e-10)


def test_cached_weights_follow_parameter_updates():
    # Without gradients (rollouts, evaluation) the parameter-derived matrices are cached; an optimizer step or a
    # loaded state dict writes the parameters in place and must invalidate them.
    layout, obs = _obs("RigidInsertion-v0", batch=2)
    torch.manual_seed(0)
    net = HEPiNetwork(layout, hidden=8, basis_dim=8, longitudes=4).double()
    net(obs)  # calibrates
    with torch.no_grad():
        before = net.forward_actor(obs)
        assert_close(net.forward_actor(obs), before, rtol=0)
        for p in net.parameters():
            p.mul_(1.1)
        after = net.forward_actor(obs)
    assert (after - before).abs().max() > 1e-6
    assert_close(after, net.forward_actor(obs), rtol=1e-12)  # with gradients: recomputed from the parameters
    assert_close(after, _reference_hepi(net, obs)[0], rtol=1e-12)
    # The cache lists the parameters once: a parameter replaced by another object is seen after clear_cache.
    net.head_vector.weight = nn.Parameter(net.head_vector.weight.detach() * 2)
    net.clear_cache()
    with torch.no_grad():
        replaced = net.forward_actor(obs)
    assert (replaced - after).abs().max() > 1e-6
    assert_close(replaced, net.forward_actor(obs), rtol=1e-12)


def test_edge_features_are_differentiable_in_the_positions():
    # Observations that need a gradient take the out-of-place path; both paths compute the same network.
    layout, obs = _obs("RigidInsertion-v0", batch=2)
    torch.manual_seed(0)
    net = HEPiNetwork(layout, hidden=8, basis_dim=8, longitudes=4).double()
    mean = net.forward_actor(obs)
    pos = obs["object_pos"].clone().requires_grad_(True)
    mean_grad = net.forward_actor({**obs, "object_pos": pos})
    assert_close(mean_grad, mean, rtol=1e-12)
    mean_grad.sum().backward()
    assert pos.grad is not None and pos.grad.abs().max() > 0


def test_deepsets_critic_depends_on_the_state():
    layout, obs = _obs("RopeClosing-v0", batch=4)
    torch.manual_seed(0)
    critic = DeepSetsCritic(layout, hidden=32).double()
    latent = critic.forward_critic(obs)
    assert latent.shape == (4, 32)
    assert latent.std(0).max() > 1e-3


@pytest.mark.parametrize("critic", ["deepsets", "same", "shared"])
def test_critic_options(critic, tmp_path):
    env = gym.make("RigidInsertion-v0")
    policy, kwargs = make_policy("hepi", env, hidden=8, basis_dim=8, longitudes=4)
    model = PPO(policy, env, policy_kwargs={**kwargs, "critic": critic}, n_steps=32, batch_size=32, n_epochs=1)
    extractor = model.policy.mlp_extractor
    expected = {"deepsets": DeepSetsCritic, "same": HEPiNetwork, "shared": type(None)}[critic]
    assert isinstance(extractor.critic, expected)
    assert model.policy.optimizer.defaults["fused"]
    model.learn(32)
    obs, _ = env.reset(seed=1)
    action = model.predict(obs, deterministic=True)[0]
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.critic == critic
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], action)
    values = model.policy.predict_values(model.policy.obs_to_tensor(obs)[0])
    assert values.shape == (1, 1) and torch.isfinite(values).all()


def test_default_critics_and_the_former_option():
    env = gym.make("RigidInsertion-v0")
    layout = GraphLayout.from_env(env)
    build = dict(observation_space=env.observation_space, action_space=env.action_space, lr_schedule=lambda _: 3e-4)
    net = {"hidden": 8, "basis_dim": 8, "longitudes": 4}
    assert GraphActorCriticPolicy(**build, layout=layout, network_kwargs=net).critic == "same"
    assert GraphActorCriticPolicy(**build, network="transformer", layout=layout).critic == "same"
    # Checkpoints saved before the critic option carry shared_critic.
    assert GraphActorCriticPolicy(**build, layout=layout, network_kwargs=net, shared_critic=False).critic == "same"
    assert GraphActorCriticPolicy(**build, layout=layout, network_kwargs=net, shared_critic=True).critic == "shared"
    with pytest.raises(ValueError, match="contradicts"):
        GraphActorCriticPolicy(**build, layout=layout, critic="deepsets", shared_critic=True)
    with pytest.raises(ValueError, match="unknown critic"):
        GraphActorCriticPolicy(**build, layout=layout, critic="mlp")
