"""N-body datasets in the NRI/EGNN ``.npy`` layout, the files the published charged and springs results used.

Layout of such a folder (as written by the NRI and EGNN data generators)::

    loc_train_<suffix>.npy    [S, T, D, N]  positions: systems, frames, coordinates, particles
    loc_valid_<suffix>.npy
    loc_test_<suffix>.npy
    vel_<split>_<suffix>.npy, charges_<split>_<suffix>.npy, edges_<split>_<suffix>.npy   (optional, unused)

``<suffix>`` names the system, for example ``charged5_initvel1`` or ``springs5``; a folder holds one system.
Note the axis order: coordinates come before particles, unlike this project's own ``.npz`` splits
(``loc [S, T, N, D]``, :mod:`geomanip.motion.data.nbody`). :func:`find_nri_splits` detects the layout by its
file names and :func:`load_nri_positions` returns positions in this project's order.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = ["NRI_SPLIT_NAMES", "find_nri_splits", "load_nri_positions"]

# This project's split names -> the NRI/EGNN file names' split tokens.
NRI_SPLIT_NAMES = {"train": "train", "val": "valid", "test": "test"}

_LOC = re.compile(r"^loc_(train|valid|test)_(.+)\.npy$")


def find_nri_splits(folder: Path) -> dict[str, Path] | None:
    """The ``loc`` files of ``folder`` by split (``train``, ``val``, ``test``), or ``None`` if it has none.

    Raises ``ValueError`` if the folder mixes several systems (suffixes) or lacks one of the three splits.
    """
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(Path(folder).glob("loc_*.npy")):
        match = _LOC.match(path.name)
        if match:
            found.setdefault(match.group(2), {})[match.group(1)] = path
    if not found:
        return None
    if len(found) > 1:
        systems = ", ".join(sorted(found))
        raise ValueError(f"{folder}: NRI/EGNN files of several systems ({systems}); keep one system per folder")
    suffix, files = next(iter(found.items()))
    missing = [f"loc_{token}_{suffix}.npy" for token in NRI_SPLIT_NAMES.values() if token not in files]
    if missing:
        raise ValueError(f"{folder}: NRI/EGNN layout without {', '.join(missing)}")
    return {split: files[token] for split, token in NRI_SPLIT_NAMES.items()}


def load_nri_positions(path: Path) -> np.ndarray:
    """Positions ``[S, T, N, D]`` float32 from an NRI/EGNN ``loc`` file (stored ``[S, T, D, N]``)."""
    loc = np.load(path, allow_pickle=False)
    if loc.ndim != 4 or loc.shape[2] not in (2, 3):
        raise ValueError(f"{path}: expected NRI/EGNN positions of shape [S, T, D, N] with D = 2 or 3, got {loc.shape}")
    return np.ascontiguousarray(loc.transpose(0, 1, 3, 2), dtype=np.float32)
