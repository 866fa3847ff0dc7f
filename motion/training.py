"""Training and evaluation of trajectory models, read top to bottom; run through ``train.py motion``.

One process or several under ``torchrun`` (DistributedDataParallel: gloo on CPU, nccl on GPU; the global
batch is split evenly over processes). Progress bar, TensorBoard scalars (``losses/``, ``val/``,
``test/``), atomic checkpoints (``last.pt`` every epoch, ``best.pt`` on the best validation ADE; never
chosen on test data), resume from ``last.pt``, and at the end a ``summary.json`` of test metrics and a PNG
of predicted against true trajectories. Checkpoints hold tensors and plain data only and load with
``weights_only=True`` (:mod:`geomanip.runs`); a folder that already holds a run is refused unless resumed or
overwritten.

:func:`run` reads top to bottom: setup (:func:`find_processes`, :func:`prepare_data`, :func:`prepare_training`),
the epoch loop (:func:`train_epoch`, :func:`validate_and_checkpoint`), then :func:`evaluate_best_and_report`.

Models plug in through three small functions: :func:`build_model`, :func:`training_loss` (EqMotion: best-of-K
displacement; GeoTDM: the denoising loss returned by its ``forward``) and :func:`predict` (EqMotion: its
output; GeoTDM: K samples). GeoTDM validates on sampled trajectories (``avg_ade`` over K samples on N-body
data, ``min_ade`` on ETH/UCY; after each epoch only the first ``val_limit`` validation samples with ``val_steps``
DDIM steps, so that most of a budget goes to gradient steps) or, when unconditional, on a seeded denoising loss;
unconditional test runs add the generation scores of :mod:`geomanip.motion.generation_metrics`.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from geomanip import runs
from geomanip.motion.data.datasets import NBodyWindows, PedestrianWindows, SizeBatches, agent_counts, pad_collate
from geomanip.motion.data.eth_ucy import SCENES, load_split
from geomanip.motion.data.nbody import SYSTEMS, default_config, simulate, write_dataset
from geomanip.motion.data.nri import find_nri_splits
from geomanip.motion.data.rope import RopeWindows, load_rollouts, rope_splits
from geomanip.motion.eqmotion import EqMotion, radius_edges
from geomanip.motion.generation_metrics import generation_scores
from geomanip.motion.geotdm import GeoTDM
from geomanip.motion.geotdm_plots import plot_geotdm
from geomanip.motion.metrics import AVERAGE_METRICS, METRICS, best_of_k_loss, displacement_sums, sample_average_sums

__all__ = ["MotionConfig", "run"]

# The fields whose default (None) is the dataset's value, filled in by MotionConfig.resolved.
DATASET_DEFAULTS = ("past", "future", "modes", "edge_types")


@dataclass
class MotionConfig:
    """Settings of a motion training run (each field is a ``train.py motion`` option).

    :meth:`validate` checks them; :meth:`resolved` fills in the dataset's defaults of the fields left ``None``.
    """

    model: Literal["eqmotion", "geotdm"] = "eqmotion"
    """Model to train: eqmotion (deterministic prediction) or geotdm (trajectory diffusion)."""
    data: str = "charged"
    """Dataset: an N-body system (charged, springs, gravity), eth_ucy, or rope (rollouts of our rope tasks in
    --data-root, written by python -m geomanip.envs.rollouts)."""
    scene: str = "eth"
    """ETH/UCY held-out test scene (eth, hotel, univ, zara1, zara2)."""
    train_samples: Literal["windows", "frames"] = "windows"
    """ETH/UCY training samples: windows (one per focal agent with its neighbours within 5 m, like validation and
    test) or frames (one per start frame with every agent in it, each agent computed once instead of once per
    window it is in; needs --interaction-radius). Validation and test always use windows."""
    interaction_radius: float = 0.0
    """EqMotion: message passing only between agents at most this far apart at the last observed frame, in
    training and evaluation (0: between every two agents of a sample)."""
    data_root: str | None = None
    """Dataset folder: for N-body, where the splits are (written there first if missing; default data/<system>),
    or a folder of the NRI/EGNN .npy files (loc_train_<system>.npy, ...; geomanip.motion.data.nri); for ETH/UCY,
    a folder in the layout of the shipped copy, geomanip/assets/eth_ucy (the default); for rope, the folder of
    rollouts.npz (default data/rope_closing)."""
    train_size: int = 3000
    """N-body training systems, when the data is generated."""
    eval_size: int = 2000
    """N-body validation and test systems (each), when the data is generated."""
    past: int | None = None
    """Observed frames (not given: the dataset's, 10 for N-body, 8 for ETH/UCY)."""
    future: int | None = None
    """Predicted frames (not given: the dataset's, 20 for N-body, 12 for ETH/UCY)."""
    modes: int | None = None
    """Predictions (EqMotion) or samples (GeoTDM) per agent K (not given: 20 for ETH/UCY; N-body: 1, GeoTDM 5)."""
    hidden: int = 64
    """Invariant feature size."""
    channels: int = 64
    """Vector channels C (EqMotion; GeoTDM has one vector per agent and frame)."""
    layers: int = 4
    """Message-passing layers."""
    edge_types: int | None = None
    """Interaction categories (not given: the dataset's, 2 for N-body, 4 for ETH/UCY)."""
    epochs: int = 30
    """Training epochs."""
    batch_size: int = 100
    """Global batch size (split over processes)."""
    lr: float = 5e-4
    """Adam learning rate."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """Learning rate over the run: constant, or cosine (from --lr down to 0 over --epochs epochs of --epoch-batches
    batches; a --max-minutes budget that ends the run first leaves it part way)."""
    shuffle: bool = True
    """Shuffle training samples each epoch."""
    seed: int = 0
    """Random seed."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (cuda when available; under torchrun, each process's local GPU)."""
    out: str = "runs/motion"
    """Output folder: checkpoints, TensorBoard logs, summary.json, plot (refused if it already holds a run,
    unless --resume or --overwrite)."""
    resume: bool = False
    """Continue the run in out from last.pt; options not given are the saved run's (model, data, sizes)."""
    overwrite: bool = False
    """Replace the run in out: its checkpoints, logs, summary and plots are deleted first."""
    progress: bool = True
    """Show progress bars."""
    max_minutes: float = 0.0
    """Stop training after the epoch that passes this wall-clock budget (0: no budget)."""
    epoch_batches: int = 0
    """Batches per epoch (0: the whole training set); a smaller number validates more often on large data."""
    unconditional: bool = False
    """GeoTDM: generate whole windows (past + future frames) without conditioning (N-body data only)."""
    diffusion_steps: int = 1000
    """GeoTDM: diffusion steps T of the training schedule."""
    sample_steps: int = 50
    """GeoTDM: denoising steps when sampling for validation and test (DDIM; diffusion_steps: ancestral DDPM)."""
    eval_limit: int = 0
    """Validation and test samples evaluated (0: all); bounds GeoTDM's sampling cost on a CPU."""
    val_limit: int = 64
    """GeoTDM: validation samples sampled after each epoch, the first ones (0: as many as eval_limit allows);
    the test set is not affected."""
    val_steps: int = 5
    """GeoTDM: DDIM steps of the validation sampling after each epoch (0: sample_steps)."""
    prediction: Literal["eps", "x0"] = "eps"
    """GeoTDM: what the denoiser predicts, the noise (eps, the paper's) or the clean residual (x0)."""
    velocity_prior: bool = False
    """GeoTDM: add the constant-velocity extrapolation of the last two past frames to the learned prior."""

    def validate(self) -> None:
        """Refuse unknown choices and sizes that cannot be (a ``ValueError`` naming the option)."""
        if self.model not in ("eqmotion", "geotdm"):
            raise ValueError(f"unknown motion model {self.model!r}; available: eqmotion, geotdm")
        pedestrians = self.data == "eth_ucy"
        if self.unconditional and (self.model != "geotdm" or pedestrians):
            raise ValueError("--unconditional needs --model geotdm and an N-body dataset")
        if self.velocity_prior and (self.model != "geotdm" or self.unconditional):
            raise ValueError("--velocity-prior needs --model geotdm, conditional (it extrapolates the past frames)")
        if not pedestrians and self.data not in (*SYSTEMS, "rope"):
            raise ValueError(f"unknown motion dataset {self.data!r}; available: {', '.join(SYSTEMS)}, eth_ucy, rope")
        if pedestrians and self.scene not in SCENES:
            raise ValueError(f"unknown ETH/UCY scene {self.scene!r}; available: {', '.join(SCENES)}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"unknown --lr-schedule {self.lr_schedule!r}; available: constant, cosine")
        if self.train_samples not in ("windows", "frames"):
            raise ValueError(f"unknown --train-samples {self.train_samples!r}; available: windows, frames")
        if self.train_samples == "frames" and not (pedestrians and self.interaction_radius > 0):
            raise ValueError(
                "--train-samples frames needs --data eth_ucy and an --interaction-radius (a whole frame's crowd "
                "would otherwise be one complete graph)"
            )
        if self.interaction_radius < 0 or not math.isfinite(self.interaction_radius):
            raise ValueError(f"--interaction-radius must be finite and >= 0, got {self.interaction_radius}")
        if self.interaction_radius and self.model != "eqmotion":
            raise ValueError("--interaction-radius applies to --model eqmotion only")
        for name in DATASET_DEFAULTS:
            value = getattr(self, name)
            if value is not None and value < 1:
                option = "--" + name.replace("_", "-")
                raise ValueError(f"{option} must be positive, got {value} (leave it out for the dataset's default)")

    def resolved(self) -> MotionConfig:
        """A validated copy with the dataset's defaults filled in for the fields left ``None``."""
        self.validate()
        pedestrians = self.data == "eth_ucy"
        defaults = {
            "past": 8 if pedestrians else 10,
            "future": 12 if pedestrians else 20,
            "modes": 20 if pedestrians else 5 if self.model == "geotdm" else 1,
            "edge_types": 4 if pedestrians else 2,
        }
        given = {k: v for k, v in asdict(self).items() if not (k in DATASET_DEFAULTS and v is None)}
        return MotionConfig(**{**defaults, **given})


def load_datasets(cfg: MotionConfig) -> dict[str, Dataset]:
    if cfg.data == "eth_ucy":
        frames = cfg.train_samples == "frames"
        windows = {s: load_split(cfg.scene, s, cfg.data_root, cfg.past, cfg.future) for s in ("val", "test")}
        train = load_split(cfg.scene, "train", cfg.data_root, cfg.past, cfg.future, per_frame=frames)
        return {
            "train": PedestrianWindows(train, cfg.past, focal_only=not frames),
            **{s: PedestrianWindows(w, cfg.past) for s, w in windows.items()},
        }
    if cfg.data == "rope":
        splits = rope_splits(load_rollouts(cfg.data_root or Path("data") / "rope_closing"))
        return {s: RopeWindows(splits[s], cfg.past, cfg.future) for s in ("train", "val", "test")}
    root = Path(cfg.data_root or Path("data") / cfg.data)
    published = find_nri_splits(root) if root.is_dir() else None
    if published:
        return {s: NBodyWindows(published[s], cfg.past, cfg.future) for s in ("train", "val", "test")}
    if not all((root / f"{s}.npz").is_file() for s in ("train", "val", "test")):
        print(f"simulating the {cfg.data} dataset into {root} (once)")
        sizes = {"train": cfg.train_size, "val": cfg.eval_size, "test": cfg.eval_size}
        write_dataset(default_config(cfg.data), root, sizes, progress=cfg.progress)
    return {s: NBodyWindows(root / f"{s}.npz", cfg.past, cfg.future) for s in ("train", "val", "test")}


def build_model(cfg: MotionConfig) -> EqMotion | GeoTDM:
    if cfg.model == "geotdm":
        dim = 2 if cfg.data == "eth_ucy" else 3
        common = dict(diffusion_steps=cfg.diffusion_steps, dim=dim, prediction=cfg.prediction)
        if cfg.unconditional:
            return GeoTDM(0, cfg.past + cfg.future, cfg.hidden, cfg.layers, **common)
        return GeoTDM(cfg.past, cfg.future, cfg.hidden, cfg.layers, velocity_prior=cfg.velocity_prior, **common)
    return EqMotion(**eqmotion_kwargs(cfg))


def eqmotion_kwargs(cfg: MotionConfig) -> dict[str, int]:
    """EqMotion's constructor arguments for a resolved ``cfg`` (stored with shipped weights)."""
    return dict(
        past_frames=cfg.past,
        future_frames=cfg.future,
        hidden_channels=cfg.hidden,
        vector_channels=cfg.channels,
        num_layers=cfg.layers,
        edge_types=cfg.edge_types,
        modes=cfg.modes,
    )


# The fixed set on which a shipped N-body model's card records metrics (simulated with a seed of its own, so it
# is none of the training, validation or test systems; a test recomputes them from the shipped file).
CHECK_SYSTEMS, CHECK_SEED = 100, 12345


def check_metrics(model: EqMotion, system: str = "charged") -> dict[str, float]:
    """Displacement metrics of ``model`` on :data:`CHECK_SYSTEMS` freshly simulated ``system`` systems."""
    loc, _, _ = simulate(default_config(system), CHECK_SYSTEMS, seed=CHECK_SEED)
    windows = NBodyWindows(loc.astype(np.float32), model.past_frames, model.future_frames)
    cfg = MotionConfig(model="eqmotion", data=system, modes=model.modes)
    return evaluate(model, DataLoader(windows, 256, collate_fn=pad_collate), torch.device("cpu"), cfg)


def training_loss(cfg: MotionConfig, train_model: torch.nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """The model's training loss on a batch; ``train_model`` may be the DDP wrapper, so it is called directly."""
    if cfg.model == "geotdm":
        if cfg.unconditional:
            return train_model(torch.cat([batch["past"], batch["future"]], 2), None, batch["mask"])
        return train_model(batch["future"], batch["past"], batch["mask"])
    pred = train_model(batch["past"], batch["mask"], edge_index=interaction_edges(cfg, batch))
    return best_of_k_loss(pred, batch["future"], batch["mask"])


def interaction_edges(cfg: MotionConfig, batch: dict[str, Tensor]) -> Tensor | None:
    """EqMotion's graph for ``batch``: agents within ``cfg.interaction_radius`` at the last observed frame, or
    ``None`` (every pair) without a radius."""
    if not cfg.interaction_radius:
        return None
    return radius_edges(batch["past"][:, :, -1], batch["mask"], cfg.interaction_radius)


def predict(
    cfg: MotionConfig, model: torch.nn.Module, batch: dict[str, Tensor], generator: torch.Generator | None = None
) -> Tensor:
    """Predicted futures ``[B, N, K, T_f, D]`` (GeoTDM: K samples with ``sample_steps`` steps)."""
    if cfg.model == "geotdm":
        return model.sample(
            batch["past"], num_samples=cfg.modes, steps=cfg.sample_steps, noise=generator, mask=batch["mask"]
        )
    return model(batch["past"], batch["mask"], edge_index=interaction_edges(cfg, batch))


@torch.no_grad()
def unconditional_scores(model: GeoTDM, dataset: Dataset, cfg: MotionConfig, device: torch.device) -> dict[str, float]:
    """Generation scores of as many unconditional samples as ``dataset`` has windows (seeded)."""
    real = torch.stack([torch.cat([it["past"], it["future"]], 1) for it in (dataset[i] for i in range(len(dataset)))])
    generator = torch.Generator(device).manual_seed(0)
    generated = []
    for start in range(0, len(real), 256):
        b = min(256, len(real) - start)
        x = model.sample(
            n_agents=real.shape[1], horizon=real.shape[2], steps=cfg.sample_steps, noise=generator, batch_size=b
        )
        generated.append(x[:, :, 0].cpu())
    return generation_scores(real, torch.cat(generated), cfg.past)


def selection_key(cfg: MotionConfig) -> str:
    """The validation metric that selects ``best.pt`` (lower is better)."""
    if cfg.model == "geotdm":
        return "loss" if cfg.unconditional else "min_ade" if cfg.data == "eth_ucy" else "avg_ade"
    return "ade" if cfg.modes == 1 else "min_ade"


# What a run writes in its output folder: the checkpoints (resumed from the first), then the rest.
CHECKPOINTS = ("last.pt", "best.pt")
OUTPUTS = ("tb", "predictions.png", "generated.png", "sample.gif")
# What a resumed run must share with the saved one (the resolved values): the data and the network.
RESUME_KEYS = ("model", "data", "scene", "past", "future", "modes", "hidden", "channels", "layers", "edge_types",
               "unconditional", "diffusion_steps", "prediction", "velocity_prior", "interaction_radius",
               "train_samples")  # fmt: skip


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loader: DataLoader, device: torch.device, cfg: MotionConfig | None = None
) -> dict[str, float]:
    """Displacement metrics over ``loader``; GeoTDM's samples and losses are seeded, so reruns agree."""
    model.eval()
    cfg = cfg or MotionConfig()
    if cfg.model == "geotdm" and cfg.unconditional:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)
            losses = [
                (training_loss(cfg, model, {k: v.to(device) for k, v in b.items()}), len(b["past"])) for b in loader
            ]
        return {"loss": float(sum(v * n for v, n in losses) / max(sum(n for _, n in losses), 1))}
    generator = torch.Generator(device).manual_seed(0) if cfg.model == "geotdm" else None
    sums = dict.fromkeys([*METRICS, *(AVERAGE_METRICS if generator else ()), "count"], 0.0)
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        pred = predict(cfg, model, batch, generator)
        parts = [displacement_sums(pred, batch["future"], batch["eval_mask"])]
        if generator is not None:
            parts.append(sample_average_sums(pred, batch["future"], batch["eval_mask"]))
        for part in parts:
            for k, v in part.items():
                if k != "count":
                    sums[k] += v
        sums["count"] += parts[0]["count"]
    count = max(sums.pop("count"), 1.0)
    return {k: v / count for k, v in sums.items()}


def plot_predictions(
    model: torch.nn.Module, dataset: Dataset, device: torch.device, path: Path, cfg: MotionConfig | None = None
) -> None:
    """Past (grey), true future (green) and predicted future (orange; all modes) of a few test samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    model.eval()
    for ax, i in zip(axes, np.linspace(0, len(dataset) - 1, 3).astype(int), strict=True):
        item = pad_collate([dataset[int(i)]])
        with torch.no_grad():
            batch = {k: v.to(device) for k, v in item.items()}
            pred = predict(cfg or MotionConfig(), model, batch, None).cpu()[0]
        for a in range(item["past"].shape[1]):
            past, fut = item["past"][0, a], item["future"][0, a]
            ax.plot(past[:, 0], past[:, 1], color="0.5")
            ax.plot(fut[:, 0], fut[:, 1], color="tab:green")
            for k in range(pred.shape[1]):
                ax.plot(pred[a, k, :, 0], pred[a, k, :, 1], color="tab:orange", alpha=0.6, lw=0.8)
        ax.set_title(f"test sample {int(i)}")
        ax.set_aspect("equal")
    fig.suptitle("past (grey), true future (green), predicted (orange); x-y plane")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass
class Processes:
    """This process's place in a run: ``world`` processes under torchrun (1 without), ``rank`` among them."""

    world: int
    rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this process logs, evaluates and writes the run's files (rank 0)."""
        return self.rank == 0


@dataclass
class Data:
    """The datasets of a run and what iterates over them."""

    datasets: dict[str, Dataset]
    sampler: DistributedSampler | SizeBatches
    train: DataLoader
    val: DataLoader
    test: DataLoader
    test_set: Dataset  # the test samples evaluated (the first eval_limit)


@dataclass
class Training:
    """The model being trained, its optimiser and the counters a checkpoint saves (but the throughput ones)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_model: torch.nn.Module  # the model or its DistributedDataParallel wrapper
    start_epoch: int = 0
    step: int = 0
    best_val: float = math.inf
    history: list[float] = field(default_factory=list)
    samples: int = 0
    batch_seconds: float = 0.0


def run(cfg: MotionConfig) -> dict[str, float]:
    """Train, select on validation, test; returns the test metrics (on rank 0; empty dict elsewhere)."""
    cfg = cfg.resolved()
    procs = find_processes(cfg)
    # Every process checks the folder (a refusal must stop them all); only the first deletes with --overwrite.
    out = runs.prepare_output(cfg.out, cfg.resume, cfg.overwrite, CHECKPOINTS, OUTPUTS, clear=procs.main)
    ckpt = resumed_checkpoint(cfg, out, procs.device)
    if procs.world > 1:
        dist.init_process_group("nccl" if procs.device.type == "cuda" else "gloo")
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data = prepare_data(cfg, procs)
    training = prepare_training(cfg, procs, ckpt)
    writer = SummaryWriter(out / "tb", purge_step=training.step) if procs.main else None

    started = time.perf_counter()
    for epoch in range(training.start_epoch, cfg.epochs):
        if cfg.max_minutes and time.perf_counter() - started > 60 * cfg.max_minutes:
            break
        loss = train_epoch(cfg, training, data, epoch, procs, writer)
        if procs.main:
            validate_and_checkpoint(cfg, training, data.val, epoch, loss, procs.device, out, writer)
    train_seconds = time.perf_counter() - started

    result: dict[str, float] = {}
    if procs.main:
        result = evaluate_best_and_report(cfg, training, data, procs.device, out, writer, train_seconds)
    if procs.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


def find_processes(cfg: MotionConfig) -> Processes:
    """This process's rank and device (under torchrun, the local GPU); refuses a batch that does not split."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = runs.resolve_device(cfg.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} does not split over {world} processes")
    return Processes(world, rank, device)


def resumed_checkpoint(cfg: MotionConfig, out: Path, device: torch.device) -> dict | None:
    """With ``--resume``, the checkpoint continued (refused if saved with other data or network); else None."""
    if not cfg.resume:
        return None
    ckpt = runs.load_checkpoint(out / CHECKPOINTS[0], map_location=device)
    runs.check_resume(out / CHECKPOINTS[0], ckpt["config"], asdict(cfg), RESUME_KEYS)
    return ckpt


def prepare_data(cfg: MotionConfig, procs: Processes) -> Data:
    """The datasets (simulated first by rank 0 when missing) and their loaders; this process's share of training."""
    if procs.main:
        datasets = load_datasets(cfg)
    if procs.world > 1:
        dist.barrier()  # rank 0 may have simulated the data
    if not procs.main:
        datasets = load_datasets(cfg)
    if cfg.train_samples == "frames":
        # Frames hold 1 to about 60 agents: batches of similar sizes keep the padding small.
        sampler = SizeBatches(
            agent_counts(datasets["train"]),
            cfg.batch_size // procs.world,
            shuffle=cfg.shuffle,
            seed=cfg.seed,
            rank=procs.rank,
            world=procs.world,
        )
        train_loader = DataLoader(datasets["train"], batch_sampler=sampler, collate_fn=pad_collate)
    else:
        sampler = DistributedSampler(
            datasets["train"], procs.world, procs.rank, shuffle=cfg.shuffle, seed=cfg.seed, drop_last=True
        )
        train_loader = DataLoader(
            datasets["train"], cfg.batch_size // procs.world, sampler=sampler, collate_fn=pad_collate, drop_last=True
        )
    if len(train_loader) == 0:
        raise ValueError(f"the training set ({len(datasets['train'])} samples) is smaller than one batch")
    eval_sets = {s: datasets[s] for s in ("val", "test")}
    if cfg.eval_limit:
        eval_sets = {s: Subset(d, range(min(cfg.eval_limit, len(d)))) for s, d in eval_sets.items()}
    val_set = eval_sets["val"]
    if cfg.model == "geotdm" and cfg.val_limit:
        val_set = Subset(val_set, range(min(cfg.val_limit, len(val_set))))
    val_loader, test_loader = (eval_loader(cfg, d) for d in (val_set, eval_sets["test"]))
    return Data(datasets, sampler, train_loader, val_loader, test_loader, eval_sets["test"])


def eval_loader(cfg: MotionConfig, dataset: Dataset) -> DataLoader:
    """Batches of 256 for validation and test; on ETH/UCY, of windows of similar sizes (less padding; the
    metrics are sums over agents, so the grouping does not change them)."""
    if cfg.data == "eth_ucy":
        batches = SizeBatches(agent_counts(dataset), 256, shuffle=False)
        return DataLoader(dataset, batch_sampler=batches, collate_fn=pad_collate)
    return DataLoader(dataset, 256, collate_fn=pad_collate)


def prepare_training(cfg: MotionConfig, procs: Processes, ckpt: dict | None) -> Training:
    """The model and optimiser, from the resumed checkpoint if any; wrapped for DDP over several processes."""
    model = build_model(cfg).to(procs.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    training = Training(model, optimizer, model)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        training.start_epoch, training.best_val = ckpt["epoch"] + 1, ckpt["best_val"]
        training.step, training.history = ckpt["step"], ckpt["history"]
    if procs.world > 1:
        training.train_model = torch.nn.parallel.DistributedDataParallel(model)
    if cfg.model == "geotdm" and procs.world > 1:
        # Diffusion steps and noise come from the global generator: give each process its own draws (the
        # weights were already broadcast from rank 0, so this does not change the initialisation).
        torch.manual_seed(cfg.seed + procs.rank + training.step)
    return training


def train_epoch(
    cfg: MotionConfig, training: Training, data: Data, epoch: int, procs: Processes, writer: SummaryWriter | None
) -> Tensor:
    """One epoch (or its first ``epoch_batches`` batches) of optimiser steps; returns the last batch's loss."""
    data.sampler.set_epoch(epoch)
    training.train_model.train()
    bar = tqdm(
        data.train,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not (cfg.progress and procs.main),
        leave=False,
    )
    batches = len(data.train)
    for i, batch in enumerate(bar):
        if cfg.epoch_batches and i >= cfg.epoch_batches:
            break
        t0 = time.perf_counter()
        batch = {k: v.to(procs.device) for k, v in batch.items()}
        loss = training_loss(cfg, training.train_model, batch)
        for group in training.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, training.step, batches)
        training.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        training.optimizer.step()
        training.step += 1
        training.samples += cfg.batch_size
        training.batch_seconds += time.perf_counter() - t0
        if procs.main:
            writer.add_scalar("losses/train", loss.item(), training.step)
            writer.add_scalar("losses/lr", training.optimizer.param_groups[0]["lr"], training.step)
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return loss


def learning_rate(cfg: MotionConfig, step: int, batches: int) -> float:
    """The learning rate of optimiser step ``step`` (from 0) for a training loader of ``batches`` batches.

    A function of the step alone, so a resumed run continues the same schedule without saved state.
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    total = cfg.epochs * (min(batches, cfg.epoch_batches) if cfg.epoch_batches else batches)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))


def validate_and_checkpoint(
    cfg: MotionConfig,
    training: Training,
    val_loader: DataLoader,
    epoch: int,
    loss: Tensor,
    device: torch.device,
    out: Path,
    writer: SummaryWriter,
) -> None:
    """Validate after an epoch; write ``last.pt``, and ``best.pt`` when the selection metric improved."""
    val_cfg = replace(cfg, sample_steps=cfg.val_steps or cfg.sample_steps) if cfg.model == "geotdm" else cfg
    val = evaluate(training.model, val_loader, device, val_cfg)
    key = selection_key(cfg)
    for k, v in val.items():
        writer.add_scalar(f"val/{k}", v, training.step)
    training.history.append(float(val[key]))
    state = {
        "model": training.model.state_dict(),
        "optimizer": training.optimizer.state_dict(),
        "epoch": epoch,
        "step": training.step,
        "best_val": training.best_val,
        "history": training.history,
        "config": asdict(cfg),
    }
    if val[key] < training.best_val:
        training.best_val = state["best_val"] = float(val[key])
        runs.save_checkpoint(state, out / "best.pt")
    runs.save_checkpoint(state, out / "last.pt")
    if cfg.progress:
        best = training.best_val
        print(f"epoch {epoch + 1}: train loss {loss.item():.4f}, val {key} {val[key]:.4f} (best {best:.4f})")


def evaluate_best_and_report(
    cfg: MotionConfig,
    training: Training,
    data: Data,
    device: torch.device,
    out: Path,
    writer: SummaryWriter,
    train_seconds: float,
) -> dict[str, float]:
    """Test the validation-selected checkpoint; write the TensorBoard scalars, ``summary.json`` and plots."""
    model = training.model
    best = runs.load_checkpoint(out / "best.pt", map_location=device)
    model.load_state_dict(best["model"])
    result = evaluate(model, data.test, device, cfg)
    if cfg.model == "geotdm" and cfg.unconditional:
        result.update(unconditional_scores(model, data.test_set, cfg, device))
    for k, v in result.items():
        writer.add_scalar(f"test/{k}", v, training.step)
    writer.close()
    summary = {
        "config": asdict(cfg),
        "best_epoch": best["epoch"] + 1,
        "best_val": best["best_val"],
        "val_history": training.history,
        "steps": training.step,
        "test": result,
        "train_seconds": train_seconds,
        "train_samples_per_second": training.samples / max(training.batch_seconds, 1e-9),
        # The share of this process's training time spent in gradient steps (the rest: validation, checkpoints).
        "gradient_fraction": training.batch_seconds / max(train_seconds, 1e-9),
    }
    runs.write_json(out / "summary.json", summary)
    if cfg.model == "geotdm":
        plot_geotdm(model, data.datasets["test"], out, cfg.unconditional, cfg.modes, cfg.sample_steps, device)
    else:
        plot_predictions(model, data.datasets["test"], device, out / "predictions.png", cfg)
    return result
