import numpy as np
import pytest

from geomanip.envs.rollouts import collect, write_rollouts


def test_rollouts_round_trip_with_the_documented_layout(tmp_path):
    arrays = collect("RopeClosing-v0", episodes=2, policy="scripted", seed=0)
    path = write_rollouts(arrays, tmp_path / "rope_closing")
    data = np.load(path)
    pos = data["positions"]
    assert pos.shape == (2, 201, 40, 3) and pos.dtype == np.float32
    assert data["grippers"].shape == (2, 201, 2, 3) and data["actions"].shape == (2, 200, 4)
    assert data["success"].tolist() == [True, True] and data["seeds"].tolist() == [0, 1]
    assert float(data["dt"]) == pytest.approx(0.02) and str(data["task"]) == "RopeClosing-v0"
    assert np.isfinite(pos).all()
    # Agents are rope links in order: neighbouring midpoints are at most one link length (5 m / 40) apart
    # (less where the rope bends), and about that on average.
    gaps = np.linalg.norm(np.diff(pos, axis=2), axis=-1)
    assert gaps.max() < 0.125 * 1.05 and gaps.mean() > 0.11
    # The rope really moves: the ends travel round the hanger.
    assert np.linalg.norm(pos[:, -1, 0] - pos[:, 0, 0], axis=-1).min() > 1.0
    assert not list(tmp_path.glob("**/*.tmp"))


def test_smooth_random_rollouts_and_bad_arguments():
    arrays = collect("RopeShaping-v0", episodes=1, policy="smooth", seed=3)
    assert arrays["positions"].shape == (1, 201, 80, 3)
    steps = np.abs(np.diff(arrays["actions"][0], axis=0)).mean()
    assert steps < 0.2  # smooth: far smaller changes than uniform random actions (0.67 on average)
    with pytest.raises(ValueError, match="no rope"):
        collect("ClothHanging-v0", episodes=1)
    with pytest.raises(ValueError, match="policy"):
        collect("RopeClosing-v0", episodes=1, policy="greedy")
