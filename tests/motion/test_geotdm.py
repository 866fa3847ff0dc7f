import json
import math
from dataclasses import replace

import pytest
import torch

from geomanip.motion import GeoTDM
from geomanip.motion.geotdm import DiffusionSchedule, remove_com
from geomanip.motion.metrics import sample_average_sums
from tests.geometry import assert_close, random_orthogonal


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: a second OpenMP thread costs more than it gives (20x on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(cond_frames=4, future_frames=3, dim=3, **kw):
    """A small float64 model whose zero-initialised coordinate weights are randomised, so every path counts."""
    torch.manual_seed(0)
    model = GeoTDM(cond_frames, future_frames, hidden=16, layers=2, diffusion_steps=40, dim=dim, **kw).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "phi" in name or "eps_scale" in name:
                p.normal_(0, 0.1)  # larger random weights make untrained 40-step sampling diverge
    return model


def _denoise_inputs(model, B=2, N=5, D=3):
    cond = torch.randn(B, N, model.cond_frames, D, dtype=torch.float64) if model.conditional else None
    x = torch.randn(B, N, model.future_frames, D, dtype=torch.float64)
    k = torch.tensor([3, 30])[:B]
    mask = torch.ones(B, N, dtype=torch.bool)
    return cond, x, k, mask


@pytest.mark.parametrize("dim,reflect", [(3, False), (3, True), (2, False)])
def test_prior_and_denoiser_are_e_n_equivariant(dim, reflect):
    model = _model(dim=dim)
    cond, x, k, mask = _denoise_inputs(model, D=dim)
    Q, t = random_orthogonal(dim, reflect), torch.randn(dim, dtype=torch.float64) * 3
    prior = model.geometric_prior(cond, 3)
    assert_close(model.geometric_prior(cond @ Q.T + t, 3), prior @ Q.T + t)
    eps = model.denoise(x, k, prior, cond, mask)
    assert eps.abs().max() > 1e-3  # not trivially zero
    # The noise rotates with the coordinates and ignores translations.
    assert_close(model.denoise(x @ Q.T + t, k, prior @ Q.T + t, cond @ Q.T + t, mask), eps @ Q.T)


def test_unconditional_denoiser_is_equivariant_and_centred():
    model = _model(cond_frames=0, future_frames=6)
    _, x, k, mask = _denoise_inputs(model)
    x = remove_com(x)
    Q = random_orthogonal(3)
    zero = torch.zeros_like(x)
    eps = model.denoise(x, k, zero, None, mask)
    assert_close(eps.mean((1, 2)), torch.zeros(2, 3, dtype=torch.float64))
    assert_close(model.denoise(x @ Q.T, k, zero, None, mask), eps @ Q.T)


def test_permutation_equivariance_and_padding_does_not_leak():
    model = _model()
    cond, x, k, mask = _denoise_inputs(model)
    perm = torch.randperm(5)
    prior = model.geometric_prior(cond, 3)
    assert_close(model.geometric_prior(cond[:, perm], 3), prior[:, perm])
    eps = model.denoise(x, k, prior, cond, mask)
    assert_close(model.denoise(x[:, perm], k, prior[:, perm], cond[:, perm], mask), eps[:, perm])
    # Padded agents (mask False) change nothing for the valid ones.
    mask = torch.tensor([[1, 1, 1, 0, 0]] * 2, dtype=torch.bool)
    garbage = cond.clone()
    garbage[:, 3:] = 1e3
    prior_small = model.geometric_prior(cond[:, :3], 3)
    assert_close(model.geometric_prior(garbage, 3, mask)[:, :3], prior_small)
    eps_small = model.denoise(x[:, :3], k, prior_small, cond[:, :3], mask[:, :3])
    assert_close(model.denoise(x, k, model.geometric_prior(garbage, 3, mask), garbage, mask)[:, :3], eps_small)


def test_prior_weights_sum_to_one():
    """All agents resting at one point: nothing moves them, so the prior is that point (weights sum to 1)."""
    model = _model()
    point = torch.randn(2, 1, 1, 3, dtype=torch.float64) * 5
    prior = model.geometric_prior(point.expand(2, 5, 4, 3), 3)
    assert_close(prior, point.expand(2, 5, 3, 3))


def _variant(prediction="x0", velocity_prior=True):
    """A small model with the options of issue #17; the prior head (zero with velocity_prior) is randomised too."""
    model = _model(prediction=prediction, velocity_prior=velocity_prior)
    with torch.no_grad():
        for p in model.prior_out.parameters():
            p.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("prediction,velocity_prior", [("x0", False), ("eps", True), ("x0", True)])
@pytest.mark.parametrize("reflect", [False, True])
def test_x0_prediction_and_velocity_prior_are_equivariant(prediction, velocity_prior, reflect):
    model = _variant(prediction, velocity_prior)
    cond, x, k, mask = _denoise_inputs(model)
    Q, t = random_orthogonal(3, reflect), torch.randn(3, dtype=torch.float64) * 3
    prior = model.geometric_prior(cond, 3)
    assert_close(model.geometric_prior(cond @ Q.T + t, 3), prior @ Q.T + t)
    eps = model.denoise(x, k, prior, cond, mask)
    assert eps.abs().max() > 1e-3
    assert_close(model.denoise(x @ Q.T + t, k, prior @ Q.T + t, cond @ Q.T + t, mask), eps @ Q.T)
    perm = torch.randperm(5)
    assert_close(model.denoise(x[:, perm], k, prior[:, perm], cond[:, perm], mask), eps[:, perm])
    noise = torch.randn(2, 5, 2, 3, 3, dtype=torch.float64)
    out = model.sample(cond, num_samples=2, steps=4, noise=noise, eta=0.0)
    assert_close(model.sample(cond @ Q.T + t, num_samples=2, steps=4, noise=noise @ Q.T, eta=0.0), out @ Q.T + t)


def test_velocity_prior_starts_at_constant_velocity_and_keeps_rest():
    model = _model(velocity_prior=True)  # prior head as initialised: zero
    cond = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    v = cond[:, :, -1:] - cond[:, :, -2:-1]
    expected = cond[:, :, -1:] + v * torch.arange(1.0, 4.0, dtype=torch.float64).view(1, 1, -1, 1)
    assert_close(model.geometric_prior(cond, 3), expected)
    # With a trained (here random) correction, agents at rest stay at rest: the correction's weights sum to 0.
    model = _variant("eps", True)
    point = torch.randn(2, 1, 1, 3, dtype=torch.float64) * 5
    assert_close(model.geometric_prior(point.expand(2, 5, 4, 3), 3), point.expand(2, 5, 3, 3))


def test_x0_prediction_one_step_sample_is_the_predicted_clean_residual():
    """One DDIM update to the end returns ref + y^_0: the derived noise inverts exactly."""
    model = _variant("x0", True)
    cond = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    noise = torch.randn(2, 5, 1, 3, 3, dtype=torch.float64)
    out = model.sample(cond, num_samples=1, steps=1, noise=noise, eta=0.0)
    ref = model.geometric_prior(cond, 3)
    k = torch.full((2,), model.schedule.num_steps - 1)
    mask = torch.ones(2, 5, dtype=torch.bool)
    y0 = model._network(ref + noise[:, :, 0], k, ref, cond, mask)
    assert_close(out[:, :, 0], ref + y0)


def test_motion_config_builds_the_options():
    from geomanip.motion.training import MotionConfig, build_model

    model = build_model(MotionConfig(model="geotdm", prediction="x0", velocity_prior=True).resolved())
    assert model.prediction == "x0" and model.velocity_prior
    default = build_model(MotionConfig(model="geotdm").resolved())  # the paper's, as old checkpoints were saved
    assert default.prediction == "eps" and not default.velocity_prior
    with pytest.raises(ValueError, match="--velocity-prior needs --model geotdm, conditional"):
        MotionConfig(model="geotdm", unconditional=True, velocity_prior=True).resolved()


def test_bad_options_raise():
    with pytest.raises(ValueError, match="prediction must be"):
        GeoTDM(prediction="v")
    with pytest.raises(ValueError, match="velocity_prior needs cond_frames >= 2"):
        GeoTDM(cond_frames=1, velocity_prior=True)


@pytest.mark.parametrize("steps,eta", [(40, 1.0), (5, 0.0), (5, 0.5)])
def test_sample_equivariance_with_explicit_noise(steps, eta):
    model = _model()
    cond = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    K = 3
    draws = steps if eta > 0 else 1
    noise = torch.randn(draws, 2, 5, K, 3, 3, dtype=torch.float64)
    noise = noise[0] if eta == 0 else noise
    out = model.sample(cond, num_samples=K, steps=steps, noise=noise, eta=eta)
    assert out.shape == (2, 5, K, 3, 3)
    Q, t = random_orthogonal(3, reflect=True), torch.randn(3, dtype=torch.float64) * 2
    moved = model.sample(cond @ Q.T + t, num_samples=K, steps=steps, noise=noise @ Q.T, eta=eta)
    assert_close(moved, out @ Q.T + t)
    # The K samples differ (the noise matters), and the same noise gives the same samples.
    assert (out[:, :, 0] - out[:, :, 1]).abs().max() > 1e-6
    assert_close(model.sample(cond, num_samples=K, steps=steps, noise=noise, eta=eta), out)


def test_sampling_with_a_generator_is_reproducible_and_default_is_ddpm():
    model = _model()
    cond = torch.randn(1, 3, 4, 3, dtype=torch.float64)
    a = model.sample(cond, num_samples=2, noise=torch.Generator().manual_seed(1))
    b = model.sample(cond, num_samples=2, noise=torch.Generator().manual_seed(1))
    assert_close(a, b)
    # Default: all 40 steps with eta = 1, which needs one noise draw per step.
    with pytest.raises(ValueError, match=r"\[40, 1, 3, 2, 3, 3\]"):
        model.sample(cond, num_samples=2, noise=torch.zeros(1, 3, 2, 3, 3, dtype=torch.float64))


def test_unconditional_samples_have_zero_centre_of_mass():
    model = _model(cond_frames=0, future_frames=6)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    out = model.sample(n_agents=4, batch_size=2, num_samples=3, steps=40, mask=mask)
    assert out.shape == (2, 4, 3, 6, 3)
    m = mask[:, :, None, None, None].double()
    com = (out * m).sum((1, 3)) / (mask.sum(1).double() * 6).view(2, 1, 1)  # [B, K, D]
    assert_close(com, torch.zeros_like(com), rtol=1e-12)
    assert out.abs().max() > 0.1 and (out[1, 2:] == 0).all()
    Q = random_orthogonal(3)
    noise = torch.randn(2, 4, 3, 6, 3, dtype=torch.float64)
    a = model.sample(n_agents=4, batch_size=2, num_samples=3, steps=4, noise=noise, eta=0.0)
    assert_close(model.sample(n_agents=4, batch_size=2, num_samples=3, steps=4, noise=noise @ Q.T, eta=0.0), a @ Q.T)


def test_ddim_update_with_eta_one_is_the_ddpm_posterior_step():
    sched = DiffusionSchedule(100).double()
    betas = torch.linspace(1e-4, 0.02, 100, dtype=torch.float64)
    a_bar = torch.cumprod(1 - betas, 0)
    x, eps, z = torch.randn(3, 4, dtype=torch.float64).unbind(0)
    k = 57
    # Ho et al. 2020, algorithm 2, with sigma^2 = beta~ (posterior variance).
    var = betas[k] * (1 - a_bar[k - 1]) / (1 - a_bar[k])
    ddpm = (x - betas[k] / (1 - a_bar[k]).sqrt() * eps) / (1 - betas[k]).sqrt() + var.sqrt() * z
    assert_close(sched.step(x, eps, k, k - 1, 1.0, z), ddpm, rtol=1e-12)
    assert sched.timesteps(100) == list(range(99, -1, -1))
    assert sched.timesteps(4) == [99, 66, 33, 0]


@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_short_training_lowers_the_loss(prediction):
    """Constant-velocity particles: the denoising loss at fixed noise falls by a clear margin."""
    torch.manual_seed(0)
    start, vel = torch.randn(32, 3, 1, 3), 0.3 * torch.randn(32, 3, 1, 3)
    traj = start + vel * torch.arange(8.0).view(1, 1, -1, 1)
    cond, future = traj[:, :, :4], traj[:, :, 4:]
    model = GeoTDM(4, 4, hidden=16, layers=1, prior_layers=1, diffusion_steps=100, prediction=prediction)

    def fixed_loss():
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(1)
            return float(sum(model(future, cond) for _ in range(4)) / 4)

    before = fixed_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = model(future, cond)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_loss()
    assert after < 0.7 * before, (before, after)


def test_bad_inputs_raise():
    model = GeoTDM()
    assert model.sample(torch.randn(2, 5, 10, 3), num_samples=2, steps=3).shape == (2, 5, 2, 20, 3)
    with pytest.raises(ValueError, match=r"cond must have shape \[B, N, 10, D\]"):
        model.sample(torch.randn(2, 5, 8, 3), steps=2)
    with pytest.raises(ValueError, match="needs cond"):
        model.sample(n_agents=5, steps=2)
    with pytest.raises(ValueError, match="mask must have shape"):
        model.sample(torch.randn(2, 5, 10, 3), steps=2, mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        model(torch.randn(1, 2, 20, 3), torch.full((1, 2, 10, 3), float("nan")))
    with pytest.raises(ValueError, match="steps must be in"):
        model.sample(torch.randn(1, 2, 10, 3), steps=0)
    with pytest.raises(TypeError, match="noise must be"):
        model.sample(torch.randn(1, 2, 10, 3), steps=2, noise=3)
    uncond = GeoTDM(cond_frames=0)
    with pytest.raises(ValueError, match="needs n_agents"):
        uncond.sample(steps=2)
    with pytest.raises(ValueError, match="unconditional model"):
        uncond.sample(torch.randn(1, 2, 10, 3), steps=2)


def test_sample_average_metrics():
    future = torch.zeros(1, 2, 4, 2)
    pred = torch.zeros(1, 2, 2, 4, 2)
    pred[0, :, 1, :, 0] = torch.tensor([1.0, 1.0, 1.0, 3.0])  # sample 1: ADE 1.5, FDE 3; sample 0 exact
    sums = sample_average_sums(pred, future, torch.tensor([[True, False]]))
    assert sums == {"avg_ade": 0.75, "avg_fde": 1.5, "count": 1.0}


def test_generation_scores_separate_real_from_wrong():
    from geomanip.motion.generation_metrics import classification_score, marginal_score, prediction_score

    torch.manual_seed(0)
    start, vel = torch.randn(200, 3, 1, 2), 0.3 * torch.randn(200, 3, 1, 2)
    real = start + vel * torch.arange(6.0).view(1, 1, -1, 1)
    other = 2 * start + vel * torch.arange(6.0).view(1, 1, -1, 1) ** 2 / 3  # wider and accelerating
    real, same, other = real[:100], real[100:], other[:100]
    assert marginal_score(real, real) == 0.0
    # Margins measured over three seeds: marginal 0.008 vs 0.011, classification 0.69 vs 0.30, prediction
    # 0.03 vs 0.8.
    assert marginal_score(real, same) < marginal_score(real, other)
    assert classification_score(real, same) > 0.6 > 0.45 > classification_score(real, other)
    with torch.no_grad():  # as in training.py, where the samples come from a no_grad sampler
        assert prediction_score(same, real, 3) < 0.2 * prediction_score(other, real, 3)
    with pytest.raises(ValueError, match="equal N, T, D"):
        marginal_score(real, real[:, :2])


def test_train_py_runs_geotdm_and_writes_its_outputs(tmp_path):
    from geomanip.motion.data.nbody import NBodyConfig, write_dataset
    from geomanip.motion.training import MotionConfig, run

    data = tmp_path / "charged"
    write_dataset(NBodyConfig(num_frames=30, sample_every=20), data, {"train": 32, "val": 8, "test": 8}, False)
    out = tmp_path / "run"
    small = dict(hidden=16, layers=1, batch_size=16, diffusion_steps=50, sample_steps=4, progress=False)
    result = run(MotionConfig(model="geotdm", data_root=str(data), out=str(out), epochs=2, **small))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["modes"] == 5 and len(summary["val_history"]) == 2
    assert summary["best_val"] == min(summary["val_history"])
    assert 0 < summary["gradient_fraction"] <= 1
    assert math.isfinite(result["avg_ade"]) and result["min_ade"] <= result["avg_ade"]
    for name in ("best.pt", "last.pt", "generated.png", "sample.gif"):
        assert (out / name).is_file(), name


def test_geotdm_validates_on_a_small_subset_with_few_steps(tmp_path, monkeypatch):
    from geomanip.motion import training
    from geomanip.motion.data.nbody import NBodyConfig, write_dataset

    data = tmp_path / "charged"
    write_dataset(NBodyConfig(num_frames=30, sample_every=20), data, {"train": 16, "val": 12, "test": 8}, False)
    seen = []
    evaluate = training.evaluate

    def spy(model, loader, device, cfg=None):
        seen.append((len(loader.dataset), cfg.sample_steps))
        return evaluate(model, loader, device, cfg)

    monkeypatch.setattr(training, "evaluate", spy)
    small = dict(hidden=16, layers=1, batch_size=16, diffusion_steps=50, sample_steps=4, progress=False)
    cfg = training.MotionConfig(model="geotdm", data_root=str(data), out=str(tmp_path / "run"), epochs=1, **small)
    training.run(replace(cfg, val_limit=5, val_steps=2))
    assert seen == [(5, 2), (8, 4)]  # validation: 5 systems, 2 steps; the test: all 8 with sample_steps


@pytest.mark.slow
def test_train_py_runs_unconditional_geotdm(tmp_path):
    from geomanip.motion.data.nbody import NBodyConfig, write_dataset
    from geomanip.motion.training import MotionConfig, run

    data = tmp_path / "charged"
    write_dataset(NBodyConfig(num_frames=30, sample_every=20), data, {"train": 64, "val": 16, "test": 16}, False)
    out = tmp_path / "run"
    small = dict(hidden=16, layers=1, batch_size=16, diffusion_steps=50, sample_steps=4, progress=False)
    result = run(MotionConfig(model="geotdm", unconditional=True, data_root=str(data), out=str(out), epochs=2, **small))
    assert {"loss", "marginal", "classification", "prediction"} <= set(result)
    assert (out / "generated.png").is_file() and (out / "sample.gif").is_file()
