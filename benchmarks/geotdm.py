"""GeoTDM on charged particles (or springs, gravity): accuracy against the published numbers and constant velocity,
and sampling time against step count.

Run: ``python -m benchmarks.geotdm [--minutes 15] [--checkpoint runs/geotdm_charged/best.pt]``
(``--quick`` for a smoke run on tiny data; ``--overwrite`` to retrain into an ``--out`` that holds a run).

1. Training (skipped with ``--checkpoint``): ``train.py motion --model geotdm`` on charged particles
   (10 -> 20 frames, 3,000 training systems) for a wall-clock budget, checkpoint selected on validation.
2. Sampling: for each step count (1000 = ancestral DDPM, the paper's sampler; fewer = deterministic DDIM),
   the wall-clock time to sample a batch of 128 trajectories, and ADE/FDE averaged over K = 5 samples (the
   paper's protocol) plus best-of-5, on the same ``--test-systems`` test systems with the same seed.
   With ``--time-steps`` below a sampler's step count, only that many updates are timed and the time is
   scaled to the full count (each update costs the same: one denoiser call on the same batch).
3. The reference rows: constant position and constant velocity (each particle's last velocity) on the same
   test systems.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from benchmarks.motion import plot_curves
from geomanip import runs
from geomanip.motion.data.datasets import pad_collate
from geomanip.motion.metrics import displacement_sums, sample_average_sums
from geomanip.motion.training import MotionConfig, build_model, load_datasets, run

PUBLISHED_SECONDS = 74.0  # batch of 128, T = 1000, workstation GPU


def time_sampler(model, cond: torch.Tensor, steps: int, time_steps: int, eta: float) -> tuple[float, float, bool]:
    """Wall-clock and process CPU seconds to sample ``cond``'s batch with ``steps`` steps (scaled from
    ``time_steps`` updates if fewer). CPU seconds stay meaningful when other jobs share the machine."""
    eta = 1.0 if steps == model.schedule.num_steps else eta
    timed = min(steps, time_steps) if time_steps else steps
    # Every update is one denoiser call on the same batch, so `timed` updates cost `timed / steps` of the run.
    t0, c0 = time.perf_counter(), time.process_time()
    model.sample(cond, num_samples=1, steps=timed, eta=eta, noise=torch.Generator().manual_seed(0))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return seconds * steps / timed, cpu * steps / timed, timed < steps


def quality(model, batch: dict, steps: int, eta: float, k: int = 5) -> dict[str, float]:
    eta = 1.0 if steps == model.schedule.num_steps else eta
    pred = model.sample(batch["past"], num_samples=k, steps=steps, eta=eta, noise=torch.Generator().manual_seed(1))
    d = displacement_sums(pred, batch["future"], batch["eval_mask"])
    a = sample_average_sums(pred, batch["future"], batch["eval_mask"])
    n = d["count"]
    return {
        "avg_ade": a["avg_ade"] / n,
        "avg_fde": a["avg_fde"] / n,
        "min_ade": d["min_ade"] / n,
        "min_fde": d["min_fde"] / n,
    }


def baselines(batch: dict) -> dict[str, tuple[float, float]]:
    """ADE / FDE of constant position and constant velocity (the last two past frames) on ``batch``."""
    past, future, m = batch["past"], batch["future"], batch["eval_mask"].float()
    last = past[:, :, -1:]
    tau = torch.arange(1, future.size(2) + 1, dtype=past.dtype).view(1, 1, -1, 1)
    out = {}
    for name, pred in (
        ("constant position", last.expand_as(future)),
        ("constant velocity", last + tau * (last - past[:, :, -2:-1])),
    ):
        err = (pred - future).norm(dim=-1)  # [B, N, T]
        n = m.sum()
        out[name] = (float((err.mean(-1) * m).sum() / n), float((err[..., -1] * m).sum() / n))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget")
    parser.add_argument("--checkpoint", default=None, help="evaluate this best.pt instead of training")
    parser.add_argument("--out", default="runs/bench_geotdm")
    parser.add_argument("--steps", default="1000,100,50,20", help="sampler step counts")
    parser.add_argument("--test-systems", type=int, default=32, help="test systems for the quality columns")
    parser.add_argument("--batch", type=int, default=128, help="trajectories per timed batch")
    parser.add_argument("--time-steps", type=int, default=100, help="updates timed per sampler (0: all)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--eta", type=float, default=0.0, help="stochasticity of the fewer-step samplers (0: DDIM)")
    parser.add_argument("--quick", action="store_true", help="tiny data, model and budgets (a smoke run)")
    parser.add_argument("--overwrite", action="store_true", help="replace the training run already in --out")
    parser.add_argument("--plots", default="docs/images", help="folder for the validation-curve PNG")
    parser.add_argument(
        "--prediction", default="x0", choices=["eps", "x0"], help="what the denoiser predicts (eps: the paper's)"
    )
    parser.add_argument(
        "--velocity-prior",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="constant velocity as part of the prior (--no-velocity-prior: the paper's prior)",
    )
    parser.add_argument("--data", default="charged", choices=["charged", "springs", "gravity"], help="N-body system")
    parser.add_argument("--data-root", default=None, help="the splits (default data/<data>; simulated once)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {torch.get_num_threads()} threads")

    if args.checkpoint:
        ckpt_path = Path(args.checkpoint)
    else:
        kwargs = dict(
            model="geotdm",
            data=args.data,
            out=str(out / args.data),
            hidden=32,
            layers=2,
            batch_size=32,
            lr=1e-3,
            epochs=10_000,
            max_minutes=args.minutes,
            eval_limit=200,
            sample_steps=10,
            val_limit=64,
            val_steps=5,
            prediction=args.prediction,
            velocity_prior=args.velocity_prior,
            data_root=args.data_root,
            progress=False,
            overwrite=args.overwrite,
        )
        if args.quick:
            kwargs.update(
                data_root=str(out / f"data_{args.data}"),
                train_size=64,
                eval_size=16,
                epochs=1,
                hidden=16,
                layers=1,
                diffusion_steps=50,
                sample_steps=4,
            )
        ckpt_path = out / args.data / "best.pt"
        try:
            run(MotionConfig(**kwargs))
        except FileExistsError:
            parser.error(f"{ckpt_path.parent} holds a run: --checkpoint {ckpt_path} evaluates it, --overwrite retrains")
    ckpt = runs.load_checkpoint(ckpt_path)
    cfg = MotionConfig(**ckpt["config"])
    model = build_model(cfg)
    model.load_state_dict(ckpt["model"])
    model.eval()
    summary_path = ckpt_path.parent / "summary.json"
    if summary_path.is_file():
        s = json.loads(summary_path.read_text())
        print(
            f"checkpoint {ckpt_path}: epoch {s['best_epoch']} of {len(s['val_history'])}, {s['steps']} steps, "
            f"{s['train_seconds'] / 60:.1f} min, {s['train_samples_per_second']:.0f} samples/s, "
            f"{100 * s.get('gradient_fraction', float('nan')):.0f}% of it in gradient steps; test {s['test']}; "
            f"validation avg_ade per epoch: {', '.join(f'{v:.3f}' for v in s['val_history'])}"
        )
        plots = out if args.quick else Path(args.plots)  # a smoke run never overwrites the recorded curve
        plot_curves({f"GeoTDM, {cfg.data}": ckpt_path.parent}, plots / f"geotdm_{cfg.data}_val.png", "avg ADE")

    test = load_datasets(cfg)["test"]
    n_test = min(args.test_systems, len(test))
    batch = pad_collate([test[i] for i in range(n_test)])
    timing = pad_collate([test[i % len(test)] for i in range(args.batch)])["past"]
    rows = []
    for steps in [int(s) for s in args.steps.split(",")]:
        if args.quick:
            steps = min(steps, model.schedule.num_steps)
        seconds, cpu, scaled = time_sampler(model, timing, steps, args.time_steps, args.eta)
        q = quality(model, batch, steps, args.eta)
        rows.append((steps, seconds, cpu, scaled, q))
        print(f"  {steps} steps: {seconds:.1f} s per batch ({cpu:.1f} CPU s), {q}", flush=True)

    base = rows[0]
    print(
        f"\n{cfg.data.capitalize()}, 10 -> 20 frames; sampling a batch of {args.batch} (hidden {cfg.hidden}, "
        f"{cfg.layers} layers); quality on {n_test} test systems, K = 5"
    )
    print(
        f"{'sampler':<18} | {'s/batch':>8} | {'CPU s':>8} | {'speed-up':>8} | {'avg ADE':>7} | {'avg FDE':>7} | "
        f"{'minADE':>6} | {'minFDE':>6}"
    )
    for steps, seconds, cpu, scaled, q in rows:
        full = steps == model.schedule.num_steps
        name = f"DDPM {steps}" if full else f"DDIM {steps}" if args.eta == 0 else f"eta {args.eta:g}, {steps}"
        star = "*" if scaled else " "
        print(
            f"{name:<18} | {seconds:7.1f}{star} | {cpu:7.1f}{star} | {base[2] / cpu:7.1f}x | {q['avg_ade']:7.3f} | "
            f"{q['avg_fde']:7.3f} | {q['min_ade']:6.3f} | {q['min_fde']:6.3f}"
        )
    blank = ""
    if cfg.data == "charged":  # the papers' charged-particle numbers (none published here for springs, gravity)
        print(
            f"{'GeoTDM (paper)':<18} | {PUBLISHED_SECONDS:7.1f}  | {blank:>8} | {blank:>8} | {0.110:7.3f} | "
            f"{0.258:7.3f} |"
        )
        print(f"{'EqMotion (paper)':<18} | {blank:>8} | {blank:>8} | {blank:>8} | {0.141:7.3f} | {0.310:7.3f} |")
    for name, (ade, fde) in baselines(batch).items():
        print(f"{name:<18} | {blank:>8} | {blank:>8} | {blank:>8} | {ade:7.3f} | {fde:7.3f} |")
    print("speed-up: CPU seconds of the first sampler over each sampler's")
    print("* time of the first --time-steps updates, scaled to the full step count")


if __name__ == "__main__":
    main()
