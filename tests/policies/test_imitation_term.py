import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import Logger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from geomanip.policies.demonstrations import Demonstrations, collect
from geomanip.policies.imitation_term import add_imitation_term, imitation_loss
from geomanip.policies.training import DEMONSTRATIONS, RLConfig, build_or_resume_model, configure, run
from tests.policies.test_training import TINY

CPU = torch.device("cpu")
SLIDING_MLP = {**TINY, "task": "RigidSliding-v0", "policy": "mlp"}


def gradients(policy) -> list[torch.Tensor]:
    return [p.grad.clone() for p in policy.parameters() if p.grad is not None]


@pytest.mark.parametrize("policy", ["mlp", "hepi"])
def test_each_optimizer_step_adds_the_gradient_of_the_weighted_imitation_loss(policy, tmp_path):
    model, _ = build_or_resume_model(configure(**{**SLIDING_MLP, "policy": policy}), tmp_path, CPU)
    data = collect("RigidSliding-v0", {}, [1])  # 100 samples: a minibatch of 100 is all of them, in some order
    obs = model.policy.obs_to_tensor(model.get_env().reset())[0]
    optimizer = model.policy.optimizer
    for group in optimizer.param_groups:
        group["lr"] = 0.0  # the step leaves the parameters, and so the gradients compared below, as they are

    def rl_loss() -> torch.Tensor:  # stands in for the algorithm's loss on its own minibatch
        return model.policy.get_distribution(obs).log_prob(torch.zeros(2, 3)).mean()

    optimizer.zero_grad()
    (rl_loss() + 0.7 * imitation_loss(model.policy, data, np.arange(len(data)))).backward()
    written_out = gradients(model.policy)

    model.set_logger(Logger(None, []))
    handle = add_imitation_term(model, data, coef=0.7, batch_size=500, seed=0)
    optimizer.zero_grad()
    rl_loss().backward()
    plain = gradients(model.policy)
    optimizer.step()
    hooked = gradients(model.policy)
    assert any(not torch.allclose(a, b) for a, b in zip(plain, written_out, strict=True))  # the term does act
    for a, b in zip(hooked, written_out, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert model.logger.name_to_value["train/imitation_error"] > 0
    handle.remove()
    optimizer.zero_grad()
    rl_loss().backward()
    optimizer.step()
    for a, b in zip(gradients(model.policy), plain, strict=True):
        assert torch.equal(a, b)

    with pytest.raises(ValueError, match="coefficient must be positive"):
        add_imitation_term(model, data, coef=0.0, batch_size=64, seed=0)


def error_on_demonstrations(out) -> float:
    model, _ = build_or_resume_model(configure(out=str(out), resume=True), out, CPU)
    data = Demonstrations.load(out / DEMONSTRATIONS)
    with torch.no_grad():
        return imitation_loss(model.policy, data, np.arange(len(data))).item()


def logged_steps(out, tag: str) -> list[int]:
    """The steps at which the run in ``out`` logged ``tag`` to TensorBoard, over all of its logs."""
    steps = []
    for events in out.glob("tb/**/events.*"):
        log = EventAccumulator(str(events))
        log.Reload()
        steps += [e.step for e in log.Scalars(tag)] if tag in log.Tags()["scalars"] else []
    return sorted(steps)


def test_rl_with_the_term_stays_closer_to_the_demonstrations_and_resumes_with_it(tmp_path):
    pretraining = dict(demo_episodes=2, demo_rounds=1, demo_epochs=1, lr=1e-3, total_steps=512)
    run(RLConfig(out=str(tmp_path / "plain"), demo_coef=1e-9, **{**SLIDING_MLP, **pretraining}))
    run(RLConfig(out=str(tmp_path / "kept"), demo_coef=10.0, **{**SLIDING_MLP, **pretraining}))
    # The same pretraining (same seed), then RL with a vanishing and with a large weight on imitation.
    plain, kept = error_on_demonstrations(tmp_path / "plain"), error_on_demonstrations(tmp_path / "kept")
    assert kept < 0.5 * plain
    # One mean per update (of 128 steps), logged at its step.
    assert logged_steps(tmp_path / "kept", "train/imitation_error") == [128, 256, 384, 512]

    cfg = configure(out=str(tmp_path / "kept"), resume=True, total_steps=768, progress=False)
    assert cfg.demo_coef == 10.0  # the saved run's
    run(cfg)
    assert logged_steps(tmp_path / "kept", "train/imitation_error") == [128, 256, 384, 512, 640, 768]

    run(RLConfig(out=str(tmp_path / "none"), demo_episodes=2, demo_rounds=1, demo_epochs=1, **SLIDING_MLP))
    assert not (tmp_path / "none" / DEMONSTRATIONS).exists()  # kept only for the term
    with pytest.raises(ValueError, match=r"keeps no demonstrations \(demonstrations.npz\)"):
        run(configure(out=str(tmp_path / "none"), resume=True, total_steps=384, demo_coef=1.0, progress=False))


@pytest.mark.parametrize(
    "options", [dict(demo_coef=-1.0, demo_episodes=2), dict(demo_coef=1.0), dict(demo_coef=1.0, demo_episodes=0)]
)
def test_a_negative_weight_or_one_without_demonstrations_is_refused(options):
    with pytest.raises(ValueError, match="demo_coef must be 0 .* or positive with demo_episodes"):
        RLConfig(**options).validate()
