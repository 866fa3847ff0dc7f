"""Train, evaluate and apply body-fitting models; run through ``python train.py body``.

    python train.py body                                          # train ArtEq, evaluate on the test sets
    python train.py body --model pointnet --out runs/body_pointnet  # the non-equivariant baseline
    python train.py body --action evaluate --checkpoint runs/body/best.pt
    python train.py body --action fit --checkpoint runs/body/best.pt --input scan.ply --output fitted.obj

Training data is generated on the fly from the body model (:mod:`geomanip.motion.body.data`; a fresh batch each
step, deterministic in the seed); validation and test sets are fixed samples. Progress bar, TensorBoard
scalars (``losses/``, ``val/``, ``test_*/``), atomic checkpoints (``last.pt`` at each validation, ``best.pt`` on the
best validation V2V; never chosen on test data), resume from ``last.pt``, ``summary.json`` at the end.
Checkpoints hold tensors and plain data only and load with ``weights_only=True`` (:mod:`geomanip.runs`); a
folder that already holds a run is refused unless resumed or overwritten.

:func:`run` checks the options (:meth:`BodyConfig.validate`), then fits a file (:func:`fit_file`), evaluates a
checkpoint (:func:`evaluate_checkpoint`) or trains (:func:`train`: setup, :func:`train_loop` of :func:`train_step`
and :func:`validate_and_checkpoint`, then :func:`evaluate_best_and_report`).

Metrics (:func:`evaluate`): ``v2v_cm`` (mean vertex-to-vertex distance, cm), ``joint_cm`` (mean joint
distance, cm), ``part_acc`` (part-label accuracy of the kept points), ``orient_deg`` (mean angle of the
global-orientation error), ``ms_per_body`` (inference wall-clock time) and ``cpu_ms_per_body`` (its CPU time).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from geomanip import runs, weights
from geomanip.motion.body.arteq import ArtEq, arteq_loss
from geomanip.motion.body.baselines import PointNetRegressor, fit_by_optimisation
from geomanip.motion.body.data import generate
from geomanip.motion.body.model import BodyModel, load_body_model

__all__ = [
    "BodyConfig",
    "build_model",
    "evaluate",
    "evaluate_checkpoint",
    "load_checkpoint",
    "load_points",
    "fit_file",
    "run",
    "train",
]

PRETRAINED = "arteq"
"""The name of the shipped ArtEq weight (:mod:`geomanip.weights`)."""

TEST_SPLITS = ("test", "test_orient", "test_pose")


@dataclass
class BodyConfig:
    """Settings of a body-fitting run (each field is a ``train.py body`` option), checked by :meth:`validate`."""

    action: Literal["train", "evaluate", "fit"] = "train"
    """train (then evaluate on the test sets), evaluate a checkpoint, or fit a file with a checkpoint."""
    model: Literal["arteq", "pointnet"] = "arteq"
    """Model to train: arteq or the pointnet baseline."""
    body_model: str | None = None
    """SMPL-format body-model file (default: $GEOMANIP_SMPL, else the shipped assets/body model)."""
    steps: int = 600
    """Optimiser steps (each on a freshly generated batch)."""
    batch_size: int = 4
    """Bodies per step."""
    lr: float = 2e-3
    """Adam learning rate (cosine decay to a twentieth of it over the steps)."""
    cloud_points: int = 5000
    """Points sampled on each body's surface."""
    noise: float = 0.005
    """Standard deviation (m) of the noise added to each point."""
    num_points: int = 128
    """Points the network keeps from each cloud (an evenly strided subset; pointnet uses 4x as many)."""
    neighbours: int = 8
    """ArtEq: k of the k-nearest-neighbour graph."""
    channels: int = 32
    """ArtEq: feature channels per rotation; pointnet: a quarter of its global width."""
    layers: int = 2
    """ArtEq: residual convolution layers."""
    refine: bool = True
    """ArtEq: correct each part's rotation from the cloud seen in its estimated frame."""
    val_size: int = 16
    """Validation bodies (in-distribution)."""
    test_size: int = 32
    """Bodies in each test set (test, test_orient, test_pose)."""
    eval_every: int = 100
    """Steps between validations (and checkpoints)."""
    seed: int = 0
    """Random seed (model initialisation and training data)."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (cuda when available)."""
    out: str = "runs/body"
    """Output folder: checkpoints, TensorBoard logs, summary.json (refused if it already holds a run, unless
    --resume or --overwrite)."""
    resume: bool = False
    """Continue the run in out from last.pt; options not given are the saved run's (model, sizes)."""
    overwrite: bool = False
    """Replace the run in out: its checkpoints, logs and summary are deleted first."""
    init: str | None = None
    """Start training from the weights of this checkpoint (fine-tuning; layers it lacks, such as a
    refinement added later, keep their initialisation). A fresh optimiser and schedule; ignored with --resume."""
    progress: bool = True
    """Show a progress bar."""
    max_minutes: float = 0.0
    """Stop training at the first validation after this wall-clock budget (0: no budget)."""
    checkpoint: str | None = None
    """evaluate/fit: a best.pt or last.pt written by training (not given: the ArtEq weights shipped with the
    package, when this version has them)."""
    refine_steps: int = 0
    """evaluate/fit: Adam steps on the Chamfer distance to the cloud after the network's prediction (much
    slower, more accurate; BENCHMARKS.md, body fitting)."""
    input: str | None = None
    """fit: a point cloud or mesh file (ply, obj, npz with a 'points' array), metres."""
    output: str | None = None
    """fit: where to write the fitted mesh (obj or ply); its parameters go next to it as .npz."""

    def validate(self) -> None:
        """Refuse unknown choices, an action without its files and sizes that cannot be (a ``ValueError``)."""
        if self.action not in ("train", "evaluate", "fit"):
            raise ValueError(f"unknown action {self.action!r}; available: train, evaluate, fit")
        if self.model not in ("arteq", "pointnet"):
            raise ValueError(f"unknown body model {self.model!r}; available: arteq, pointnet")
        if self.action == "fit" and not (self.input and self.output):
            raise ValueError("--action fit needs --input and --output")
        if self.refine_steps < 0:
            raise ValueError(f"--refine-steps must be 0 or positive, got {self.refine_steps}")
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("--steps, --batch-size and --eval-every must be positive")


def build_model(cfg: BodyConfig, body: BodyModel) -> nn.Module:
    if cfg.model == "arteq":
        return ArtEq(body, cfg.num_points, cfg.neighbours, cfg.channels, cfg.layers, refine=cfg.refine)
    if cfg.model == "pointnet":
        return PointNetRegressor(body, 4 * cfg.num_points, 8 * cfg.channels)
    raise ValueError(f"unknown body model {cfg.model!r}; available: arteq, pointnet")


# What a training run writes in its output folder: the checkpoints (resumed from the first), then the rest.
CHECKPOINTS = ("last.pt", "best.pt")
OUTPUTS = ("tb",)
# What a resumed run must share with the saved one: the network.
RESUME_KEYS = ("model", "num_points", "neighbours", "channels", "layers", "refine")


def rotation_angle(a: Tensor, b: Tensor) -> Tensor:
    """Angle (radians) of ``a^T b`` for rotation matrices ``[..., 3, 3]``."""
    cos = ((a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return cos.clamp(-1, 1).acos()


@torch.no_grad()
def evaluate(
    fit: callable, data: dict[str, Tensor], batch_size: int = 16, device: torch.device | None = None
) -> dict[str, float]:
    """Metrics of ``fit(points) -> output dict`` on generated ``data`` (see the module docstring)."""
    device = device or torch.device("cpu")
    sums = {"v2v_cm": 0.0, "joint_cm": 0.0, "orient_deg": 0.0, "part_acc": 0.0}
    seconds, cpu_seconds, n, has_parts = 0.0, 0.0, len(data["points"]), False
    for s in range(0, n, batch_size):
        batch = {k: v[s : s + batch_size].to(device) for k, v in data.items()}
        t0, c0 = time.perf_counter(), time.process_time()
        out = fit(batch["points"])
        seconds += time.perf_counter() - t0
        cpu_seconds += time.process_time() - c0
        sums["v2v_cm"] += 100 * (out["vertices"] - batch["vertices"]).norm(dim=-1).mean(1).sum().item()
        sums["joint_cm"] += 100 * (out["joints"] - batch["joints"]).norm(dim=-1).mean(1).sum().item()
        angle = rotation_angle(out["global_orient"], batch["rotations"][:, 0])
        sums["orient_deg"] += math.degrees(angle.sum().item())
        if "part_logits" in out:
            has_parts = True
            labels = torch.gather(batch["labels"], 1, out["sample_index"])
            sums["part_acc"] += (out["part_logits"].argmax(-1) == labels).float().mean(1).sum().item()
    metrics = {k: v / n for k, v in sums.items()}
    if not has_parts:
        metrics.pop("part_acc")
    metrics["ms_per_body"] = 1000 * seconds / n
    # CPU time of this process: on a shared machine it tracks the work done better than wall-clock time.
    metrics["cpu_ms_per_body"] = 1000 * cpu_seconds / n
    return metrics


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, BodyConfig]:
    """The model of a training checkpoint (eval mode) and its config (see :func:`geomanip.runs.load_checkpoint`
    for the files refused)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p}; train one with `python train.py body`")
    ckpt = runs.load_checkpoint(p, map_location=device)
    if "model" not in ckpt or not isinstance(ckpt.get("config"), dict):
        raise ValueError(f"{p} is not a checkpoint written by `python train.py body`")
    # Checkpoints written before the refinement existed have no such field (and no such weights).
    cfg = BodyConfig(**{"refine": False, **ckpt["config"]})
    model = build_model(cfg, load_body_model(cfg.body_model)).to(device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:  # missing or unexpected weights: written by another version of the network
        raise ValueError(
            f"{p} was written by an older or different {cfg.model} network than this code builds; retrain it "
            f"with `python train.py body --model {cfg.model}` ({str(exc).splitlines()[0]})"
        ) from exc
    return model.eval(), cfg


def load_points(path: str | os.PathLike, num_points: int = 5000, seed: int = 0) -> Tensor:
    """A point cloud ``[P, 3]`` (float32) from a mesh or cloud file.

    npz: the ``points`` array (or the only array). ply/obj/off/stl (through trimesh): a mesh is sampled
    uniformly by area (``num_points`` points); a file without faces is used as a cloud.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no input file at {p}")
    if p.suffix == ".npz":
        with np.load(p) as z:
            if "points" in z:
                pts = z["points"]
            elif len(z.files) == 1:
                pts = z[z.files[0]]
            else:
                raise ValueError(f"{p}: expected a 'points' array, found {z.files}")
    else:
        import trimesh

        try:
            geom = trimesh.load(p, process=False)
        except Exception as exc:
            raise ValueError(f"{p}: trimesh could not read it ({type(exc).__name__}: {exc})") from exc
        if isinstance(geom, trimesh.Scene):
            geom = geom.to_geometry() if hasattr(geom, "to_geometry") else geom.dump(concatenate=True)
        if isinstance(geom, trimesh.Trimesh) and len(geom.faces):
            pts, _ = trimesh.sample.sample_surface(geom, num_points, seed=seed)
        else:
            pts = np.asarray(geom.vertices)
    pts = np.asarray(pts, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 16:
        raise ValueError(f"{p}: expected at least 16 points of shape [P, 3], got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError(f"{p}: the points hold NaN or inf")
    return torch.from_numpy(pts)


def fitter(model: nn.Module, refine_steps: int = 0, lr: float = 0.01) -> callable:
    """``points [B, P, 3] -> fit dict``: the network's prediction, then ``refine_steps`` Adam steps on the
    Chamfer distance from it (:func:`~geomanip.motion.body.baselines.fit_by_optimisation`; its output has no part
    labels)."""
    if refine_steps < 0:
        raise ValueError(f"refine_steps must be 0 or positive, got {refine_steps}")
    if refine_steps == 0:
        return model.fit

    def fit(points: Tensor) -> dict[str, Tensor]:
        return fit_by_optimisation(model.body, points, iters=refine_steps, lr=lr, init=model.fit(points))

    return fit


def fit_file(
    checkpoint: str, input_path: str, output_path: str, device: str = "cpu", refine_steps: int = 0
) -> dict[str, float]:
    """Fit the body model to a file with a trained model; writes the mesh and an ``.npz`` of parameters."""
    import trimesh

    model, cfg = load_checkpoint(checkpoint, device)
    points = load_points(input_path, cfg.cloud_points).to(device)
    out = fitter(model, refine_steps)(points[None])
    verts = out["vertices"][0].cpu().numpy()
    mesh = trimesh.Trimesh(verts, model.body.faces.cpu().numpy(), process=False)
    dst = Path(output_path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(dst)
    np.savez(
        dst.with_suffix(".npz"),
        rotations=out["rotations"][0].cpu().numpy(),
        betas=out["betas"][0].cpu().numpy(),
        transl=out["transl"][0].cpu().numpy(),
        joints=out["joints"][0].cpu().numpy(),
    )
    d = torch.cdist(points[None], out["vertices"]).min(-1).values
    return {"points": float(len(points)), "mean_point_to_vertex_cm": 100 * d.mean().item()}


def _test_sets(cfg: BodyConfig, body: BodyModel) -> dict[str, dict[str, Tensor]]:
    return {
        s: generate(body, cfg.test_size, s, seed=2, num_points=cfg.cloud_points, noise=cfg.noise) for s in TEST_SPLITS
    }


@dataclass
class Training:
    """The network being trained, its optimiser and schedule, and the counters a checkpoint saves."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    step: int = 0
    best_val: float = math.inf
    history: list[dict] = field(default_factory=list)


def run(cfg: BodyConfig) -> dict[str, dict[str, float]]:
    """Run ``cfg.action``; returns metrics per test set (train, evaluate) or fit statistics (fit)."""
    cfg.validate()
    device = runs.resolve_device(cfg.device)
    if cfg.action == "train":
        return train(cfg, device)
    if cfg.checkpoint is None:
        cfg = replace(cfg, checkpoint=str(pretrained_checkpoint()))
    if cfg.action == "fit":
        return {"fit": fit_file(cfg.checkpoint, cfg.input, cfg.output, str(device), cfg.refine_steps)}
    return evaluate_checkpoint(cfg, device)


# The fixed bodies on which a shipped network's card records metrics (a seed of their own, apart from training,
# validation and test bodies; a test recomputes them from the shipped file).
CHECK_BODIES, CHECK_SEED = 8, 12345


def check_metrics(model: nn.Module, split: str = "test_orient") -> dict[str, float]:
    """Errors of ``model`` on :data:`CHECK_BODIES` bodies of ``split`` (default: any orientation), without timings."""
    cfg = BodyConfig()
    data = generate(model.body, CHECK_BODIES, split, seed=CHECK_SEED, num_points=cfg.cloud_points, noise=cfg.noise)
    metrics = evaluate(fitter(model), data)
    return {k: v for k, v in metrics.items() if "ms_per_body" not in k}


def pretrained_checkpoint() -> Path:
    """The ArtEq checkpoint shipped with the package (what ``evaluate`` and ``fit`` use without ``--checkpoint``)."""
    try:
        return weights.path(PRETRAINED)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"no --checkpoint given, and this version ships no pretrained ArtEq ({exc}); pass --checkpoint, a "
            "best.pt written by `geomanip body`"
        ) from None


def evaluate_checkpoint(cfg: BodyConfig, device: torch.device) -> dict[str, dict[str, float]]:
    """Metrics of ``cfg.checkpoint`` (with ``cfg.refine_steps``) on each test set."""
    model, _ = load_checkpoint(cfg.checkpoint, device)
    tests = _test_sets(cfg, model.body)
    fit = fitter(model, cfg.refine_steps)
    return {s: evaluate(fit, d, device=device) for s, d in tests.items()}


def train(cfg: BodyConfig, device: torch.device) -> dict[str, dict[str, float]]:
    """Train, select on validation, test; returns the metrics per test set."""
    start = init_model(cfg, device)  # read before --overwrite may delete it (it can be in the output folder)
    out = runs.prepare_output(cfg.out, cfg.resume, cfg.overwrite, CHECKPOINTS, OUTPUTS)
    ckpt = resumed_checkpoint(cfg, out, device)
    torch.manual_seed(cfg.seed)
    body = load_body_model(cfg.body_model)
    training = prepare_training(cfg, body, device, start, ckpt)
    val = generate(body, cfg.val_size, "test", seed=1, num_points=cfg.cloud_points, noise=cfg.noise)
    writer = SummaryWriter(out / "tb", purge_step=training.step)
    print(f"{cfg.model}: {_parameters(training.model):,} parameters; body model {body.source}")
    train_seconds = train_loop(cfg, training, body, val, device, out, writer)
    return evaluate_best_and_report(cfg, training, body, device, out, writer, train_seconds)


def init_model(cfg: BodyConfig, device: torch.device) -> nn.Module | None:
    """The network of ``--init`` (a fresh run only), refused if it is another model; else None."""
    if not cfg.init or cfg.resume:
        return None
    start, start_cfg = load_checkpoint(cfg.init, device)
    if start_cfg.model != cfg.model:
        raise ValueError(f"--init: {cfg.init} is a {start_cfg.model} network, not {cfg.model}")
    return start


def resumed_checkpoint(cfg: BodyConfig, out: Path, device: torch.device) -> dict | None:
    """With ``--resume``, the checkpoint continued (refused if saved with another network); else None."""
    if not cfg.resume:
        return None
    ckpt = runs.load_checkpoint(out / CHECKPOINTS[0], map_location=device)
    saved = {"refine": False, **ckpt["config"]}  # written before the refinement existed: none
    runs.check_resume(out / CHECKPOINTS[0], saved, asdict(cfg), RESUME_KEYS)
    return ckpt


def prepare_training(
    cfg: BodyConfig, body: BodyModel, device: torch.device, start: nn.Module | None, ckpt: dict | None
) -> Training:
    """The network, Adam and its cosine schedule; from ``--init`` weights or the resumed checkpoint if given."""
    model = build_model(cfg, body).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s / max(cfg.steps, 1), 1.0)))
    )
    training = Training(model, optimizer, schedule)
    if start is not None:
        missing = set(model.state_dict()) - set(start.state_dict())
        try:
            model.load_state_dict(start.state_dict(), strict=False)
        except RuntimeError as exc:  # the same layers with other sizes
            raise ValueError(f"--init: {cfg.init} has other layer sizes ({str(exc).splitlines()[1].strip()})") from exc
        print(f"initialised from {cfg.init}" + (f"; new: {', '.join(sorted(missing))}" if missing else ""))
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        training.step, training.best_val, training.history = ckpt["step"], ckpt["best_val"], ckpt["history"]
    return training


def train_loop(
    cfg: BodyConfig,
    training: Training,
    body: BodyModel,
    val: dict[str, Tensor],
    device: torch.device,
    out: Path,
    writer: SummaryWriter,
) -> float:
    """Steps up to ``cfg.steps``, validating and checkpointing every ``eval_every``; returns the seconds taken.

    With ``max_minutes``, stops at the first validation after that budget.
    """
    started = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=training.step, desc=f"train {cfg.model}", disable=not cfg.progress)
    while training.step < cfg.steps:
        loss, terms = train_step(cfg, training, body, device)
        writer.add_scalar("losses/total", loss, training.step)
        for k, v in terms.items():
            writer.add_scalar(f"losses/{k}", v, training.step)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", v2v_cm=f"{100 * terms['vertices']:.1f}")
        if training.step % cfg.eval_every == 0 or training.step == cfg.steps:
            v2v = validate_and_checkpoint(cfg, training, val, loss, device, out, writer)
            bar.write(f"step {training.step}: loss {loss:.3f}, val v2v {v2v:.2f} cm (best {training.best_val:.2f})")
            if cfg.max_minutes and time.perf_counter() - started > 60 * cfg.max_minutes:
                break
    bar.close()
    return time.perf_counter() - started


def train_step(
    cfg: BodyConfig, training: Training, body: BodyModel, device: torch.device
) -> tuple[float, dict[str, float]]:
    """One optimiser step on a freshly generated batch; returns the loss and its terms."""
    model = training.model
    model.train()
    # A fresh batch per step from its own seed, so a resumed run sees the same data.
    batch = generate(body, cfg.batch_size, "train", seed=10_000 + 1_000_000 * cfg.seed + training.step,
                     num_points=cfg.cloud_points, noise=cfg.noise)  # fmt: skip
    batch = {k: v.to(device) for k, v in batch.items()}
    pred = model(batch["points"])
    loss, terms = arteq_loss(pred, batch, model.body)
    training.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    training.optimizer.step()
    training.schedule.step()
    training.step += 1
    return loss.item(), terms


def validate_and_checkpoint(
    cfg: BodyConfig,
    training: Training,
    val: dict[str, Tensor],
    loss: float,
    device: torch.device,
    out: Path,
    writer: SummaryWriter,
) -> float:
    """Validate; write ``last.pt``, and ``best.pt`` when the validation V2V improved; returns that V2V (cm)."""
    metrics = evaluate(training.model.fit, val, device=device)
    for k, v in metrics.items():
        writer.add_scalar(f"val/{k}", v, training.step)
    training.history.append({"step": training.step, "loss": loss, **metrics})
    state = {
        "model": training.model.state_dict(),
        "optimizer": training.optimizer.state_dict(),
        "schedule": training.schedule.state_dict(),
        "step": training.step,
        "best_val": training.best_val,
        "history": training.history,
        "config": asdict(cfg),
    }
    if metrics["v2v_cm"] < training.best_val:
        training.best_val = state["best_val"] = metrics["v2v_cm"]
        runs.save_checkpoint(state, out / "best.pt")
    runs.save_checkpoint(state, out / "last.pt")
    return metrics["v2v_cm"]


def evaluate_best_and_report(
    cfg: BodyConfig,
    training: Training,
    body: BodyModel,
    device: torch.device,
    out: Path,
    writer: SummaryWriter,
    train_seconds: float,
) -> dict[str, dict[str, float]]:
    """Test the validation-selected checkpoint on each test set; write the TensorBoard scalars and summary.json."""
    model = training.model
    best = runs.load_checkpoint(out / "best.pt", map_location=device)
    model.load_state_dict(best["model"])
    results = {s: evaluate(model.fit, d, device=device) for s, d in _test_sets(cfg, body).items()}
    for s, metrics in results.items():
        for k, v in metrics.items():
            writer.add_scalar(f"{s}/{k}", v, training.step)
    writer.close()
    summary = {
        "config": asdict(cfg),
        "best_step": best["step"],
        "best_val_v2v_cm": best["best_val"],
        "history": training.history,
        "test": results,
        "train_seconds": train_seconds,
        "parameters": _parameters(model),
    }
    runs.write_json(out / "summary.json", summary)
    return results


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
