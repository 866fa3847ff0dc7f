import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from geomanip.cli import main
from geomanip.policies import POLICIES, training
from geomanip.policies.training import (
    TASKS,
    RLConfig,
    build_or_resume_model,
    configure,
    evaluate_checkpoint,
    evaluate_modes,
    evaluate_policy,
    make_training_envs,
    run,
    task_settings,
    variant_sets,
)
from tests.test_runs import folder_state

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(
    task="RigidInsertion-v0",
    total_steps=256,
    n_envs=2,
    n_steps=64,
    batch_size=64,
    n_epochs=1,
    eval_every=128,
    eval_episodes=1,
    hidden=8,
    progress=False,
)


def test_training_run_writes_its_outputs_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    summary = run(RLConfig(out=str(out), **TINY))
    assert summary["steps"] == 256
    # Without a progress bar, each evaluation prints a line.
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" steps")[0] for line in lines] == ["128 / 256", "256 / 256"]
    assert all("train success" in line and "unseen success" in line and "(sampled" in line for line in lines)
    for name in ("last.zip", "best.zip", "run.json", "summary.json", "learning_curve.png", "history.json"):
        assert (out / name).is_file(), name
    assert summary["best"] == max(summary["history"], key=training.evaluation_score)
    assert any((out / "tb").rglob("events.*"))
    assert [h["steps"] for h in summary["history"]] == [128, 256]
    assert {"train_success", "unseen_success", "train_return", "unseen_return"} <= set(summary["final"])

    # A second run into the same folder is refused before anything there changes.
    before = folder_state(out)
    with pytest.raises(FileExistsError, match=f"{out} already holds a run .*pass --resume .* or --overwrite"):
        run(RLConfig(out=str(out), **TINY))
    assert folder_state(out) == before

    resumed = run(RLConfig(out=str(out), resume=True, **{**TINY, "total_steps": 384}))
    assert resumed["steps"] == 384
    assert [h["steps"] for h in resumed["history"]] == [128, 256, 384]
    # The wall-clock carries over the resume: it counts both segments, not the last one alone.
    seconds = [h["train_seconds"] for h in resumed["history"]]
    assert seconds == sorted(seconds) and seconds[1] == summary["train_seconds"]
    assert resumed["train_seconds"] == seconds[-1] > summary["train_seconds"]

    metrics = evaluate_checkpoint(str(out / "last.zip"), episodes=1, video=str(tmp_path / "episode.gif"))
    keys = {"train_return", "train_success", "unseen_return", "unseen_success"}
    assert set(metrics) == keys | {f"stochastic_{k}" for k in keys}
    assert (tmp_path / "episode.gif").stat().st_size > 1000


def test_the_stochastic_evaluation_is_seeded_and_leaves_the_training_random_stream_alone(tmp_path):
    cfg = RLConfig(out=str(tmp_path / "run"), policy="mlp", **{**TINY, "eval_episodes": 2})
    model, _ = build_or_resume_model(cfg, tmp_path / "run", torch.device("cpu"))
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = evaluate_modes(model, cfg, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert evaluate_modes(model, cfg, seed=5) == first
    # The untrained policy's std is 1: its sampled actions are not its mean actions.
    assert first["stochastic_train_return"] != first["train_return"]
    assert evaluate_modes(model, cfg, seed=6)["stochastic_train_return"] != first["stochastic_train_return"]


def test_best_zip_holds_the_policy_of_the_best_evaluation_on_the_training_variants(tmp_path):
    cfg = RLConfig(out=str(tmp_path), policy="mlp", **TINY)
    model, _ = build_or_resume_model(cfg, tmp_path, torch.device("cpu"))

    def evaluation(steps, success, sampled_success, ret):
        # Held-out results that would reverse the order if they counted.
        return {
            "steps": steps,
            "train_success": success,
            "train_return": ret,
            "stochastic_train_success": sampled_success,
            "stochastic_train_return": ret - 1.0,
            "unseen_success": 1.0 - success,
            "unseen_return": -ret,
        }

    def kept_steps():  # each evaluated policy is marked by its log std
        return PPO.load(tmp_path / "best.zip").policy.log_std.mean().item()

    history = []
    # (steps, success with the mean action, with sampled actions, return, kept as best?)
    for steps, success, sampled, ret, kept in [
        (0, 0.5, 0.0, -10.0, True),  # the first evaluation
        (1, 0.2, 0.4, -5.0, False),  # a higher return does not outrank a higher success
        (2, 0.0, 0.6, -30.0, True),  # the better of the two policies counts: sampled actions here
        (3, 0.6, 0.0, -31.0, False),  # a tie (0.6, -31: step 2's sampled return) stays with the earlier one
        (4, 0.6, 0.6, -25.0, True),  # at equal success, the return decides
        (5, 0.0, 0.0, -1.0, False),
    ]:
        with torch.no_grad():
            model.policy.log_std.fill_(steps)
        history.append(evaluation(steps, success, sampled, ret))
        training.keep_if_best(model, tmp_path, history)
        assert (kept_steps() == steps) == kept, steps
    assert kept_steps() == 4 == max(history, key=training.evaluation_score)["steps"]
    # Runs from before the sampled policy was evaluated rank by the mean action alone.
    assert training.evaluation_score({"train_success": 0.3, "train_return": -2.0}) == (0.3, -2.0)


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_the_learning_rate_schedule(tmp_path, schedule):
    # Two rollouts of 128 steps, budget 256: the linear schedule's updates run at 1/2 and 0 of the rate, so
    # the last update leaves the optimizer at 0.
    out = tmp_path / schedule
    run(RLConfig(out=str(out), policy="mlp", lr=1e-3, lr_schedule=schedule, **TINY))
    model = PPO.load(out / "last.zip")
    assert model.policy.optimizer.param_groups[0]["lr"] == (1e-3 if schedule == "constant" else 0.0)
    assert model.lr_schedule(0.5) == pytest.approx(1e-3 if schedule == "constant" else 5e-4)


def test_a_budget_inside_a_rollout_is_evaluated_once_at_the_end(tmp_path):
    # Rollouts of 128 steps, evaluations every 100 (each at the next rollout boundary), budget 200: the
    # evaluation due at 200 falls inside the second rollout, which runs on to 256; the run evaluates once
    # there, not twice.
    cfg = RLConfig(out=str(tmp_path / "run"), policy="mlp", **{**TINY, "total_steps": 200, "eval_every": 100})
    summary = run(cfg)
    assert [h["steps"] for h in summary["history"]] == [128, 256]
    assert summary["steps"] == 256 and summary["final"]["steps"] == 256


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'Juggling-v0'"):
        run(RLConfig(task="Juggling-v0", out=str(tmp_path)))
    with pytest.raises(ValueError, match="unknown policy 'gnn'"):
        run(RLConfig(policy="gnn", out=str(tmp_path)))
    with pytest.raises(ValueError, match="threads must be"):
        run(RLConfig(threads=-2, out=str(tmp_path)))
    for option in ("n_steps", "batch_size", "n_epochs", "eval_episodes"):
        with pytest.raises(ValueError, match=f"{option} must be positive, got 0"):
            run(RLConfig(**{option: 0}, out=str(tmp_path)))
    with pytest.raises(ValueError, match="lr must be positive, got -0.001"):
        run(RLConfig(lr=-1e-3, out=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_checkpoint(str(tmp_path / "missing.zip"))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run(RLConfig(out=str(tmp_path / "empty"), resume=True, **TINY))


def test_checkpoint_of_another_task_is_refused(tmp_path):
    out = tmp_path / "run"
    run(RLConfig(out=str(out), policy="mlp", **{**TINY, "total_steps": 128}))
    with pytest.raises(ValueError, match="trained on RigidInsertion-v0, not RigidPushing-v0"):
        evaluate_checkpoint(str(out / "last.zip"), episodes=1, task="RigidPushing-v0")
    with pytest.raises(ValueError, match=r"saved with --task RigidInsertion-v0 \(not RigidPushing-v0\); omit"):
        run(RLConfig(out=str(out), policy="mlp", resume=True, **{**TINY, "task": "RigidPushing-v0"}))
    cli = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--task", "Juggling-v0"], capture_output=True, text=True, cwd=tmp_path
    )
    assert cli.returncode == 2 and "unknown task" in cli.stderr
    ok = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "evaluate", "--checkpoint", str(out / "last.zip"), "--episodes", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0 and "train_success" in ok.stdout
    assert json.loads((out / "run.json").read_text())["policy"] == "mlp"


def test_a_run_moved_to_another_folder_resumes_its_logs_there(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    run(RLConfig(out=str(old), **TINY))
    shutil.copytree(old, new)
    before = folder_state(old)
    run(RLConfig(out=str(new), resume=True, **{**TINY, "total_steps": 384}))
    assert folder_state(old) == before  # the original run is untouched, its TensorBoard log included
    logs = sorted(new.joinpath("tb").rglob("events.*"))
    assert len(logs) == 2  # the copied segment and the resumed one, side by side


def test_the_share_of_mean_actions_outside_the_bounds_is_measured_and_logged(tmp_path, capsys):
    summary = run(RLConfig(out=str(tmp_path / "run"), **{**TINY, "policy": "mlp"}))
    assert [0.0 <= h["mean_action_outside_bounds"] <= 1.0 for h in summary["history"]] == [True, True]
    assert "mean action outside bounds" in capsys.readouterr().out
    model, _ = build_or_resume_model(configure(**{**TINY, "policy": "mlp"}), tmp_path / "new", torch.device("cpu"))
    obs = model.get_env().reset()
    with torch.no_grad():
        model.policy.action_net.weight.zero_()
        model.policy.action_net.bias.copy_(torch.tensor([0.5, -0.5, 0.0, 0.9]))
    assert training.mean_action_outside_bounds(model.policy, obs) == 0.0
    with torch.no_grad():
        model.policy.action_net.bias.copy_(torch.tensor([3.0, -0.5, -1.5, 0.9]))
    assert training.mean_action_outside_bounds(model.policy, obs) == 0.5
    assert training.mean_action_outside_bounds(model.policy, obs, chunk=1) == 0.5


def test_evaluations_fall_between_rollouts_so_a_resumed_run_keeps_the_rollout_grid(tmp_path):
    # Rollouts of 2 x 64 = 128 steps; evaluations asked for every 100. A checkpoint written mid-rollout (at 100)
    # lost the steps collected since 0 and shifted every rollout of a run resumed from it.
    out = tmp_path / "run"
    summary = run(RLConfig(out=str(out), **{**TINY, "eval_every": 100}))
    assert [h["steps"] for h in summary["history"]] == [128, 256]
    resumed = run(RLConfig(out=str(out), resume=True, **{**TINY, "eval_every": 100, "total_steps": 400}))
    assert [h["steps"] for h in resumed["history"]] == [128, 256, 384, 512]


def test_the_command_line_refuses_overwrites_resumes_the_saved_task_and_policy(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = ["--n-envs", "2", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "1", "--eval-every", "128"]
    tiny += ["--eval-episodes", "1", "--hidden", "8", "--no-progress", "--out", str(out)]
    first = ["--task", "RigidSliding-v0", "--policy", "mlp", "--total-steps", "128", *tiny]
    assert main(["train", *first]) == 0
    capsys.readouterr()
    before = folder_state(out)
    assert main(["train", *first]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"geomanip: error: {out} already holds a run (last.zip, summary.json)")
    assert "--resume" in err and "--overwrite" in err
    assert folder_state(out) == before

    # --resume without --task and --policy continues the saved mlp run on sliding (and its sizes).
    assert main(["--resume", "--total-steps", "256", "--no-progress", "--out", str(out)]) == 0
    assert "mlp on RigidSliding-v0: 256 steps" in capsys.readouterr().out
    saved = json.loads((out / "run.json").read_text())
    assert (saved["task"], saved["policy"], saved["n_envs"], saved["total_steps"]) == ("RigidSliding-v0", "mlp", 2, 256)
    assert [h["steps"] for h in json.loads((out / "history.json").read_text())] == [128, 256]
    # Given explicitly, another policy is still an error, and the run stays as it was.
    before = folder_state(out)
    assert main(["--resume", "--policy", "hepi", "--total-steps", "384", "--out", str(out)]) == 2
    assert "saved with --policy mlp (not hepi)" in capsys.readouterr().err
    assert main(["--resume", "--overwrite", "--out", str(out)]) == 2
    assert folder_state(out) == before

    # --overwrite replaces the run: a fresh one, its old logs gone.
    (out / "notes.txt").write_text("mine")
    assert main(["train", *first, "--overwrite"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 128 and [h["steps"] for h in summary["history"]] == [128]
    assert [p.name for p in (out / "tb").iterdir()] == ["ppo_1"]
    assert (out / "notes.txt").read_text() == "mine"


def test_deformable_tasks_train_and_evaluate_their_variant_sets(tmp_path):
    cfg = RLConfig(out=str(tmp_path / "rope"), policy="mlp", **{**TINY, "task": "RopeClosing-v0", "total_steps": 128})
    rope = run(cfg)
    metrics = {"train_return", "train_success", "stochastic_train_return", "stochastic_train_success"}
    assert set(rope["final"]) == {"steps", "train_seconds", "mean_action_outside_bounds"} | metrics  # no held-out set
    assert (tmp_path / "rope" / "learning_curve.png").is_file()
    assert variant_sets("ClothHanging-v0")["unseen"] == {"holes": "held_out"}
    assert variant_sets("RigidSliding-v0")["unseen"] == {"shape": "unseen"}


def test_env_kwargs_reach_the_training_and_evaluation_environments_and_the_saved_run(tmp_path, capsys):
    # Sliding with a horizon of 20 steps (its own is 100), in training and on both evaluation sets.
    cfg = configure(task="RigidSliding-v0", policy="mlp", env_kwargs={"horizon": 20}, out=str(tmp_path / "a"))
    venv = make_training_envs(cfg)
    venv.reset()
    zeros = np.zeros((cfg.n_envs, venv.action_space.shape[0]), dtype=np.float32)
    assert [bool(venv.step(zeros)[2].all()) for _ in range(20)] == [False] * 19 + [True]
    steps = []
    training.evaluate_both(lambda obs: steps.append(1) or zeros[:1].repeat(len(obs["gripper_pos"]), 0), cfg, seed=0)
    assert len(steps) == 2 * 20

    out = tmp_path / "run"
    tiny = ["--n-envs", "2", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "1", "--eval-episodes", "1"]
    tiny += ["--task", "RigidSliding-v0", "--policy", "mlp", "--total-steps", "128", "--no-progress", "--out", str(out)]
    assert main(["train", *tiny, "--env-kwargs", '{"horizon": 20}']) == 0
    assert json.loads((out / "run.json").read_text())["env_kwargs"] == {"horizon": 20}
    assert main(["--resume", "--total-steps", "256", "--no-progress", "--out", str(out)]) == 0  # kept on resume
    assert json.loads((out / "run.json").read_text())["env_kwargs"] == {"horizon": 20}
    capsys.readouterr()

    with pytest.raises(SystemExit):
        main(["train", *tiny, "--env-kwargs", "[20]"])
    assert "expected a JSON object" in capsys.readouterr().err
    for kwargs, message in [
        ({"shape": "unseen"}, r"env_kwargs may not set \['shape'\]: the training and held-out variant sets"),
        ({"wings": 2}, r"RigidSliding-v0 refuses them .*wings"),
        ({"horizon": 0}, r"RigidSliding-v0 refuses them \(horizon and frame_skip must be positive"),
    ]:
        with pytest.raises(ValueError, match=message):
            configure(task="RigidSliding-v0", env_kwargs=kwargs).validate()


def test_rigid_training_envs_are_batched_and_give_the_episodes_of_single_environments():
    """run() steps rigid tasks through RigidVectorEnv; its episodes must be those of SB3's DummyVecEnv with
    the same seeds (the seeding convention included), through an episode end and its reset."""
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env

    from geomanip.envs.vector import RigidVectorEnv

    cfg = RLConfig(task="RigidSliding-v0", n_envs=3, seed=5)
    batched = make_training_envs(cfg)
    assert isinstance(batched.unwrapped, RigidVectorEnv)
    single = make_vec_env(cfg.task, cfg.n_envs, seed=cfg.seed, env_kwargs=variant_sets(cfg.task)["train"])
    rng = np.random.default_rng(0)
    obs_b, obs_s = batched.reset(), single.reset()
    episode_ends = 0
    for _ in range(110):  # the horizon is 100 steps
        for k in obs_s:
            np.testing.assert_array_equal(obs_b[k], obs_s[k])
        a = rng.uniform(-1.2, 1.2, (cfg.n_envs, *single.action_space.shape))
        obs_b, r_b, d_b, info_b = batched.step(a)
        obs_s, r_s, d_s, info_s = single.step(a)
        np.testing.assert_array_equal(r_b, r_s)
        np.testing.assert_array_equal(d_b, d_s)
        for ib, i_s in zip(info_b, info_s, strict=True):
            assert ib["is_success"] == i_s["is_success"] and ib["shape"] == i_s["shape"]
            if "episode" in i_s:
                episode_ends += 1
                assert ib["episode"]["r"] == pytest.approx(i_s["episode"]["r"])
    assert episode_ends == cfg.n_envs


def test_task_settings_files_are_valid_and_applied_below_given_options(tmp_path):
    for task in TASKS:
        for policy in POLICIES:
            settings = task_settings(task, policy)
            assert settings, f"{task} has no settings file"
            RLConfig(**settings)  # every key is an RLConfig field
    file = task_settings("RopeClosing-v0", "hepi")
    cfg = configure(task="geomanip/RopeClosing-v0")
    assert cfg.task == "RopeClosing-v0" and cfg.n_steps == file["n_steps"] != RLConfig().n_steps
    assert configure(task="RopeClosing-v0", n_steps=32).n_steps == 32  # a given option wins
    default = configure()
    assert default.task == RLConfig().task and default.total_steps == task_settings(default.task, "hepi")["total_steps"]


def test_a_settings_file_with_unknown_keys_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "SETTINGS", tmp_path)
    (tmp_path / "RigidSliding-v0.toml").write_text("[all]\nlearning_rate = 1e-3\n")
    with pytest.raises(ValueError, match=r"\['learning_rate'\] are not settings a task file may set"):
        task_settings("RigidSliding-v0", "hepi")
    (tmp_path / "RigidSliding-v0.toml").write_text("[hepii]\nhidden = 8\n")
    with pytest.raises(ValueError, match="unknown tables"):
        task_settings("RigidSliding-v0", "hepi")
    # The environment's arguments are a table; the command line's replace it whole.
    (tmp_path / "RigidSliding-v0.toml").write_text("[all]\nenv_kwargs = { horizon = 20 }\n")
    assert configure(task="RigidSliding-v0").env_kwargs == {"horizon": 20}
    assert configure(task="RigidSliding-v0", env_kwargs={"frame_skip": 4}).env_kwargs == {"frame_skip": 4}


def test_batched_evaluation_gives_the_episodes_of_single_environments():
    # evaluate_policy runs its episodes side by side; each must be the single environment's with that seed.
    import gymnasium as gym

    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (200, 3, 4))
    for task, variant in (("RigidSliding-v0", {"shape": "train"}), ("RopeClosing-v0", {})):
        step = iter(range(10_000))
        dim = gym.make(task).action_space.shape[0]
        batched = evaluate_policy(lambda obs, s=step, d=dim: actions[next(s), :, :d], task, variant, 3, seed=7)
        returns, successes = [], []
        for ep in range(3):
            env = gym.make(task, **variant)
            env.reset(seed=7 + ep)
            total, t, done = 0.0, 0, False
            while not done:
                _, reward, terminated, truncated, info = env.step(actions[t, ep, :dim])
                total, t, done = total + reward, t + 1, terminated or truncated
            returns.append(total)
            successes.append(float(info["is_success"]))
        assert batched["return"] == pytest.approx(np.mean(returns), rel=1e-5)
        assert batched["success"] == np.mean(successes)


def test_trpl_trains_resumes_and_evaluates(tmp_path):
    out = tmp_path / "trpl"
    summary = run(RLConfig(out=str(out), algo="trpl", policy="hepi", **{**TINY, "task": "RigidSliding-v0"}))
    assert summary["config"]["algo"] == "trpl" and summary["steps"] == 256
    assert any("TRPL" in str(p) or "trpl" in str(p) for p in (out / "tb").iterdir())
    resumed = run(configure(out=str(out), resume=True, total_steps=384, progress=False))  # algo, sizes: saved
    assert resumed["steps"] == 384 and resumed["config"]["algo"] == "trpl"
    metrics = evaluate_checkpoint(str(out / "last.zip"), episodes=1)
    assert np.isfinite(metrics["train_return"])


@pytest.mark.parametrize("policy", ["hepi", "transformer"])
def test_the_python_api_builds_the_network_that_train_trains(policy):
    # Network defaults live in the network classes only: a default run passes none of its own.
    import gymnasium as gym

    from geomanip.policies import NETWORKS, make_policy

    cfg = configure(policy=policy)
    env = gym.make(cfg.task)
    trained = make_policy(policy, env, **training.network_kwargs(cfg))[1]
    default = make_policy(policy, env)[1]
    build = lambda kw: NETWORKS[policy](kw["layout"], **kw["network_kwargs"])  # noqa: E731
    shapes = {k: v.shape for k, v in build(trained).state_dict().items()}
    assert shapes == {k: v.shape for k, v in build(default).state_dict().items()}
    assert training.network_kwargs(configure(policy=policy, hidden=8))["hidden"] == 8


def test_the_critic_option_reaches_the_policy_and_is_refused_for_the_mlp():
    import gymnasium as gym

    from geomanip.policies.sb3 import DeepSetsCritic

    cfg = configure(critic="deepsets", hidden=8)
    env = gym.make(cfg.task)
    policy, kwargs = training.policy_spec(cfg, env)
    network = policy(env.observation_space, env.action_space, lambda _: 0.0, **kwargs)
    assert isinstance(network.mlp_extractor.critic, DeepSetsCritic)
    with pytest.raises(ValueError, match="critic 'deepsets' is not one of"):
        configure(policy="mlp", critic="deepsets").validate()


@pytest.mark.parametrize("policy", ["mlp", "hepi"])
def test_log_std_init_sets_the_initial_standard_deviation(policy):
    import gymnasium as gym

    cfg = configure(policy=policy, log_std_init=-1.0, hidden=8)
    env = gym.make(cfg.task)
    name, kwargs = training.policy_spec(cfg, env)
    model = PPO(name, env, policy_kwargs=kwargs, n_steps=8, batch_size=8, device="cpu")
    np.testing.assert_allclose(model.policy.log_std.detach().numpy(), -1.0)
    obs, _ = env.reset(seed=0)
    dist = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0])
    np.testing.assert_allclose(dist.distribution.stddev.detach().numpy(), np.exp(-1.0), rtol=1e-6)


@pytest.mark.parametrize("algo", ["ppo", "trpl"])
def test_training_options_given_on_resume_reach_the_resumed_model(tmp_path, algo):
    out = tmp_path / "run"
    tiny = {**TINY, "task": "RigidSliding-v0", "policy": "mlp", "algo": algo}
    run(RLConfig(out=str(out), **tiny))
    changed = dict(batch_size=32, lr=1e-5, n_epochs=3, ent_coef=0.0, gamma=0.9, n_steps=32)
    if algo == "trpl":
        changed |= dict(mean_bound=0.01, cov_bound=1e-4)
    cfg = configure(out=str(out), resume=True, **changed)
    model, _ = build_or_resume_model(cfg, out, torch.device("cpu"))
    assert (model.batch_size, model.n_epochs, model.ent_coef, model.gamma, model.n_steps) == (32, 3, 0.0, 0.9, 32)
    assert model.lr_schedule(1.0) == pytest.approx(1e-5) and model.rollout_buffer.buffer_size == 32
    assert model.get_env().gamma == 0.9
    if algo == "trpl":
        assert (model.mean_bound, model.cov_bound) == (0.01, 1e-4)
    # Options not given again keep the saved run's values.
    kept, _ = build_or_resume_model(configure(out=str(out), resume=True), out, torch.device("cpu"))
    assert (kept.batch_size, kept.n_epochs, kept.gamma) == (64, 1, 0.99)


def test_train_help_says_that_task_settings_replace_the_defaults_it_shows(capsys):
    with pytest.raises(SystemExit):
        main(["train", "-h"])
    out = " ".join(capsys.readouterr().out.split())
    assert "the task's settings file (geomanip/policies/settings/<task>.toml) replaces some for that task" in out
