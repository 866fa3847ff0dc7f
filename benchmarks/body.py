"""Body fitting benchmark: ArtEq against a PointNet regressor and optimisation-based fitting.

    python train.py body --model arteq --out runs/body_arteq          # train the two networks first
    python train.py body --model pointnet --out runs/body_pointnet
    python -m benchmarks.body [--bodies 16] [--fit-iters 100] [--yaw-starts 1,4]

For each test set of :mod:`geomanip.motion.body.data` (``test``: in distribution; ``test_orient``: arbitrary global
orientations; ``test_pose``: joint angles up to twice the training range) prints V2V and joint error (cm),
global-orientation error (degrees), part accuracy where the method predicts parts, and inference time
per body. The networks run one body at a time (latency); the optimisation fits the first ``--fit-bodies``
bodies of each set as one batch, and its time per body is the batch's time divided by their number
(favourable to it); it runs once per entry of ``--yaw-starts`` (headings about the vertical it starts from,
keeping the best fit by Chamfer distance: the test bodies face any direction). ``ArtEq + N Adam steps``
refines each ArtEq prediction by that optimisation (``train.py body --refine-steps``), one body at a time.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from geomanip.motion.body.baselines import fit_by_optimisation
from geomanip.motion.body.data import generate
from geomanip.motion.body.model import load_body_model
from geomanip.motion.body.training import TEST_SPLITS, evaluate, fitter, load_checkpoint


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arteq", default="runs/body_arteq/best.pt")
    parser.add_argument("--pointnet", default="runs/body_pointnet/best.pt")
    parser.add_argument("--bodies", type=int, default=16, help="bodies per test set")
    parser.add_argument("--fit-iters", type=int, default=100, help="Adam steps of the optimisation fit")
    parser.add_argument("--fit-bodies", type=int, default=4, help="bodies per set for the optimisation (the first)")
    parser.add_argument("--yaw-starts", default="1,4", help="comma-separated start counts of the optimisation")
    parser.add_argument("--refine-steps", type=int, default=20, help="ArtEq + this many Adam steps (0: no such row)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--methods", default="arteq,pointnet,optimisation", help="comma-separated subset to run")
    parser.add_argument("--out", default="runs/body_benchmark.json")
    args = parser.parse_args(argv)

    body = load_body_model()
    methods = {}
    chosen = set(args.methods.split(","))
    for name, path in (("ArtEq", args.arteq), ("PointNet", args.pointnet)):
        if name.lower() not in chosen:
            continue
        if Path(path).is_file():
            model, _ = load_checkpoint(path)
            methods[name] = (model.fit, 1)
            print(f"{name}: {path}, {sum(p.numel() for p in model.parameters()):,} parameters")
            if name == "ArtEq" and args.refine_steps:
                methods[f"ArtEq + {args.refine_steps} Adam steps"] = (fitter(model, args.refine_steps), 1)
        else:
            print(f"{name}: no checkpoint at {path}; skipped")
    if "optimisation" in chosen:
        for k in map(int, args.yaw_starts.split(",")):
            methods[f"Optimisation ({args.fit_iters} Adam, {k} start{'s' if k > 1 else ''})"] = (
                lambda p, k=k: fit_by_optimisation(body, p, iters=args.fit_iters, yaw_starts=k),
                args.fit_bodies,
            )

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
        f"{args.bodies} bodies per set"
    )
    cols = ("V2V cm", "joint cm", "orient °", "part acc", "ms/body", "CPU ms")
    header = f"{'test set':<12} | {'method':<34} | " + " | ".join(f"{c:>8}" for c in cols)
    print(header + "\n" + "-" * len(header))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for split in TEST_SPLITS:
        data = generate(body, args.bodies, split, seed=args.seed)
        results[split] = {}
        for name, (fit, batch) in methods.items():
            # The optimisation is slow: it fits only the first ``fit_bodies`` bodies, as one batch.
            subset = {k: v[:batch] for k, v in data.items()} if name.startswith("Optimisation") else data
            m = evaluate(fit, subset, batch_size=batch)
            results[split][name] = m
            acc = f"{m['part_acc']:.3f}" if "part_acc" in m else "-"
            print(
                f"{split:<12} | {name:<34} | {m['v2v_cm']:8.2f} | {m['joint_cm']:8.2f} | {m['orient_deg']:8.1f} | "
                f"{acc:>8} | {m['ms_per_body']:8.1f} | {m['cpu_ms_per_body']:8.1f}"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
