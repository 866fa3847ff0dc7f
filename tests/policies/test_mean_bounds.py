import pytest
import torch

from geomanip.policies.mean_bounds import SOFT_BOUND, bounds_penalty, penalize_mean_beyond_bounds
from geomanip.policies.training import RLConfig, build_or_resume_model, configure, run
from tests.policies.test_training import TINY

CPU = torch.device("cpu")


def test_the_penalty_is_zero_inside_the_soft_bound_and_quadratic_beyond_it():
    mean = torch.tensor([[0.0, 1.0, -1.1, SOFT_BOUND], [1.6, -2.1, 0.5, 0.0]], dtype=torch.float64)
    assert bounds_penalty(mean).tolist() == pytest.approx([0.0, 0.5**2 + 1.0**2])


def out_of_bounds_policy(policy: str, tmp_path):
    """A freshly built policy whose action means on its first observations lie partly far outside the bounds."""
    model, _ = build_or_resume_model(configure(**{**TINY, "policy": policy}), tmp_path / policy, CPU)
    with torch.no_grad():
        if policy == "mlp":
            model.policy.action_net.bias.copy_(torch.tensor([3.0, -2.5, 0.4, 0.0]))
        else:  # HEPi's mean is each gripper's equivariant vector times an invariant scale: make the scale large
            model.policy.mlp_extractor.network.head_scalar.bias.fill_(50.0)
    obs = model.policy.obs_to_tensor(model.get_env().reset())[0]
    return model.policy, obs


def parameter_gradients(policy, obs, actions, coef: float = 0.0) -> list[torch.Tensor]:
    """Gradients of a policy-gradient-like loss, plus ``coef`` times the penalty written out in the loss."""
    policy.zero_grad()
    distribution = policy.get_distribution(obs)
    loss = -distribution.log_prob(actions).mean()
    if coef:
        loss = loss + coef * bounds_penalty(distribution.distribution.mean).mean()
    loss.backward()
    return [p.grad.clone() for p in policy.parameters() if p.grad is not None]


@pytest.mark.parametrize("policy", ["mlp", "hepi"])
def test_the_hook_adds_the_gradient_of_the_penalty_to_the_loss(policy, tmp_path):
    policy, obs = out_of_bounds_policy(policy, tmp_path)
    mean = policy.get_distribution(obs).distribution.mean.detach()
    assert (mean.abs() > SOFT_BOUND).any(), "the check needs means beyond the soft bound"
    actions = torch.zeros_like(mean)
    plain = parameter_gradients(policy, obs, actions)
    written_out = parameter_gradients(policy, obs, actions, coef=2.0)
    handle = penalize_mean_beyond_bounds(policy, 2.0)
    hooked = parameter_gradients(policy, obs, actions)
    handle.remove()
    assert any(not torch.allclose(a, b) for a, b in zip(written_out, plain, strict=True))  # the penalty does act here
    for a, b in zip(hooked, written_out, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # Where no gradient flows (rollouts, predict) the hook does nothing.
    penalize_mean_beyond_bounds(policy, 2.0)
    with torch.no_grad():
        torch.testing.assert_close(policy.get_distribution(obs).distribution.mean, mean)


def test_a_mean_inside_the_bounds_trains_exactly_as_without_the_penalty(tmp_path):
    model, _ = build_or_resume_model(configure(**{**TINY, "policy": "mlp"}), tmp_path / "run", CPU)
    policy = model.policy
    obs = policy.obs_to_tensor(model.get_env().reset())[0]
    with torch.no_grad():
        policy.action_net.weight.mul_(1e-3)
        policy.action_net.bias.copy_(torch.tensor([1.05, -1.05, 0.4, 0.0]))
    actions = torch.ones(2, 4)
    plain = parameter_gradients(policy, obs, actions)
    penalize_mean_beyond_bounds(policy, 5.0)
    for a, b in zip(parameter_gradients(policy, obs, actions), plain, strict=True):
        assert torch.equal(a, b)


def test_training_installs_the_penalty_again_on_resume_and_refuses_a_negative_weight(tmp_path):
    out = tmp_path / "run"
    run(RLConfig(out=str(out), mean_bounds_coef=1.0, **{**TINY, "policy": "mlp"}))
    cfg = configure(out=str(out), resume=True, total_steps=384, progress=False)
    assert cfg.mean_bounds_coef == 1.0  # the saved run's
    model, _ = build_or_resume_model(cfg, out, CPU)
    assert len(model.policy.action_net._forward_hooks) == 1
    model, _ = build_or_resume_model(configure(**{**TINY, "policy": "mlp"}), tmp_path / "plain", CPU)
    assert len(model.policy.action_net._forward_hooks) == 0
    with pytest.raises(ValueError, match="mean_bounds_coef must be 0 .* got -1"):
        run(RLConfig(out=str(tmp_path / "bad"), mean_bounds_coef=-1.0, **TINY))
    with pytest.raises(ValueError, match="coefficient must be positive"):
        penalize_mean_beyond_bounds(model.policy, 0.0)
