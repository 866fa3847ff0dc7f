"""The pretrained weights shipped in the package: they load safely, run, and measure what their cards say."""

import json

import numpy as np
import pytest
import torch

from geomanip import weights
from geomanip.cli import main

SHIPPED = ("eqmotion-charged", "hepi-RigidSliding-v0")
CARD_FIELDS = ("name", "description", "retrain", "commands", "commit", "date", "data", "steps", "metrics", "check")


def test_every_weight_ships_with_its_card_and_loads_as_plain_data():
    assert set(SHIPPED) <= set(weights.available())
    for name in weights.available():
        path = weights.path(name)
        state = torch.load(path, weights_only=True)  # refuses anything but tensors and plain data
        assert {"model", "kwargs", "config"} <= set(state)
        assert path.stat().st_size < 8e6, f"{name} is larger than a few MB"
        card = json.loads(path.with_suffix(".json").read_text())
        assert card["name"] == name and all(k in card for k in CARD_FIELDS), sorted(card)
        assert card["retrain"] == f"python scripts/train_pretrained.py {name}"


def test_an_unknown_weight_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no pretrained weight 'nonesuch'.*shipped: .*eqmotion-charged"):
        weights.load("nonesuch")


def test_pretrained_eqmotion_predicts_finite_trajectories_and_measures_what_its_card_says():
    from geomanip.motion import EqMotion
    from geomanip.motion.training import check_metrics

    model = EqMotion.pretrained("charged")
    past = torch.randn(3, 5, model.past_frames, 3)
    with torch.no_grad():
        out = model(past)
    assert out.shape == (3, 5, model.modes, model.future_frames, 3) and torch.isfinite(out).all()
    recorded = weights.card("eqmotion-charged")["check"]["metrics"]
    fresh = check_metrics(model, "charged")
    assert fresh == pytest.approx(recorded, rel=1e-4)
    # A trained network: far better than an untrained one of the same size on the check set.
    untrained = EqMotion(**weights.load("eqmotion-charged")["kwargs"]).eval()
    assert recorded["ade"] < 0.5 * check_metrics(untrained, "charged")["ade"]


def test_pretrained_policy_acts_and_measures_what_its_card_says():
    from geomanip.policies.pretrained import check_metrics, load_policy

    network, cfg = load_policy("RigidSliding-v0")
    assert cfg.task == "RigidSliding-v0" and cfg.policy == "hepi"
    obs = {k: np.zeros((2, *s.shape), dtype=np.float32) for k, s in network.observation_space.spaces.items()}
    actions, _ = network.predict(obs, deterministic=True)
    assert actions.shape == (2, *network.action_space.shape) and np.isfinite(actions).all()
    recorded = weights.card("hepi-RigidSliding-v0")["check"]["metrics"]
    fresh = check_metrics(network, "RigidSliding-v0")
    assert fresh["success"] == recorded["success"] and fresh["return"] == pytest.approx(recorded["return"], rel=1e-3)
    assert recorded["success"] >= 0.5  # a policy that works, as its card says


def test_evaluate_pretrained_from_the_command_line(tmp_path, capsys):
    video = tmp_path / "episode.gif"
    assert main(["evaluate", "--pretrained", "geomanip/RigidSliding-v0", "--episodes", "2", "--video", str(video)]) == 0
    assert "train_success" in capsys.readouterr().out and video.stat().st_size > 0
    assert main(["evaluate", "--pretrained", "RigidPushing-v0"]) == 2
    assert "no pretrained weight 'hepi-RigidPushing-v0'" in capsys.readouterr().err


def test_body_fit_without_a_checkpoint_says_what_to_do_while_no_arteq_ships(tmp_path, capsys):
    if "arteq" in weights.available():
        pytest.skip("an ArtEq weight ships; its own tests cover fitting")
    cloud = tmp_path / "cloud.npz"
    np.savez(cloud, points=np.random.default_rng(0).normal(size=(500, 3)))
    assert main(["body", "--action", "fit", "--input", str(cloud), "--output", str(tmp_path / "fit.obj")]) == 2
    err = capsys.readouterr().err
    assert "ships no pretrained ArtEq" in err and "pass --checkpoint" in err
