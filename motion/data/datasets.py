"""Torch datasets of multi-agent trajectory windows, and a collate function that pads agents.

Every item is a dict with ``past [N, T_p, D]``, ``future [N, T_f, D]``, ``mask [N]`` (valid agents) and
``eval_mask [N]`` (agents that count in the metrics: all of them for N-body systems, the focal agent for
pedestrians). :func:`pad_collate` pads a batch to its largest ``N`` with masked-out agents;
:class:`SizeBatches` groups samples of similar ``N`` so that the padding stays small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from geomanip.motion.data.eth_ucy import TrajectoryWindows
from geomanip.motion.data.nri import load_nri_positions

__all__ = ["NBodyWindows", "PedestrianWindows", "SizeBatches", "agent_counts", "pad_collate"]


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
    """ETH/UCY samples (:class:`~geomanip.motion.data.eth_ucy.TrajectoryWindows`); the focal agent is evaluated
    (every agent with ``focal_only=False``, for per-frame samples)."""

    def __init__(self, windows: TrajectoryWindows, past: int = 8, focal_only: bool = True) -> None:
        self.windows = windows
        self.past = past
        self.focal_only = focal_only

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        traj = torch.from_numpy(self.windows.trajectories[i])
        n = traj.shape[0]
        eval_mask = torch.zeros(n, dtype=torch.bool)
        eval_mask[: 1 if self.focal_only else n] = True
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


def agent_counts(dataset: Dataset) -> list[int]:
    """The number of agents ``N`` of each item of ``dataset``."""
    return [dataset[i]["past"].shape[0] for i in range(len(dataset))]


class SizeBatches(Sampler[list[int]]):
    """Batches of indices whose samples have similar agent counts (a batch sampler for ``DataLoader``).

    :func:`pad_collate` pads a batch to its largest sample, so a batch that mixes a 50-agent crowd with
    lone walkers computes mostly padding: grouping by size removes that cost. With ``shuffle`` (training),
    each epoch shuffles the indices (seeded by ``seed`` and the epoch, :meth:`set_epoch`), sorts them by
    size within pools of ``pool`` batches (so sizes are grouped but a batch is still a random draw from its
    size range), cuts them into batches of ``batch_size``, drops an incomplete last batch of a pool when
    ``drop_last``, shuffles the batches and gives process ``rank`` of ``world`` every ``world``-th batch.
    Without ``shuffle`` (evaluation): the indices sorted by size, in batches, every index once.
    """

    def __init__(
        self,
        sizes: list[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        pool: int = 50,
        drop_last: bool = True,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if batch_size < 1 or pool < 1:
            raise ValueError(f"batch_size and pool must be positive, got {batch_size} and {pool}")
        self.sizes = np.asarray(sizes)
        self.batch_size, self.shuffle, self.seed, self.pool = batch_size, shuffle, seed, pool
        self.drop_last, self.rank, self.world = drop_last, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batch_slices(self) -> list[tuple[int, int]]:
        """Where each batch lies in an epoch's order (pools sorted by size), before the batches are shuffled.

        The same every epoch: only the pool sizes decide it, so :meth:`__len__` counts it without drawing.
        """
        n, span = len(self.sizes), self.batch_size * self.pool
        slices = []
        for start in range(0, n, span):
            stop = min(start + span, n)
            for i in range(start, stop, self.batch_size):
                end = min(i + self.batch_size, stop)
                if end - i == self.batch_size or not self.drop_last:
                    slices.append((i, end))
        return slices

    def _batches(self) -> list[list[int]]:
        if not self.shuffle:
            order = np.argsort(self.sizes, kind="stable")
            return [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.sizes))
        span = self.batch_size * self.pool
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            order[start : start + span] = chunk[np.argsort(self.sizes[chunk], kind="stable")]
        batches = [order[i:end].tolist() for i, end in self._batch_slices()]
        rng.shuffle(batches)
        batches = batches[: len(batches) - len(batches) % self.world]  # as many for every process
        return batches[self.rank :: self.world]

    def __iter__(self):
        return iter(self._batches())

    def __len__(self) -> int:
        if not self.shuffle:
            return -(-len(self.sizes) // self.batch_size)
        return len(self._batch_slices()) // self.world
