"""Entry point: train and evaluate RL agents and motion models (the ``geomanip`` command, or ``python train.py``).

    geomanip train [options]            # RL on a manipulation task (default: HEPi with PPO on RigidSliding-v0)
    geomanip evaluate --checkpoint runs/rl/last.zip [--episodes N] [--video episode.gif]
    geomanip evaluate --pretrained RigidSliding-v0 [--video episode.gif]   # a policy shipped with the package
    geomanip motion [options]           # train + evaluate a trajectory model (geomanip motion -h)
    geomanip body [options]             # ArtEq body fitting: train, evaluate, or fit a scan (--action)

``python train.py [options]``, without a command, trains as ``train`` does. The training defaults shown by
``-h`` are the shared ones; each task's settings file (``geomanip/policies/settings/<task>.toml``) replaces some
for that task, and options given on the command line replace both. A run refuses an --out folder that already
holds one: --resume continues it (options not given are the saved run's), --overwrite replaces it.
Motion runs scale over processes with torchrun: ``torchrun --nproc_per_node 2 train.py motion ...``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import sys
import textwrap
import types
import typing
from pathlib import Path

from geomanip import runs
from geomanip.motion.body.training import BodyConfig
from geomanip.motion.body.training import run as run_body
from geomanip.motion.training import MotionConfig
from geomanip.motion.training import run as run_motion
from geomanip.policies.pretrained import evaluate_pretrained
from geomanip.policies.training import RLConfig, configure, evaluate_checkpoint
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


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """One ``--option`` per field of ``cls``, typed and documented from the dataclass.

    An option not given is absent from the parsed namespace (its value is the dataclass default, or with
    ``--resume`` the saved run's: :func:`geomanip.runs.options_config`); it is stored as ``prefix + field``.
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
            hint = args[0]  # an optional option (default None): typed as its one other type
        kind = typing.get_origin(hint)
        common = {"dest": prefix + f.name, "default": argparse.SUPPRESS}
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        common["help"] = f"{docs.get(f.name, '')} (default: {default})"
        if hint is bool:
            parser.add_argument(name, action=argparse.BooleanOptionalAction, **common)
        elif kind is typing.Literal:
            parser.add_argument(name, choices=typing.get_args(hint), **common)
        elif kind is dict:
            parser.add_argument(name, type=_json_object, metavar="JSON", **common)
        else:
            parser.add_argument(name, type=hint, metavar=f.name.upper(), **common)


def _json_object(text: str) -> dict:
    """A command-line JSON object (``'{"final_weight": 0}'``), or argparse's error naming the problem."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"name\": 1}}', got {text!r}")
    return value


def _given(args: argparse.Namespace, prefix: str) -> dict[str, object]:
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}


def _config(cls: type, args: argparse.Namespace, prefix: str):
    return runs.options_config(cls, _given(args, prefix))


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    print(title)
    for k, v in metrics.items():
        print(f"  {k}: {v:.4f}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status (2 on an error)."""
    prog = "train.py" if Path(sys.argv[0]).name == "train.py" else "geomanip"
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_args(parser, RLConfig, "rl.")
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser(
        "train",
        help="train a policy with PPO (the default command)",
        description="Train a policy. The defaults below are the shared ones; the task's settings file "
        "(geomanip/policies/settings/<task>.toml) replaces some for that task, and options given here replace both.",
    )
    add_dataclass_args(train, RLConfig, "rl.")
    motion = sub.add_parser("motion", help="train and evaluate a trajectory model")
    add_dataclass_args(motion, MotionConfig, "motion.")
    body = sub.add_parser("body", help="ArtEq body fitting from point clouds: train, evaluate, fit a file")
    add_dataclass_args(body, BodyConfig, "body.")
    evaluate = sub.add_parser("evaluate", help="evaluate a saved RL checkpoint or a shipped policy")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint", help="a checkpoint written by a training run: last.zip, best.zip or pretrained.zip"
    )
    source.add_argument("--pretrained", metavar="TASK", help="the policy shipped with the package for TASK")
    evaluate.add_argument("--episodes", type=int, default=20, help="episodes per shape set (default: 20)")
    evaluate.add_argument("--eval-task", default=None, help="expected task id (error if the checkpoint's differs)")
    evaluate.add_argument("--video", default=None, help="write a GIF of one episode here")
    args = parser.parse_args(argv)
    if args.command not in (None, "train") and _given(args, "rl."):
        parser.error(f"options before `{args.command}` are those of `train`; give {args.command}'s after it")

    try:
        if args.command == "body":
            cfg = _config(BodyConfig, args, "body.")
            for name, metrics in run_body(cfg).items():
                _print_metrics(f"{cfg.action} {name}:", metrics)
        elif args.command == "motion":
            result = run_motion(_config(MotionConfig, args, "motion."))
            if result:
                _print_metrics("test metrics (validation-selected checkpoint):", result)
        elif args.command == "evaluate" and args.pretrained:
            metrics = evaluate_pretrained(args.pretrained, args.episodes, args.video)
            modes = "deterministic (stochastic_: sampled)"
            title = f"shipped policy for {args.pretrained}: {modes}, {args.episodes} episodes per set"
            _print_metrics(title, metrics)
        elif args.command == "evaluate":
            metrics = evaluate_checkpoint(args.checkpoint, args.episodes, args.eval_task, args.video)
            title = f"{args.checkpoint}: deterministic (stochastic_: sampled) policy, {args.episodes} episodes per set"
            _print_metrics(title, metrics)
        else:
            cfg = configure(**_given(args, "rl."))
            summary = run_rl(cfg)
            final, rand = summary["final"], summary["random"]
            print(
                f"{summary['config']['policy']} on {summary['config']['task']}: {summary['steps']} steps in "
                f"{summary['train_seconds'] / 60:.1f} min"
            )
            for s in [s for s in ("train", "unseen") if f"{s}_return" in final]:
                sampled = final.get(f"stochastic_{s}_success")
                sampled = "" if sampled is None else f", {sampled:.0%} sampling its actions"
                print(
                    f"  {s} variants: return {final[s + '_return']:.1f} (random {rand[s + '_return']:.1f}), "
                    f"success {final[s + '_success']:.0%}{sampled} (random {rand[s + '_success']:.0%})"
                )
            best = summary.get("best")
            if best is not None and best["steps"] != final["steps"]:
                print(f"  the best evaluation was at {best['steps']} steps: its policy is best.zip")
            print(f"  outputs: {cfg.out} (summary.json, learning_curve.png, last.zip, best.zip, tb/)")
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
