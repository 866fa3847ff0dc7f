"""Rope rollouts of our own environments as multi-agent trajectories (each rope link is an agent).

The files come from ``python -m geomanip.envs.rollouts --task RopeClosing-v0 --episodes 100 --out data/rope_closing``
(``motion`` never imports ``envs``): ``<folder>/rollouts.npz`` with ``positions [S, T, N, 3]`` (S episodes,
T frames, N links, metres). Episodes are split by index, never inside an episode, so no window of a test
episode is seen in training: the first ``80%`` train, the next ``10%`` validation, the rest test (at least one
episode each). A sample is a window of ``past + future`` consecutive frames; windows start every ``stride``
frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["RopeWindows", "load_rollouts", "rope_splits"]

SPLITS = ("train", "val", "test")


def load_rollouts(folder: str | Path) -> np.ndarray:
    """``positions [S, T, N, 3]`` float32 of ``<folder>/rollouts.npz``, checked."""
    path = Path(folder) / "rollouts.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"rope rollouts {path} do not exist; write them with "
            f"python -m geomanip.envs.rollouts --task RopeClosing-v0 --episodes 100 --out {Path(folder)}"
        )
    try:
        with np.load(path) as data:
            positions = np.asarray(data["positions"], dtype=np.float32) if "positions" in data else None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable npz file ({exc})") from None
    if positions is None:
        raise ValueError(f"{path}: no 'positions' array (is it a file written by envs.rollouts?)")
    if positions.ndim != 4 or positions.shape[-1] != 3:
        raise ValueError(f"{path}: 'positions' must have shape [S, T, N, 3], got {list(positions.shape)}")
    if not np.isfinite(positions).all():
        raise ValueError(f"{path}: 'positions' contains NaN or inf")
    return positions


def rope_splits(positions: np.ndarray) -> dict[str, np.ndarray]:
    """Episodes of each split: 80% / 10% / 10% by index, at least one each (needs 3 episodes)."""
    S = len(positions)
    if S < 3:
        raise ValueError(f"rope rollouts: need at least 3 episodes for train/val/test, got {S}")
    n_val = n_test = max(1, S // 10)
    n_train = S - n_val - n_test
    return {
        "train": positions[:n_train],
        "val": positions[n_train : n_train + n_val],
        "test": positions[n_train + n_val :],
    }


class RopeWindows(Dataset):
    """Windows of ``past + future`` frames of rope episodes ``[S, T, N, 3]``, every ``stride`` frames."""

    def __init__(self, episodes: np.ndarray, past: int = 10, future: int = 20, stride: int = 5) -> None:
        T = episodes.shape[1]
        if T < past + future:
            raise ValueError(f"rope rollouts: {T} frames per episode, fewer than past + future = {past + future}")
        self.episodes = torch.from_numpy(np.ascontiguousarray(episodes.transpose(0, 2, 1, 3)))  # [S, N, T, 3]
        self.starts = [(s, t) for s in range(len(episodes)) for t in range(0, T - past - future + 1, stride)]
        self.past, self.length = past, past + future

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, t = self.starts[i]
        traj = self.episodes[s, :, t : t + self.length]
        ones = torch.ones(traj.shape[0], dtype=torch.bool)
        return {"past": traj[:, : self.past], "future": traj[:, self.past :], "mask": ones, "eval_mask": ones}
