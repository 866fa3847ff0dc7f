"""Entry point: train and evaluate RL agents and motion models.

    python train.py [options]              # PPO on a manipulation task (default: HEPi on RigidInsertion-v0)
    python train.py evaluate --checkpoint runs/rl/last.zip [--episodes N] [--video episode.gif]
    python train.py motion [options]       # train + evaluate a trajectory model (python train.py motion -h)
    python train.py body [options]         # ArtEq body fitting: train, evaluate, or fit a scan (--action)

Motion runs scale over processes with torchrun: ``torchrun --nproc_per_node 2 train.py motion ...``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import sys
import textwrap
import typing

from geomanip.motion.body_training import BodyConfig
from geomanip.motion.body_training import run as run_body
from geomanip.motion.training import MotionConfig
from geomanip.motion.training import run as run_motion
from geomanip.policies.training import RLConfig, evaluate_checkpoint
from geomanip.policies.training import run as run_rl


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (``--help`` text)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--option`` per field of ``cls``, typed and documented from the dataclass."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        kind = typing.get_origin(hint)
        help_text = f"{docs.get(f.name, '')} (default: {f.default})"
        if hint is bool:
            parser.add_argument(name, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
        elif kind is typing.Literal:
            parser.add_argument(name, choices=typing.get_args(hint), default=f.default, help=help_text)
        else:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            parser.add_argument(name, type=args[0] if args else hint, default=f.default, help=help_text)


def _config(cls: type, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    print(title)
    for k, v in metrics.items():
        print(f"  {k}: {v:.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, RLConfig)
    sub = parser.add_subparsers(dest="command")
    motion = sub.add_parser("motion", help="train and evaluate a trajectory model")
    add_dataclass_args(motion, MotionConfig)
    body = sub.add_parser("body", help="ArtEq body fitting from point clouds: train, evaluate, fit a file")
    add_dataclass_args(body, BodyConfig)
    evaluate = sub.add_parser("evaluate", help="evaluate a saved RL checkpoint")
    evaluate.add_argument("--checkpoint", required=True, help="a last.zip written by a training run")
    evaluate.add_argument("--episodes", type=int, default=20, help="episodes per shape set (default: 20)")
    evaluate.add_argument("--eval-task", default=None, help="expected task id (error if the checkpoint's differs)")
    evaluate.add_argument("--video", default=None, help="write a GIF of one episode here")
    args = parser.parse_args(argv)

    try:
        if args.command == "body":
            for name, metrics in run_body(_config(BodyConfig, args)).items():
                _print_metrics(f"{args.action} {name}:", metrics)
        elif args.command == "motion":
            result = run_motion(_config(MotionConfig, args))
            if result:
                _print_metrics("test metrics (validation-selected checkpoint):", result)
        elif args.command == "evaluate":
            metrics = evaluate_checkpoint(args.checkpoint, args.episodes, args.eval_task, args.video)
            _print_metrics(f"{args.checkpoint}: deterministic policy, {args.episodes} episodes per shape set", metrics)
        else:
            summary = run_rl(_config(RLConfig, args))
            final, rand = summary["final"], summary["random"]
            print(
                f"{summary['config']['policy']} on {summary['config']['task']}: {summary['steps']} steps in "
                f"{summary['train_seconds'] / 60:.1f} min"
            )
            for s in [s for s in ("train", "unseen") if f"{s}_return" in final]:
                print(
                    f"  {s} variants: return {final[s + '_return']:.1f} (random {rand[s + '_return']:.1f}), "
                    f"success {final[s + '_success']:.0%} (random {rand[s + '_success']:.0%})"
                )
            print(f"  outputs: {args.out} (summary.json, learning_curve.png, last.zip, tb/)")
    except (ValueError, FileNotFoundError) as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
