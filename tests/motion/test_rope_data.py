"""Rope rollouts of our environments as a motion dataset: written by ``envs.rollouts``, read by ``motion``."""

import json

import numpy as np
import pytest

from geomanip.envs.rollouts import collect, write_rollouts
from geomanip.motion.data.rope import RopeWindows, load_rollouts, rope_splits
from geomanip.motion.training import MotionConfig, run


@pytest.fixture(scope="module")
def rope_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rope")
    write_rollouts(collect("RopeClosing-v0", 5, policy="smooth", seed=0), folder)
    return folder


def test_windows_split_by_episode_and_keep_the_rope(rope_folder):
    positions = load_rollouts(rope_folder)
    S, T, N, _ = positions.shape
    assert (S, N) == (5, 40)
    splits = rope_splits(positions)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    data = RopeWindows(splits["test"], past=10, future=20, stride=5)
    assert len(data) == (T - 30) // 5 + 1
    item = data[1]
    assert item["past"].shape == (40, 10, 3) and item["future"].shape == (40, 20, 3)
    np.testing.assert_array_equal(item["past"][:, 0].numpy(), splits["test"][0, 5])  # window 1 starts at frame 5
    # Neighbouring links stay a link length apart: these are rope trajectories, not noise.
    gaps = np.linalg.norm(np.diff(item["future"].numpy(), axis=0), axis=-1)
    assert gaps.std() < 0.1 * gaps.mean()


def test_eqmotion_trains_on_rope_rollouts(rope_folder, tmp_path):
    cfg = MotionConfig(data="rope", data_root=str(rope_folder), out=str(tmp_path / "run"), epochs=1, progress=False)
    cfg.hidden, cfg.channels, cfg.layers, cfg.batch_size = 16, 8, 1, 32
    result = run(cfg)
    assert np.isfinite(result["ade"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["config"]["data"] == "rope"


def test_bad_rope_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m geomanip.envs.rollouts"):
        load_rollouts(tmp_path)
    (tmp_path / "rollouts.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="not a readable npz"):
        load_rollouts(tmp_path)
    np.savez(tmp_path / "rollouts.npz", positions=np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"\[S, T, N, 3\]"):
        load_rollouts(tmp_path)
    with pytest.raises(ValueError, match="at least 3 episodes"):
        rope_splits(np.zeros((2, 40, 4, 3), dtype=np.float32))
