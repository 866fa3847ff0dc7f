"""Train a weight that ships with the package, from scratch, and export it with its card.

    python scripts/train_pretrained.py NAME [--out runs/pretrained/NAME] [--dest assets/weights]
    python scripts/train_pretrained.py --list

Each NAME has a recipe: the ``geomanip`` commands that train it (run in this process, in order, into ``--out``)
and an export that writes ``NAME.pt`` (tensors and plain data, :mod:`geomanip.weights`) and the card
``NAME.json`` into ``--dest``: the commands, the commit, the data, the steps, the metrics the training run
printed (its ``summary.json``), and ``check``, metrics on a small fixed set that ``tests/test_weights.py``
recomputes from the shipped file. A recipe's stage whose folder already holds a finished run (a
``summary.json``) is not run again, and an interrupted one resumes, so the script can be rerun after a stop.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from geomanip import runs, weights
from geomanip.cli import main as geomanip_main

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Recipe:
    """How a shipped weight is trained (``stages``: ``geomanip`` argument lists; ``{out}`` is the run folder)
    and exported (``export(out) -> (checkpoint, card fields)``)."""

    description: str
    data: str
    stages: tuple[tuple[str, ...], ...]
    export: Callable[[Path], tuple[dict, dict]]


def card_fields(summary: dict, steps: int, metrics: dict, check_set: str, check: Callable, *args) -> dict:
    """The card entries every export writes: steps, training time, the run's metrics, and the check metrics
    (``check(*args)``, recomputed by the tests from the shipped file)."""
    return {
        "steps": steps,
        "train_seconds": round(summary["train_seconds"], 1),
        "metrics": metrics,
        "check": {"set": check_set, "function": f"{check.__module__}.{check.__name__}", "metrics": check(*args)},
    }


def export_eqmotion(out: Path) -> tuple[dict, dict]:
    from geomanip.motion import EqMotion
    from geomanip.motion.training import CHECK_SEED, CHECK_SYSTEMS, MotionConfig, check_metrics, eqmotion_kwargs

    best = runs.load_checkpoint(out / "best.pt")
    summary = json.loads((out / "summary.json").read_text())
    cfg = MotionConfig(**best["config"])
    kwargs = eqmotion_kwargs(cfg)
    model = EqMotion(**kwargs)
    model.load_state_dict(best["model"])
    check_set = f"{CHECK_SYSTEMS} {cfg.data} systems simulated with seed {CHECK_SEED}"
    card = card_fields(
        summary, summary["steps"], {"test": summary["test"]}, check_set, check_metrics, model.eval(), cfg.data
    )
    card["epochs"] = f"{summary['best_epoch']} (selected on validation ADE) of {cfg.epochs}"
    return {"model": model.state_dict(), "kwargs": kwargs, "config": best["config"]}, card


def export_policy(out: Path) -> tuple[dict, dict]:
    from geomanip.policies.pretrained import CHECK_EPISODES, CHECK_SEED, check_metrics
    from geomanip.policies.training import ALGORITHMS

    summary = json.loads((out / "summary.json").read_text())
    config = summary["config"]
    model = ALGORITHMS[config["algo"]].load(out / "last.zip", device="cpu")
    metrics = {"final": summary["final"], "random": summary["random"]}
    check_set = f"{CHECK_EPISODES} training-shape episodes, environment i seeded {CHECK_SEED} + i"
    card = card_fields(
        summary, summary["steps"], metrics, check_set, check_metrics, model.policy.eval(), config["task"]
    )
    return {"model": model.policy.state_dict(), "kwargs": {}, "config": config}, card


def export_arteq(out: Path) -> tuple[dict, dict]:
    from geomanip.motion.body.training import CHECK_BODIES, CHECK_SEED, check_metrics, load_checkpoint

    best = runs.load_checkpoint(out / "best.pt")
    summary = json.loads((out / "summary.json").read_text())
    model, _ = load_checkpoint(out / "best.pt")
    metrics = {"best_val_v2v_cm": summary["best_val_v2v_cm"], "test": summary["test"]}
    check_set = f"{CHECK_BODIES} test_orient bodies (any orientation) generated with seed {CHECK_SEED}"
    card = card_fields(summary, summary["best_step"], metrics, check_set, check_metrics, model)
    return {"model": best["model"], "kwargs": {}, "config": best["config"]}, card


RECIPES = {
    "eqmotion-charged": Recipe(
        "EqMotion on charged particles, 10 past -> 20 future frames, K = 1",
        "charged particles simulated by geomanip.motion.data.nbody (3,000 training, 2,000 validation, 2,000 test "
        "systems, split seeds 0/1/2), written to data/charged on the first run",
        (("motion", "--model", "eqmotion", "--data", "charged", "--epochs", "60", "--no-progress", "--out", "{out}"),),
        export_eqmotion,
    ),
    "hepi-RigidSliding-v0": Recipe(
        "HEPi policy for RigidSliding-v0, PPO, the default run's settings (policies/settings), seed 0",
        "RigidSliding-v0 training shapes; evaluated on training and unseen shapes",
        (("train", "--task", "RigidSliding-v0", "--policy", "hepi", "--seed", "0", "--no-progress", "--out", "{out}"),),
        export_policy,
    ),
    # The two stages of the benchmarked network (BENCHMARKS.md, body fitting): 5,000 steps without the per-part
    # refinement, then 3,000 steps of fine-tuning with it. Its timing is in BENCHMARKS.md.
    "arteq": Recipe(
        "ArtEq body fitting on the shipped body model (5,000 noisy points per cloud), with per-part refinement",
        "bodies generated from assets/body/ANNY_SMPL_NEUTRAL.pkl by geomanip.motion.body.data (fresh batches)",
        (
            ("body", "--no-refine", "--steps", "5000", "--eval-every", "500", "--no-progress", "--out", "{out}"),
            (
                "body",
                "--init",
                "{stage0}/best.pt",
                "--steps",
                "3000",
                "--lr",
                "1e-3",
                "--eval-every",
                "250",
                "--no-progress",
                "--out",
                "{out}",
            ),
        ),
        export_arteq,
    ),
}


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train(recipe: Recipe, out: Path) -> list[str]:
    """Run the recipe's stages (skipping finished ones, resuming interrupted ones); returns the commands."""
    commands = []
    for i, stage in enumerate(recipe.stages):
        folder = out if i == len(recipe.stages) - 1 else out / f"stage{i}"
        argv = [a.format(out=folder, **{f"stage{j}": out / f"stage{j}" for j in range(i)}) for a in stage]
        commands.append("geomanip " + " ".join(argv))
        if (folder / "summary.json").is_file():
            print(f"stage {i}: {folder} holds a finished run; not run again")
            continue
        resume = ["--resume"] if any((folder / f).is_file() for f in ("last.pt", "last.zip")) else []
        print(f"stage {i}: {commands[-1]}")
        if geomanip_main([*argv, *resume]) != 0:
            raise SystemExit(f"stage {i} failed: {commands[-1]}")
    return commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", choices=sorted(RECIPES))
    parser.add_argument("--list", action="store_true", help="list the recipes and the weights shipped now")
    parser.add_argument("--out", default=None, help="run folder (default: runs/pretrained/NAME)")
    parser.add_argument("--dest", default=str(ROOT / "assets" / "weights"), help="where NAME.pt and NAME.json go")
    parser.add_argument("--commit", default=None, help="commit of the code that trained (default: this checkout's)")
    parser.add_argument("--note", default="", help="a remark for the card (for example the machine's load)")
    args = parser.parse_args()
    if args.list or args.name is None:
        for name, recipe in RECIPES.items():
            print(f"{name:<24} {'shipped' if name in weights.available() else 'not shipped':<12} {recipe.description}")
        return
    recipe = RECIPES[args.name]
    out = Path(args.out or Path("runs") / "pretrained" / args.name)
    torch.set_num_threads(1)
    commands = train(recipe, out)
    checkpoint, fields = recipe.export(out)
    card = {
        "name": args.name,
        "description": recipe.description,
        "retrain": f"python scripts/train_pretrained.py {args.name}",
        "commands": commands,
        "commit": args.commit or git_commit(),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}, torch {torch.__version__}",
        "data": recipe.data,
        **fields,
        "note": args.note,
    }
    weights.save(args.dest, args.name, checkpoint, card)
    print(f"wrote {args.dest}/{args.name}.pt and .json; check metrics: {fields['check']['metrics']}")


if __name__ == "__main__":
    sys.exit(main())
