"""N-body simulators (charged particles, springs, gravity) and the datasets written from them.

Each simulator integrates many independent systems at once (vectorised over systems) with leapfrog
(kick-drift-kick) in 3-D and records every ``sample_every``-th step. The charged setting follows the
NRI/EGNN/GeoTDM data: 5 particles, charges +-1 with p = 1/2, Coulomb forces clipped,
dt 0.001, a frame every 100 steps, 49 frames. Differences from that code, chosen for simplicity: no box
walls, and the force is clipped by its norm rather than per component. :class:`NBodyConfig` lists every
default.

Write datasets with ``python -m geomanip.motion.data.nbody --system charged --out data/charged``; each split is an
``.npz`` with ``loc [S, T, N, 3]``, ``vel [S, T, N, 3]`` and the system's parameters (``charges [S, N]``,
``springs [S, N, N]`` or ``masses [S, N]``).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

__all__ = ["NBodyConfig", "SYSTEMS", "default_config", "energy", "sample_parameters", "simulate", "write_dataset"]

SYSTEMS = ("charged", "springs", "gravity")


@dataclass(frozen=True)
class NBodyConfig:
    """Simulation settings; the defaults are the charged-particle setting of GeoTDM.

    Attributes:
        system: ``"charged"`` (Coulomb, charges +-1), ``"springs"`` (Hooke, random springs with
            probability 1/2) or ``"gravity"`` (Newton, masses ~ U(0.5, 1.5), softened).
        num_particles: particles per system (5 for charged and springs, 10 for gravity).
        dt: integration step.
        sample_every: integration steps between recorded frames.
        num_frames: recorded frames per system (the first is the initial state).
        loc_std: standard deviation of initial positions.
        vel_norm: norm of each initial velocity (random direction).
        strength: interaction strength (Coulomb constant, spring constant or G).
        max_force: forces are clipped to this norm (``None``: no clipping), as in the NRI/EGNN code.
        softening: gravity softening length.
    """

    system: str = "charged"
    num_particles: int = 5
    dt: float = 0.001
    sample_every: int = 100
    num_frames: int = 49
    loc_std: float = 1.0
    vel_norm: float = 0.5
    strength: float = 1.0
    max_force: float | None = 100.0
    softening: float = 0.1

    def __post_init__(self) -> None:
        if self.system not in SYSTEMS:
            raise ValueError(f"unknown system {self.system!r}; expected one of {SYSTEMS}")


def _forces(cfg: NBodyConfig, loc: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Forces ``[S, N, 3]`` on every particle; ``params`` are charges, spring matrices or masses."""
    diff = loc[:, :, None, :] - loc[:, None, :, :]  # x_i - x_j, [S, N, N, 3]
    dist2 = (diff**2).sum(-1)
    n = loc.shape[1]
    eye = np.eye(n, dtype=bool)[None]
    if cfg.system == "charged":
        qq = params[:, :, None] * params[:, None, :]
        inv3 = np.where(eye, 0.0, np.power(np.where(eye, 1.0, dist2), -1.5))
        f = cfg.strength * (qq * inv3)[..., None] * diff  # like charges repel
    elif cfg.system == "springs":
        f = -cfg.strength * params[..., None] * diff
    else:
        mm = params[:, :, None] * params[:, None, :]
        inv3 = np.where(eye, 0.0, np.power(dist2 + cfg.softening**2, -1.5))
        f = -cfg.strength * (mm * inv3)[..., None] * diff  # attraction
    force = f.sum(2)
    if cfg.max_force is not None:
        norm = np.linalg.norm(force, axis=-1, keepdims=True)
        force = force * np.minimum(1.0, cfg.max_force / np.maximum(norm, 1e-12))
    return force


def _masses(cfg: NBodyConfig, params: np.ndarray) -> np.ndarray:
    return params if cfg.system == "gravity" else np.ones(params.shape[:2])


def sample_parameters(cfg: NBodyConfig, num: int, rng: np.random.Generator) -> np.ndarray:
    """Charges ``[S, N]`` (+-1), symmetric 0/1 spring matrices ``[S, N, N]`` or masses ``[S, N]``."""
    n = cfg.num_particles
    if cfg.system == "charged":
        return rng.choice([-1.0, 1.0], size=(num, n))
    if cfg.system == "springs":
        upper = np.triu(rng.random((num, n, n)) < 0.5, 1)
        return (upper | upper.transpose(0, 2, 1)).astype(np.float64)
    return rng.uniform(0.5, 1.5, size=(num, n))


def simulate(
    cfg: NBodyConfig, num: int, seed: int, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate ``num`` systems; returns ``loc, vel [num, num_frames, N, 3]`` and the parameters."""
    rng = np.random.default_rng(seed)
    n = cfg.num_particles
    params = sample_parameters(cfg, num, rng)
    mass = _masses(cfg, params)[..., None]
    loc = rng.normal(0.0, cfg.loc_std, size=(num, n, 3))
    vel = rng.normal(size=(num, n, 3))
    vel *= cfg.vel_norm / np.linalg.norm(vel, axis=-1, keepdims=True)
    out_loc = np.empty((num, cfg.num_frames, n, 3))
    out_vel = np.empty_like(out_loc)
    out_loc[:, 0], out_vel[:, 0] = loc, vel
    acc = _forces(cfg, loc, params) / mass
    frames = range(1, cfg.num_frames)
    for frame in tqdm(frames, desc=f"{cfg.system} x{num}", disable=not progress):
        for _ in range(cfg.sample_every):
            vel += 0.5 * cfg.dt * acc
            loc += cfg.dt * vel
            acc = _forces(cfg, loc, params) / mass
            vel += 0.5 * cfg.dt * acc
        out_loc[:, frame], out_vel[:, frame] = loc, vel
    return out_loc, out_vel, params


def energy(cfg: NBodyConfig, loc: np.ndarray, vel: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Total energy of each system at each frame, ``[S, T]`` (kinetic + pairwise potential)."""
    mass = _masses(cfg, params)
    kinetic = 0.5 * (mass[:, None, :] * (vel**2).sum(-1)).sum(-1)
    diff = loc[:, :, :, None, :] - loc[:, :, None, :, :]
    dist = np.linalg.norm(diff, axis=-1)
    iu = np.triu_indices(loc.shape[2], 1)
    d = dist[:, :, iu[0], iu[1]]
    if cfg.system == "charged":
        pot = cfg.strength * (params[:, iu[0]] * params[:, iu[1]])[:, None] / d
    elif cfg.system == "springs":
        pot = 0.5 * cfg.strength * params[:, iu[0], iu[1]][:, None] * d**2
    else:
        mm = (params[:, iu[0]] * params[:, iu[1]])[:, None]
        pot = -cfg.strength * mm / np.sqrt(d**2 + cfg.softening**2)
    return kinetic + pot.sum(-1)


DEFAULT_SIZES = {"train": 3000, "val": 2000, "test": 2000}
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


def default_config(system: str) -> NBodyConfig:
    """The project's setting for ``system`` (gravity has 10 bodies)."""
    if system == "gravity":
        return NBodyConfig(system=system, num_particles=10, max_force=None)
    return NBodyConfig(system=system)


def write_dataset(
    cfg: NBodyConfig, out: Path, sizes: dict[str, int] | None = None, progress: bool = True
) -> dict[str, Path]:
    """Simulate and save the train/val/test splits as ``out/<split>.npz`` (seeded per split)."""
    sizes = sizes or DEFAULT_SIZES
    out.mkdir(parents=True, exist_ok=True)
    key = {"charged": "charges", "springs": "springs", "gravity": "masses"}[cfg.system]
    paths = {}
    for split, num in sizes.items():
        loc, vel, params = simulate(cfg, num, seed=SPLIT_SEEDS.get(split, 0), progress=progress)
        path = out / f"{split}.npz"
        tmp = out / f".{split}.tmp.npz"
        np.savez_compressed(
            tmp,
            loc=loc.astype(np.float32),
            vel=vel.astype(np.float32),
            **{key: params},
            config=np.array(repr(asdict(cfg))),
        )
        tmp.replace(path)
        paths[split] = path
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description="Simulate N-body datasets (train/val/test .npz).")
    parser.add_argument("--system", choices=SYSTEMS, default="charged")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default data/<system>)")
    parser.add_argument("--train", type=int, default=DEFAULT_SIZES["train"])
    parser.add_argument("--val", type=int, default=DEFAULT_SIZES["val"])
    parser.add_argument("--test", type=int, default=DEFAULT_SIZES["test"])
    args = parser.parse_args()
    cfg = default_config(args.system)
    out = args.out or Path("data") / args.system
    for split, path in write_dataset(cfg, out, {"train": args.train, "val": args.val, "test": args.test}).items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()
