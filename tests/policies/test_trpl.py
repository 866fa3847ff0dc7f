import csv

import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from geomanip import envs  # noqa: F401  (registers the environments)
from geomanip.policies import make_policy
from geomanip.policies.trpl import TRPL
from geomanip.policies.trust_region import MEASURES, PROJECTIONS, STD_PROJECTIONS, kl_parts

EPS_MEAN, EPS_COV = 0.03, 1e-3


def _gaussians(batch=512, dim=6, seed=0, dtype=torch.float64):
    """Old and new diagonal Gaussians whose differences span six orders of magnitude (inside to far outside)."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.logspace(-4, 1, batch, dtype=dtype)[:, None]
    old_mean = torch.randn(batch, dim, generator=g, dtype=dtype)
    old_std = torch.randn(batch, dim, generator=g, dtype=dtype).exp()
    mean = old_mean + scale * torch.randn(batch, dim, generator=g, dtype=dtype)
    std = old_std * (scale * torch.randn(batch, dim, generator=g, dtype=dtype)).exp()
    return mean, std, old_mean, old_std


@pytest.mark.parametrize("name", list(PROJECTIONS))
def test_projection_satisfies_the_bounds_and_leaves_policies_inside_unchanged(name):
    mean, std, old_mean, old_std = _gaussians()
    mean_part, cov_part = MEASURES[name](mean, std, old_mean, old_std)
    mean_inside, cov_inside = mean_part <= EPS_MEAN, cov_part <= EPS_COV
    assert 0.2 < mean_inside.double().mean() < 0.8 and 0.2 < cov_inside.double().mean() < 0.8

    proj_mean, proj_std = PROJECTIONS[name](mean, std, old_mean, old_std, EPS_MEAN, EPS_COV)
    new_mean_part, new_cov_part = MEASURES[name](proj_mean, proj_std, old_mean, old_std)
    assert (new_mean_part <= EPS_MEAN + 1e-4).all() and (new_cov_part <= EPS_COV + 1e-4).all()
    # Outside, the projection lands on the boundary (tightly, in float64); inside, nothing moves.
    torch.testing.assert_close(new_mean_part[~mean_inside], torch.full_like(new_mean_part[~mean_inside], EPS_MEAN))
    torch.testing.assert_close(new_cov_part[~cov_inside], torch.full_like(new_cov_part[~cov_inside], EPS_COV))
    assert (proj_mean[mean_inside] - mean[mean_inside]).abs().max() <= 1e-6
    assert (proj_std[cov_inside] - std[cov_inside]).abs().max() <= 1e-6
    assert torch.isfinite(proj_std).all() and (proj_std > 0).all()


def test_kl_projection_handles_standard_deviations_many_orders_of_magnitude_apart():
    g = torch.Generator().manual_seed(1)
    old_std = torch.randn(256, 4, generator=g, dtype=torch.float64).exp()
    std = old_std * torch.exp(20 * torch.randn(256, 4, generator=g, dtype=torch.float64))  # ratios up to ~1e+-30
    proj_std = STD_PROJECTIONS["kl"](std, old_std, EPS_COV)
    cov_part = kl_parts(old_std, proj_std, old_std, old_std)[1]
    torch.testing.assert_close(cov_part, torch.full_like(cov_part, EPS_COV))
    # float32 inputs: the multiplier is solved and applied in float64, the bound still holds.
    proj32 = STD_PROJECTIONS["kl"](std.float().clamp(1e-15, 1e15), old_std.float(), EPS_COV)
    assert torch.isfinite(proj32).all()
    assert (kl_parts(old_std, proj32.double(), old_std, old_std)[1] <= EPS_COV + 1e-4).all()


def test_kl_covariance_projection_is_the_constrained_minimiser():
    """KKT: grad_v KL(v~ || v) + eta grad_v KL(v~ || v_old) = 0 with one eta >= 0 per state."""
    _, std, _, old_std = _gaussians(seed=2)
    outside = kl_parts(std, std, std, old_std)[1] > EPS_COV
    var, old_var = std[outside].pow(2), old_std[outside].pow(2)
    proj_var = STD_PROJECTIONS["kl"](std[outside], old_std[outside], EPS_COV).pow(2)
    grad_objective = 1 / var - 1 / proj_var
    grad_constraint = 1 / old_var - 1 / proj_var
    eta = -(grad_objective * grad_constraint).sum(-1) / grad_constraint.pow(2).sum(-1)
    assert (eta >= 0).all()
    residual = grad_objective + eta[:, None] * grad_constraint
    assert (residual.norm(dim=-1) <= 1e-8 * grad_objective.norm(dim=-1)).all()


@pytest.mark.parametrize("name", list(PROJECTIONS))
def test_gradients_through_the_projection_are_exact_and_finite(name):
    # Rows outside both bounds, with standard deviations up to ~30x apart (finite differences lose resolution
    # further out, where the multiplier is tiny).
    mean, std, old_mean, old_std = (t[420:426, :3].clone() for t in _gaussians(seed=3))
    parts = MEASURES[name](mean, std, old_mean, old_std)
    assert (parts[0] > EPS_MEAN).all() and (parts[1] > EPS_COV).all()
    mean.requires_grad_()
    std.requires_grad_()
    old_std.requires_grad_()
    project = PROJECTIONS[name]
    assert torch.autograd.gradcheck(lambda m, s, o: project(m, s, old_mean, o, EPS_MEAN, EPS_COV), (mean, std, old_std))

    # float32, a batch of states inside and outside both bounds: finite gradients everywhere.
    mean, std, old_mean, old_std = (t.float() for t in _gaussians(seed=4))
    mean.requires_grad_()
    std.requires_grad_()
    proj_mean, proj_std = project(mean, std, old_mean, old_std, EPS_MEAN, EPS_COV)
    (proj_mean.sin().sum() + proj_std.log().sum()).backward()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(std.grad).all()
    assert mean.grad.abs().sum() > 0 and std.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(PROJECTIONS))
def test_state_independent_std_projects_like_the_broadcast_one(name):
    mean, _, old_mean, _ = _gaussians(batch=8, seed=5)
    std, old_std = torch.tensor([0.5, 1.0, 2.0, 0.9, 1.1, 3.0]), torch.ones(6)
    proj_mean, proj_std = PROJECTIONS[name](mean, std.double(), old_mean, old_std.double(), EPS_MEAN, EPS_COV)
    full_mean, full_std = PROJECTIONS[name](
        mean, std.double().expand_as(mean), old_mean, old_std.double().expand_as(mean), EPS_MEAN, EPS_COV
    )
    assert proj_std.shape == (6,)
    torch.testing.assert_close(proj_mean, full_mean)
    torch.testing.assert_close(proj_std.expand_as(full_std), full_std)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown projection 'tv'"):
        TRPL("MlpPolicy", "Pendulum-v1", projection="tv")
    with pytest.raises(ValueError, match="bounds must be positive"):
        TRPL("MlpPolicy", "Pendulum-v1", cov_bound=0.0)
    with pytest.raises(ValueError, match="bounds must be positive"):
        PROJECTIONS["kl"](torch.zeros(2), torch.ones(2), torch.ones(2), torch.ones(2), -1.0, 1.0)


def _read_progress(folder):
    with open(folder / "progress.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("projection", list(PROJECTIONS))
def test_trpl_trains_on_pendulum_within_the_trust_region_and_saves(tmp_path, projection):
    model = TRPL(
        "MlpPolicy",
        make_vec_env("Pendulum-v1", n_envs=2, seed=0),
        n_steps=64,
        batch_size=32,
        n_epochs=3,
        learning_rate=3e-3,
        vf_coef=1e-3,
        projection=projection,
        mean_bound=1e-3,
        cov_bound=1e-4,
        policy_kwargs=dict(net_arch=[16]),
        seed=0,
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    measure = MEASURES[projection]
    stds = []
    train = model.train

    def checked_train():
        # Old means are stored per sample in the buffer's flattened order: they match the policy at those samples.
        model._store_old_means()
        old_std = model.policy.log_std.detach().exp()
        with torch.no_grad():
            for data in model.rollout_buffer.get(50):
                dist = model.policy.get_distribution(data.observations).distribution
                torch.testing.assert_close(dist.mean, data.old_mean)
                log_prob = torch.distributions.Normal(data.old_mean, old_std).log_prob(data.actions).sum(-1)
                torch.testing.assert_close(log_prob, data.old_log_prob)
        train()
        stds.append((old_std.clone(), model.policy.log_std.detach().exp().clone()))

    model.train = checked_train
    model.learn(384)
    # The state-independent std is written back as its projection: within the covariance bound of the rollout's.
    cov_parts = torch.stack([measure(old, new, old, old)[1] for old, new in stds])
    assert (cov_parts <= 1e-4 * (1 + 1e-4)).all() and (cov_parts > 0.5e-4).any()

    assert len(stds) == 3
    rows = _read_progress(tmp_path)
    trained = [r for r in rows if r.get("train/kl")]
    assert len(trained) == 2  # SB3 dumps an update's scalars with the next rollout's
    for key in ("policy_loss", "trust_region_loss", "value_loss", "kl", "kl_network", "mean_projection_fraction"):
        assert all(np.isfinite(float(r[f"train/{key}"])) for r in trained), key
    if projection == "kl":  # KL(projected || old) <= mean bound + covariance bound at every state
        assert all(float(r["train/kl"]) <= 1.1e-3 * (1 + 1e-4) for r in trained)
    assert max(float(r["train/mean_projection_fraction"]) for r in trained) > 0

    model.save(tmp_path / "trpl.zip")
    loaded = TRPL.load(tmp_path / "trpl.zip", device="cpu")
    assert (loaded.projection, loaded.mean_bound, loaded.cov_bound) == (projection, 1e-3, 1e-4)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_trpl_trains_the_graph_policy_and_saves(tmp_path):
    torch.set_num_threads(1)
    venv = make_vec_env("RigidSliding-v0", n_envs=2, seed=0)
    policy, policy_kwargs = make_policy("hepi", venv.envs[0], hidden=8, longitudes=4, basis_dim=8)
    model = TRPL(
        policy,
        venv,
        n_steps=32,
        batch_size=32,
        n_epochs=2,
        learning_rate=1e-3,
        policy_kwargs=policy_kwargs,
        tensorboard_log=str(tmp_path / "tb"),
        seed=0,
    )
    model.learn(128)
    assert any((tmp_path / "tb").rglob("events.*"))
    model.save(tmp_path / "hepi.zip")
    loaded = TRPL.load(tmp_path / "hepi.zip", env=venv, device="cpu")
    obs = venv.reset()
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    loaded.learn(64, reset_num_timesteps=False)
    assert loaded.num_timesteps == 192
