"""Torch datasets of multi-agent trajectory windows, and a collate function that pads agents.

Every item is a dict with ``past [N, T_p, D]``, ``future [N, T_f, D]``, ``mask [N]`` (valid agents) and
``eval_mask [N]`` (agents that count in the metrics: all of them for N-body systems, the focal agent for
pedestrians). :func:`pad_collate` pads a batch to its largest ``N`` with masked-out agents.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from geomanip.motion.data.eth_ucy import TrajectoryWindows
from geomanip.motion.data.nri import load_nri_positions

__all__ = ["NBodyWindows", "PedestrianWindows", "pad_collate"]


class NBodyWindows(Dataset):
    """The first ``past + future`` frames of each system of a split.

    ``source`` is this project's ``.npz`` split (:mod:`~geomanip.motion.data.nbody`), an NRI/EGNN ``loc_*.npy``
    file (:mod:`~geomanip.motion.data.nri`), or positions ``[S, T, N, D]`` in memory (freshly simulated ones).
    """

    def __init__(self, source: Path | np.ndarray, past: int = 10, future: int = 20, limit: int | None = None) -> None:
        if isinstance(source, np.ndarray):
            loc, path = source, "positions"
            if loc.ndim != 4:
                raise ValueError(f"N-body positions must have shape [S, T, N, D], got {loc.shape}")
        else:
            loc = path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(
                    f"N-body split {path} does not exist (write it with python -m geomanip.motion.data.nbody)"
                )
            if path.suffix == ".npy":
                loc = load_nri_positions(path)
            else:
                with np.load(path, allow_pickle=False) as data:
                    if "loc" not in data or data["loc"].ndim != 4:
                        raise ValueError(f"{path}: expected an array 'loc' of shape [S, T, N, D]")
                    loc = data["loc"]
        if loc.shape[1] < past + future:
            raise ValueError(f"{path}: {loc.shape[1]} frames, fewer than past + future = {past + future}")
        loc = loc[:limit, : past + future].transpose(0, 2, 1, 3)  # [S, N, T, D]
        self.loc = torch.from_numpy(np.ascontiguousarray(loc, dtype=np.float32))
        self.past = past

    def __len__(self) -> int:
        return len(self.loc)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        traj = self.loc[i]
        n = traj.shape[0]
        ones = torch.ones(n, dtype=torch.bool)
        return {"past": traj[:, : self.past], "future": traj[:, self.past :], "mask": ones, "eval_mask": ones}


class PedestrianWindows(Dataset):
    """ETH/UCY samples (:class:`~geomanip.motion.data.eth_ucy.TrajectoryWindows`); the focal agent is evaluated."""

    def __init__(self, windows: TrajectoryWindows, past: int = 8) -> None:
        self.windows = windows
        self.past = past

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        traj = torch.from_numpy(self.windows.trajectories[i])
        n = traj.shape[0]
        eval_mask = torch.zeros(n, dtype=torch.bool)
        eval_mask[0] = True
        return {
            "past": traj[:, : self.past],
            "future": traj[:, self.past :],
            "mask": torch.ones(n, dtype=torch.bool),
            "eval_mask": eval_mask,
        }


def pad_collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items, padding the agent axis to the largest N with zeros and ``mask = False``."""
    n = max(it["past"].shape[0] for it in items)
    out = {}
    for key in items[0]:
        tensors = []
        for it in items:
            t = it[key]
            pad = n - t.shape[0]
            if pad:
                t = torch.cat([t, t.new_zeros((pad, *t.shape[1:]))])
            tensors.append(t)
        out[key] = torch.stack(tensors)
    return out
