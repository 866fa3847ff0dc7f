import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from geomanip.envs.scripted import scripted_action
from geomanip.policies.demonstrations import DEMO_SEED, Demonstrations, collect, fit, pretrain
from geomanip.policies.training import (
    EVAL_SEED,
    RLConfig,
    build_or_resume_model,
    configure,
    evaluate_checkpoint,
    policy_spec,
    run,
)
from tests.policies.test_training import TINY


def _scripted_episode(task: str, seed: int, zero_actions: bool = False) -> tuple[list[np.ndarray], float, bool]:
    env = gym.make(task)
    env.reset(seed=seed)
    labels, total, done = [], 0.0, False
    while not done:
        label = scripted_action(env.unwrapped)
        labels.append(label)
        _, reward, terminated, truncated, info = env.step(np.zeros_like(label) if zero_actions else label)
        total += reward
        done = terminated or truncated
    return labels, total, bool(info["is_success"])


def test_the_scripted_controller_acts_and_labels_episodes_side_by_side():
    seeds = [3, 4]
    data = collect("RigidSliding-v0", {}, seeds)
    for e, seed in enumerate(seeds):
        labels, total, success = _scripted_episode("RigidSliding-v0", seed)
        np.testing.assert_allclose(data.actions[data.episode == e], np.stack(labels), atol=1e-6)
        assert data.returns[e] == pytest.approx(total)
        assert data.successes[e] == success
        assert data.rewards[data.episode == e].sum() == pytest.approx(total)
    assert data.successes.all()  # the scripted slide succeeds on these starts
    assert {k: v.shape[0] for k, v in data.observations.items()} == {k: len(data) for k in data.observations}


def test_in_a_dagger_round_the_policy_acts_and_the_controller_only_labels():
    def hold_still(obs):
        return np.zeros((len(obs["gripper_pos"]), 3))

    data = collect("RigidSliding-v0", {}, [5], predict=hold_still)
    labels, total, success = _scripted_episode("RigidSliding-v0", 5, zero_actions=True)
    # The trajectory is the still policy's; the labels are the controller's actions at the states it visited.
    assert data.returns[0] == pytest.approx(total) and not success and data.successes[0] == 0
    np.testing.assert_allclose(data.actions, np.stack(labels), atol=1e-6)
    assert np.abs(data.actions).max() > 0.1

    with pytest.raises(ValueError, match=r"predict returned actions of shape \(1, 2\), expected \(1, 3\)"):
        collect("RigidSliding-v0", {}, [5], predict=lambda obs: np.zeros((1, 2)))


def test_value_targets_are_discounted_returns_within_each_episode():
    # Two episodes interleaved step by step, as collect records them: episode 0 has rewards 1, 2, 3; episode 1
    # rewards 10, 20.
    data = Demonstrations(
        observations={"x": np.zeros((5, 1))},
        actions=np.zeros((5, 1), dtype=np.float32),
        rewards=np.array([1.0, 10.0, 2.0, 20.0, 3.0]),
        episode=np.array([0, 1, 0, 1, 0]),
        returns=np.array([6.0, 30.0]),
        successes=np.zeros(2),
    )
    gamma = 0.5
    expected = [1 + gamma * 2 + gamma**2 * 3, 10 + gamma * 20, 2 + gamma * 3, 20, 3]
    np.testing.assert_allclose(data.value_targets(gamma), expected)
    both = Demonstrations.concatenate([data, data])
    assert both.episode.tolist() == [0, 1, 0, 1, 0, 2, 3, 2, 3, 2]
    np.testing.assert_allclose(both.value_targets(gamma), expected * 2)


def _mlp_model(task: str = "RigidSliding-v0", **options) -> PPO:
    cfg = configure(task=task, policy="mlp", **options)
    env = gym.make(task)
    policy, kwargs = policy_spec(cfg, env)
    return PPO(policy, env, policy_kwargs=kwargs, n_steps=64, batch_size=64, seed=0)


def test_fitting_clones_the_controllers_actions_and_the_returns():
    torch.manual_seed(0)
    model = _mlp_model()
    data = collect("RigidSliding-v0", {}, [1, 2, 3, 4])
    targets = data.value_targets(0.99) / 10

    def errors():
        obs, _ = model.policy.obs_to_tensor(data.observations)
        with torch.no_grad():
            mean = model.policy.get_distribution(obs).distribution.mean.numpy()
            values = model.policy.predict_values(obs).flatten().numpy()
        return np.mean((mean - data.actions) ** 2), np.mean((values - targets) ** 2)

    before = errors()
    action_error, value_error = fit(model.policy, data, targets, epochs=30, batch_size=64, lr=1e-3, seed=0)
    after = errors()
    assert after[0] < 0.1 * before[0] and after[1] < 0.1 * before[1]
    assert action_error == pytest.approx(after[0], rel=0.5) and not model.policy.training


def test_pretraining_rounds_and_their_checks():
    model = _mlp_model()
    logged = []
    rounds, data = pretrain(model, "RigidSliding-v0", {}, 2, 2, 1, 64, 1e-3, seed=1, log=logged.append)
    assert rounds == logged and [r["round"] for r in rounds] == [1, 2]
    assert [r["acting"] for r in rounds] == ["scripted", "policy"]
    assert rounds[0]["success"] == 1.0 and [r["samples"] for r in rounds] == [200, 400]
    assert len(data) == 400 and np.unique(data.episode).tolist() == [0, 1, 2, 3]  # both rounds' episodes
    with pytest.raises(ValueError, match="at most 1000 episodes"):
        pretrain(model, "RigidSliding-v0", {}, 600, 2, 1, 64, 1e-3, seed=1)
    with pytest.raises(ValueError, match="positive episodes, rounds and epochs"):
        pretrain(model, "RigidSliding-v0", {}, 2, 0, 1, 64, 1e-3, seed=1)
    assert DEMO_SEED > 20_000 + 1_000  # apart from the evaluation and test seeds


def test_a_pretrained_run_starts_from_an_evaluated_checkpoint_and_resumes_without_pretraining(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = {**TINY, "task": "RigidSliding-v0", "policy": "mlp"}
    run(RLConfig(out=str(out), demo_episodes=2, demo_rounds=2, demo_epochs=1, **tiny))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pretraining round 1/2 (scripted acting): success 100%")
    assert lines[1].startswith("pretraining round 2/2 (policy acting)")
    assert lines[2].startswith("0 / 256 steps")
    history = json.loads((out / "history.json").read_text())
    assert [h["steps"] for h in history] == [0, 128, 256] and history[0]["demo_steps"] == 2 * 2 * 100
    assert [r["round"] for r in json.loads((out / "demonstrations.json").read_text())] == [1, 2]
    assert any((out / "tb" / "pretraining").glob("events.*"))
    # The pretrained policy is kept as a checkpoint of its own, and evaluates to the step-0 entry.
    again = evaluate_checkpoint(str(out / "pretrained.zip"), episodes=1, seed=EVAL_SEED)
    assert again["train_return"] == pytest.approx(history[0]["train_return"])

    run(RLConfig(out=str(out), resume=True, demo_episodes=2, **{**tiny, "total_steps": 384}))
    assert not any(line.startswith("pretraining") for line in capsys.readouterr().out.splitlines())
    assert [h["steps"] for h in json.loads((out / "history.json").read_text())] == [0, 128, 256, 384]


def test_pretraining_alone(tmp_path):
    out = tmp_path / "run"
    tiny = {**TINY, "task": "RigidSliding-v0", "policy": "mlp", "total_steps": 0}
    summary = run(RLConfig(out=str(out), demo_episodes=2, demo_rounds=1, demo_epochs=1, **tiny))
    assert summary["steps"] == 0 and [h["steps"] for h in summary["history"]] == [0]
    assert (out / "pretrained.zip").is_file() and (out / "last.zip").is_file()


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(demo_episodes=-1), "demo_episodes must be 0"),
        (dict(total_steps=0), r"total_steps must be positive \(0 only with demo_episodes"),
        (dict(demo_episodes=1, demo_rounds=0), "demo_rounds, demo_epochs positive"),
        (dict(demo_episodes=600, demo_rounds=2), "at most 1000 episodes"),
        (dict(gamma=0.0), r"gamma must be in \(0, 1\]"),
        (dict(gamma=1.5), r"gamma must be in \(0, 1\]"),
    ],
)
def test_bad_pretraining_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        RLConfig(**options).validate()


def test_the_discount_reaches_the_algorithm_and_the_reward_scaler(tmp_path):
    cfg = RLConfig(out=str(tmp_path / "run"), gamma=0.9, **TINY)
    model, _ = build_or_resume_model(cfg, tmp_path, torch.device("cpu"))
    assert model.gamma == 0.9 and model.get_env().gamma == 0.9


def test_demonstrations_are_saved_and_loaded_whole(tmp_path):
    data = collect("RigidSliding-v0", {}, [1, 2])
    data.save(tmp_path / "demonstrations.npz")
    again = Demonstrations.load(tmp_path / "demonstrations.npz")
    assert sorted(again.observations) == sorted(data.observations) and len(again) == len(data)
    for k, v in data.observations.items():
        np.testing.assert_array_equal(again.observations[k], v)
    for name in ("actions", "rewards", "episode", "returns", "successes"):
        np.testing.assert_array_equal(getattr(again, name), getattr(data, name))
    assert [p.name for p in tmp_path.iterdir()] == ["demonstrations.npz"]  # no temporary file left
