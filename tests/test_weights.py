"""The pretrained weights shipped in the package: they load safely, run, and measure what their cards say."""

import json

import numpy as np
import pytest
import torch

from geomanip import weights
from geomanip.cli import main

SHIPPED = ("arteq", "eqmotion-charged", "hepi-RigidSliding-v0")
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
    out = capsys.readouterr().out
    assert "train_success" in out and "stochastic_unseen_success" in out and video.stat().st_size > 0
    assert main(["evaluate", "--pretrained", "RigidPushing-v0"]) == 2
    assert "no pretrained weight 'hepi-RigidPushing-v0'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def arteq():
    """The shipped ArtEq model, loaded once for the tests below (none of them changes it)."""
    from geomanip.motion.body.training import load_checkpoint, pretrained_checkpoint

    return load_checkpoint(pretrained_checkpoint())[0]


def test_pretrained_arteq_fits_an_arbitrarily_rotated_body_within_10_cm(arteq):
    from geomanip.kernels.rotation import random_rotation
    from geomanip.motion.body.data import generate
    from geomanip.motion.body.training import evaluate

    data = generate(arteq.body, 4, "test", seed=7)  # upright, shaped, posed bodies with 5,000 noisy points
    R = random_rotation(4, generator=torch.Generator().manual_seed(3), dtype=data["points"].dtype)
    rotated = dict(data)
    for key in ("points", "vertices", "joints"):
        rotated[key] = data[key] @ R.transpose(1, 2)  # the root joint is near the origin: rotate about it
    rotated["rotations"] = data["rotations"].clone()
    rotated["rotations"][:, 0] = R @ data["rotations"][:, 0]
    with torch.no_grad():
        metrics = evaluate(arteq.fit, rotated)
    assert metrics["v2v_cm"] < 10.0, metrics


def test_pretrained_arteq_measures_what_its_card_says(arteq):
    from geomanip.motion.body.training import check_metrics

    recorded = weights.card("arteq")["check"]["metrics"]
    with torch.no_grad():
        fresh = check_metrics(arteq)
    assert fresh == pytest.approx(recorded, rel=1e-3, abs=1e-3)


def test_body_fit_from_the_command_line_uses_the_shipped_arteq(arteq, tmp_path):
    import trimesh

    from geomanip.motion.body.data import generate

    scan = tmp_path / "scan.ply"
    trimesh.PointCloud(generate(arteq.body, 1, "test", seed=2)["points"][0].numpy()).export(scan)
    out = tmp_path / "fitted.obj"
    assert main(["body", "--action", "fit", "--input", str(scan), "--output", str(out)]) == 0
    mesh = trimesh.load(out, process=False)
    assert len(mesh.vertices) == arteq.body.v_template.shape[0] and np.isfinite(mesh.vertices).all()
