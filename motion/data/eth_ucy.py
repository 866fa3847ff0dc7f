"""ETH/UCY pedestrian trajectories: parsing, windows, leave-one-scene-out splits.

Format: whitespace-separated rows of at least 16 columns; column 1 is the frame, column 2 the agent id,
columns 14 and 16 the x and y position in metres (1-based). Frames are 0.4 s apart and numbered
consecutively. Files are ``*.txt`` or gzip-compressed ``*.txt.gz``. The package ships the five scenes
(``geomanip/assets/eth_ucy``, :func:`default_root`; its README gives the layout and provenance); any folder in
the same layout can be given instead.

A sample is a window of ``obs_len + pred_len`` consecutive frames (8 + 12) and a focal agent present in
all of them, together with the other agents present in all of them that are within ``radius`` metres of
the focal agent at the last observed frame (at most ``max_agents`` in all, nearest first). Every agent
that is complete in a window is the focal agent of one sample, so each pedestrian is predicted once per
window. Windows start at every frame (stride 1).

Samples per held-out test scene with these defaults (checked by the tests): eth 364, hotel 1,197,
univ 24,334, zara1 2,356, zara2 5,910. Training for the eth split, for scale: 30,307 samples.

Per-frame samples (``per_frame=True``, :func:`make_frame_samples`) are for training only: one sample per
start frame holding every agent complete in the window. A frame's focal-agent windows overlap heavily (in
the students files a window holds 12-18 agents on average, so each agent is computed that many times over);
a frame sample computes each agent once. For the eth split that is 3,283 samples of 30,307 agents (one per
window), against 30,307 windows of about 363,000 agents and 5.8 million agent pairs.
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SCENES",
    "TrajectoryWindows",
    "default_root",
    "file_stem",
    "load_scene_file",
    "load_split",
    "make_frame_samples",
    "make_windows",
    "scene_files",
]

# Test scene -> the source files that belong to it (excluded from training and validation).
SCENES = {
    "eth": ("biwi_eth",),
    "hotel": ("biwi_hotel",),
    "univ": ("students001", "students003"),
    "zara1": ("crowds_zara01",),
    "zara2": ("crowds_zara02",),
}


def default_root() -> Path:
    """The copy shipped inside the package (``geomanip/assets/eth_ucy``; ``assets/eth_ucy`` in a checkout)."""
    return Path(__file__).resolve().parents[2] / "assets" / "eth_ucy"


def scene_files(folder: Path) -> list[Path]:
    """The trajectory files (``*.txt`` and ``*.txt.gz``) of ``folder``, sorted by name."""
    return sorted([*folder.glob("*.txt"), *folder.glob("*.txt.gz")])


def file_stem(path: Path) -> str:
    """``biwi_eth`` for ``biwi_eth.txt`` and ``biwi_eth.txt.gz`` alike."""
    return path.name.removesuffix(".gz").removesuffix(".txt")


def load_scene_file(path: Path) -> np.ndarray:
    """Rows ``(frame, agent, x, y)`` of one file, ``[R, 4]`` float64, sorted by frame then agent.

    Raises ``ValueError`` naming the file and line of the first malformed row.
    """
    path = Path(path)
    rows = []
    with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 16:
                raise ValueError(f"{path}:{lineno}: expected at least 16 columns, found {len(parts)}")
            try:
                frame, agent, x, y = float(parts[0]), float(parts[1]), float(parts[13]), float(parts[15])
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: non-numeric frame, agent or position ({exc})") from None
            if not (np.isfinite(x) and np.isfinite(y)) or frame != int(frame) or agent != int(agent):
                raise ValueError(f"{path}:{lineno}: frame and agent must be integers and x, y finite")
            rows.append((frame, agent, x, y))
    if not rows:
        raise ValueError(f"{path}: no trajectory rows")
    arr = np.array(rows)
    return arr[np.lexsort((arr[:, 1], arr[:, 0]))]


@dataclass
class TrajectoryWindows:
    """Samples of one or more scenes.

    Attributes:
        trajectories: per sample, ``[n_agents, obs_len + pred_len, 2]`` float32 (focal agent first).
        sources: per sample, the file stem it came from.
    """

    trajectories: list[np.ndarray]
    sources: list[str]

    def __len__(self) -> int:
        return len(self.trajectories)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for s in self.sources:
            out[s] += 1
        return dict(out)


def _complete_paths(rows: np.ndarray, length: int):
    """For each start frame of one file's rows, the paths ``[A, length, 2]`` of the agents present in all
    ``length`` frames from it (agents in order of first appearance; start frames without any are skipped)."""
    tracks: dict[int, dict[int, np.ndarray]] = defaultdict(dict)
    for frame, agent, x, y in rows:
        tracks[int(agent)][int(frame)] = np.array([x, y])
    for start in np.unique(rows[:, 0].astype(int)):
        window = range(start, start + length)
        complete = [a for a, t in tracks.items() if all(f in t for f in window)]
        if complete:
            yield np.stack([np.stack([tracks[a][f] for f in window]) for a in complete])


def make_frame_samples(rows: np.ndarray, obs_len: int = 8, pred_len: int = 12) -> list[np.ndarray]:
    """One sample per start frame of one file's rows: every agent complete in the window, ``[A, L, 2]``."""
    return [paths.astype(np.float32) for paths in _complete_paths(rows, obs_len + pred_len)]


def make_windows(
    rows: np.ndarray, obs_len: int = 8, pred_len: int = 12, radius: float = 5.0, max_agents: int = 32
) -> list[np.ndarray]:
    """The samples (see the module docstring) of one file's rows."""
    samples = []
    for paths in _complete_paths(rows, obs_len + pred_len):
        last_obs = paths[:, obs_len - 1]
        for i in range(len(paths)):
            d = np.linalg.norm(last_obs - last_obs[i], axis=-1)
            order = [j for j in np.argsort(d, kind="stable") if j == i or d[j] <= radius]
            order.remove(i)
            chosen = [i] + order[: max_agents - 1]
            samples.append(paths[chosen].astype(np.float32))
    return samples


def load_split(
    scene: str,
    split: str,
    root: Path | None = None,
    obs_len: int = 8,
    pred_len: int = 12,
    radius: float = 5.0,
    max_agents: int = 32,
    per_frame: bool = False,
) -> TrajectoryWindows:
    """Samples of ``split`` (``"train"``, ``"val"`` or ``"test"``) for the held-out ``scene``.

    Train and val use every file of ``root/train`` or ``root/val`` except the held-out scene's own sources;
    test uses the scene's files in ``root/test``. ``root`` may be any folder in the same layout. With
    ``per_frame``, the samples are :func:`make_frame_samples` (the focal agent of each is meaningless).
    """
    if scene not in SCENES:
        raise ValueError(f"unknown ETH/UCY scene {scene!r}; expected one of {list(SCENES)}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    root = Path(root) if root is not None else default_root()
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(f"ETH/UCY folder {folder} does not exist")
    own = SCENES[scene]
    files = scene_files(folder)
    if split == "test":
        files = [f for f in files if file_stem(f) in own]
    else:
        files = [f for f in files if not any(file_stem(f) == f"{o}_{split}" for o in own)]
    if not files:
        raise FileNotFoundError(f"no {split} files for scene {scene!r} in {folder}")
    trajectories, sources = [], []
    for f in files:
        rows = load_scene_file(f)
        if per_frame:
            windows = make_frame_samples(rows, obs_len, pred_len)
        else:
            windows = make_windows(rows, obs_len, pred_len, radius, max_agents)
        trajectories += windows
        sources += [file_stem(f)] * len(windows)
    return TrajectoryWindows(trajectories, sources)
