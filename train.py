"""Entry point: train and evaluate RL agents and motion models.

    python train.py                      # RL: not implemented yet (says so and exits)
    python train.py motion [options]     # train + evaluate a trajectory model (python train.py motion -h)

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

from motion.training import MotionConfig
from motion.training import run as run_motion


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    motion = sub.add_parser("motion", help="train and evaluate a trajectory model")
    add_dataclass_args(motion, MotionConfig)
    args = parser.parse_args(argv)

    if args.command == "motion":
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(MotionConfig)}
        try:
            result = run_motion(MotionConfig(**values))
        except (ValueError, FileNotFoundError) as exc:
            print(f"train.py motion: error: {exc}", file=sys.stderr)
            return 2
        if result:
            print("test metrics (validation-selected checkpoint):")
            for k, v in result.items():
                print(f"  {k}: {v:.4f}")
        return 0

    print(
        "train.py: RL training is not implemented yet.\n"
        "What exists: the shared kernels (`kernels`), the rigid manipulation environments (`envs`:\n"
        "RigidSliding-v0, RigidPushing-v0, RigidInsertion-v0, RigidInsertionTwoAgents-v0) and motion\n"
        "training (`python train.py motion --help`).\n"
        "What this command will do once the policy issue lands: train the HEPi policy with PPO on\n"
        "RigidInsertion-v0 and write checkpoints, TensorBoard logs and a summary to --out.\n"
        "Nothing was trained; exiting."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
