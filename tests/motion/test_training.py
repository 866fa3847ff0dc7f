import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from geomanip import runs
from geomanip.cli import main
from geomanip.motion.data.nbody import NBodyConfig, write_dataset
from geomanip.motion.training import MotionConfig, learning_rate, run
from tests.test_runs import folder_state

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(hidden=16, channels=8, layers=2, batch_size=16, progress=False)


@pytest.fixture(scope="module")
def charged(tmp_path_factory):
    root = tmp_path_factory.mktemp("charged")
    write_dataset(
        NBodyConfig(num_frames=30, sample_every=100), root, {"train": 128, "val": 64, "test": 64}, progress=False
    )
    return root


def test_training_lowers_validation_error_and_writes_its_outputs(charged, tmp_path):
    out = tmp_path / "run"
    cfg = MotionConfig(data_root=str(charged), out=str(out), epochs=8, lr=3e-3, **SMALL)
    result = run(cfg)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["ade"] == pytest.approx(result["ade"])
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file() and (out / "predictions.png").is_file()
    assert any((out / "tb").iterdir())
    # Training lowered the validation error: the selected epoch beats the first one.
    history = summary["val_history"]
    assert len(history) == 8 and summary["best_val"] == min(history) < history[0]
    baseline = _constant_position_ade(charged)
    assert result["ade"] < baseline, (result["ade"], baseline)


def test_pedestrian_training_on_frame_samples_validates_on_windows(tmp_path):
    # The hotel split trains on the other scenes' frames; validation and test stay focal-agent windows.
    out = tmp_path / "frames"
    kwargs = dict(hidden=8, channels=4, layers=1, modes=2, batch_size=32, epoch_batches=3, eval_limit=64)
    cfg = MotionConfig(
        data="eth_ucy", scene="hotel", train_samples="frames", interaction_radius=5.0, epochs=2, lr=3e-3,
        out=str(out), progress=False, **kwargs,
    )  # fmt: skip
    result = run(cfg)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and len(summary["val_history"]) == 2
    assert np.isfinite(result["min_ade"]) and result["min_ade"] <= result["ade"]
    # Resuming with another graph is refused (it is part of the model).
    with pytest.raises(ValueError, match="--interaction-radius 5.0 \\(not 3.0\\)"):
        run(MotionConfig(**{**asdict(cfg), "interaction_radius": 3.0, "resume": True, "epochs": 3}))


def test_cosine_learning_rate_decays_to_zero_over_the_epochs_given(charged, tmp_path):
    cfg = MotionConfig(lr=1e-3, lr_schedule="cosine", epochs=4, epoch_batches=5)
    assert [learning_rate(cfg, s, 8) for s in (0, 10, 20)] == pytest.approx([1e-3, 5e-4, 0.0])
    assert learning_rate(cfg, 10, 3) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 10 / 12)))  # 3 per epoch
    assert learning_rate(MotionConfig(lr=1e-3), 10, 8) == 1e-3
    out = tmp_path / "run"
    common = dict(data_root=str(charged), out=str(out), lr=1e-3, lr_schedule="cosine", **SMALL)
    run(MotionConfig(epochs=2, **common))  # 128 systems / 16: 8 steps per epoch; the schedule spans 2 epochs
    assert runs.load_checkpoint(out / "last.pt")["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
        1e-3 * 0.5 * (1 + np.cos(np.pi * 15 / 16))
    )
    with pytest.raises(ValueError, match="unknown --lr-schedule 'step'"):
        run(MotionConfig(lr_schedule="step", out=str(tmp_path / "x")))


def _constant_position_ade(root):
    from geomanip.motion.data.datasets import NBodyWindows

    ds = NBodyWindows(root / "test.npz")
    past, fut = ds.loc[:, :, :10], ds.loc[:, :, 10:]
    return float((fut - past[:, :, -1:]).norm(dim=-1).mean())


def test_resume_continues_the_step_count(charged, tmp_path):
    out = tmp_path / "run"
    run(MotionConfig(data_root=str(charged), out=str(out), epochs=2, **SMALL))
    steps_two = torch.load(out / "last.pt", weights_only=True)["step"]  # plain data: tensors, dicts, numbers
    run(MotionConfig(data_root=str(charged), out=str(out), epochs=3, resume=True, **SMALL))
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and last["step"] == steps_two * 3 // 2
    assert last["config"]["hidden"] == 16 and isinstance(last["best_val"], float)


def test_the_command_line_refuses_overwrites_and_resumes_the_saved_model_and_data(charged, tmp_path, capsys):
    out = tmp_path / "run"
    small = ["--hidden", "16", "--channels", "8", "--layers", "2", "--batch-size", "16", "--no-progress"]
    first = ["motion", "--data-root", str(charged), "--epochs", "1", "--out", str(out), *small]
    assert main(first) == 0
    capsys.readouterr()
    before = folder_state(out)
    assert main(first) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"geomanip: error: {out} already holds a run (last.pt, best.pt" in err
    assert "--resume" in err and "--overwrite" in err
    assert folder_state(out) == before
    with pytest.raises(FileExistsError, match="already holds a run"):
        run(MotionConfig(model="geotdm", data_root=str(charged), out=str(out), **SMALL))
    assert folder_state(out) == before

    # --resume without the model, data and sizes: the saved run's; given explicitly, others are refused.
    assert main(["motion", "--resume", "--epochs", "2", "--no-progress", "--out", str(out)]) == 0
    last = runs.load_checkpoint(out / "last.pt")
    assert last["epoch"] == 1 and last["config"]["data_root"] == str(charged) and last["config"]["hidden"] == 16
    assert main(["motion", "--resume", "--model", "geotdm", "--epochs", "3", "--out", str(out)]) == 2
    assert "saved with --model eqmotion (not geotdm)" in capsys.readouterr().err

    # --overwrite starts again.
    assert main([*first, "--overwrite"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["val_history"]) == 1 and runs.load_checkpoint(out / "last.pt")["epoch"] == 0


def test_a_checkpoint_holding_pickled_objects_is_refused(charged, tmp_path):
    out = tmp_path / "run"
    cfg = MotionConfig(data_root=str(charged), out=str(out), epochs=1, **SMALL)
    run(cfg)
    # As if written by code that pickled its configuration object instead of a dict.
    state = torch.load(out / "last.pt", weights_only=True)
    torch.save({**state, "config": cfg.resolved()}, out / "last.pt")
    with pytest.raises(ValueError, match=f"{out / 'last.pt'} is not a plain-data checkpoint.*geomanip.runs convert"):
        run(MotionConfig(data_root=str(charged), out=str(out), epochs=2, resume=True, **SMALL))
    runs.convert(out / "last.pt")
    run(MotionConfig(data_root=str(charged), out=str(out), epochs=2, resume=True, **SMALL))
    assert runs.load_checkpoint(out / "last.pt")["epoch"] == 1


def test_bad_arguments(charged, tmp_path):
    with pytest.raises(ValueError, match="unknown motion dataset"):
        run(MotionConfig(data="planets", out=str(tmp_path)))
    with pytest.raises(ValueError, match="unknown ETH/UCY scene"):
        run(MotionConfig(data="eth_ucy", scene="paris", out=str(tmp_path)))
    with pytest.raises(ValueError, match="--train-samples frames needs --data eth_ucy and an --interaction-radius"):
        run(MotionConfig(data="eth_ucy", train_samples="frames", out=str(tmp_path)))
    with pytest.raises(ValueError, match="--interaction-radius must be finite and >= 0"):
        run(MotionConfig(data="eth_ucy", interaction_radius=-1.0, out=str(tmp_path)))
    with pytest.raises(ValueError, match="--interaction-radius applies to --model eqmotion only"):
        run(MotionConfig(model="geotdm", interaction_radius=5.0, out=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run(MotionConfig(data_root=str(charged), out=str(tmp_path / "empty"), resume=True, **SMALL))
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "motion", "--data", "planets"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "unknown motion dataset" in result.stderr


def test_two_process_ddp_matches_one_process(charged, tmp_path):
    common = [
        "motion",
        "--data-root",
        str(charged),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--no-shuffle",
        "--hidden",
        "16",
        "--channels",
        "8",
        "--layers",
        "2",
        "--no-progress",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *common, "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            str(ROOT / "train.py"),
            *common,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 2 * (128 // 16)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5)


def test_training_on_the_published_npy_layout_matches_training_on_our_splits(charged, tmp_path):
    # The same systems written as NRI/EGNN files (loc_<split>_<suffix>.npy, [S, T, 3, N]) train identically.
    published = tmp_path / "published"
    published.mkdir()
    for split, token in (("train", "train"), ("val", "valid"), ("test", "test")):
        with np.load(charged / f"{split}.npz") as data:
            np.save(published / f"loc_{token}_charged5_initvel1.npy", data["loc"].transpose(0, 1, 3, 2))
            np.save(published / f"vel_{token}_charged5_initvel1.npy", data["vel"].transpose(0, 1, 3, 2))
    ours = run(MotionConfig(data_root=str(charged), out=str(tmp_path / "ours"), epochs=1, **SMALL))
    theirs = run(MotionConfig(data_root=str(published), out=str(tmp_path / "theirs"), epochs=1, **SMALL))
    assert ours == theirs and all(np.isfinite(v) for v in ours.values())
