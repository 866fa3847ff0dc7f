"""The scaffold the three training runners share (RL, motion, body): output folders, devices, files.

- :func:`prepare_output`: a new run refuses a folder that already holds one, unless resumed or overwritten.
- :func:`options_config`: a run's configuration from the options given; with ``resume``, the options not given
  are those of the saved run (:func:`saved_config`), and :func:`check_resume` refuses explicit different ones.
- :func:`resolve_device`: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, with one clear error when CUDA is missing.
- :func:`save_atomic`, :func:`write_json`: files written whole or not at all.
- :func:`save_checkpoint`, :func:`load_checkpoint`: checkpoints of tensors and plain data only (config as a dict
  of primitives, metrics as numbers), loaded with ``torch.load(weights_only=True)``, which never runs code
  from the file. A checkpoint holding pickled objects is refused; if it is trusted, convert it once with

      python -m geomanip.runs convert OLD.pt [--output NEW.pt]

This module imports none of the project's subpackages, so all of them may use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import os
import pickle
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "check_resume",
    "load_checkpoint",
    "options_config",
    "plain",
    "prepare_output",
    "resolve_device",
    "save_atomic",
    "save_checkpoint",
    "saved_config",
    "write_json",
]

SUMMARY = "summary.json"
CONFIG = "run.json"
# Options that belong to one invocation, not to the run: --resume never takes them from the saved run.
PER_INVOCATION = ("out", "resume", "overwrite", "device", "threads", "progress")

T = TypeVar("T")


# --- output folders ---------------------------------------------------------------------------------------


def prepare_output(
    out: str | os.PathLike,
    resume: bool,
    overwrite: bool,
    checkpoints: Sequence[str],
    outputs: Sequence[str] = (),
    clear: bool = True,
) -> Path:
    """The output folder of a run, checked (and created) before anything is written to it.

    ``checkpoints``: the checkpoint files a run writes there, the one resumed from first; ``outputs``: every
    other file or folder it writes. With ``resume`` the first checkpoint must exist. Otherwise a folder
    holding a run (a checkpoint or ``summary.json``) is refused, nothing in it changed, unless ``overwrite``:
    then the run's own files (``checkpoints``, ``outputs``, ``summary.json``; nothing else) are deleted
    first, when ``clear`` (``False`` in the processes of a distributed run that are not the first).
    """
    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume continues the run in the output folder and --overwrite replaces it: pass one")
    if resume:
        last = out / checkpoints[0]
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {last}")
        return out
    owned = [*checkpoints, SUMMARY, *outputs]
    found = [name for name in (*checkpoints, SUMMARY) if (out / name).exists()]
    if found and not overwrite:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(found)}); pass --resume to continue it "
            f"or --overwrite to replace it, or choose another --out"
        )
    if overwrite and clear:
        for name in owned:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def saved_config(out: str | os.PathLike, checkpoint: str = "last.pt") -> dict[str, Any] | None:
    """The configuration of the run saved in ``out``: its ``run.json``, else the ``config`` of its
    ``checkpoint``; ``None`` when it has neither."""
    out = Path(out)
    if (out / CONFIG).is_file():
        return json.loads((out / CONFIG).read_text())
    if (out / checkpoint).is_file():
        config = load_checkpoint(out / checkpoint).get("config")
        return config if isinstance(config, dict) else None
    return None


def options_config(cls: type[T], given: dict[str, Any]) -> T:
    """A ``cls`` configuration (a dataclass) from the options ``given`` (only those given, by field name).

    Options not given take the dataclass defaults; with ``resume``, first the saved run's values (but for
    :data:`PER_INVOCATION`), so a run continues with its task, model and sizes without repeating them.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    inherited: dict[str, Any] = {}
    if given.get("resume"):
        out = given.get("out", next(f.default for f in dataclasses.fields(cls) if f.name == "out"))
        saved = saved_config(out) or {}
        inherited = {k: v for k, v in saved.items() if k in names and k not in PER_INVOCATION}
    return cls(**{**inherited, **given})


def check_resume(source: str | os.PathLike, saved: dict[str, Any], config: dict[str, Any], keys: Sequence[str]) -> None:
    """Refuse to resume the run saved with ``saved`` (from ``source``) under a ``config`` that differs in ``keys``."""
    differ = [k for k in keys if k in saved and saved[k] != config[k]]
    if differ:
        flags = ", ".join(f"--{k.replace('_', '-')} {saved[k]} (not {config[k]})" for k in differ)
        raise ValueError(
            f"--resume: {source} was saved with {flags}; omit these options to continue it with the saved values, "
            f"or pass --overwrite instead of --resume to start a new run"
        )


# --- devices ------------------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; a clear ``ValueError``
    when CUDA is asked for and not available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ValueError(
                f"--device {name}: CUDA is not available (torch {torch.__version__}, {build}, "
                f"{torch.cuda.device_count()} GPUs visible); use --device cpu or --device auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA devices are visible")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: unsupported device type; use auto, cpu, cuda or cuda:N")
    return device


# --- files --------------------------------------------------------------------------------------------------


def save_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` next to ``path`` (same suffix), then rename it over ``path``: a crash never leaves a
    half-written file there."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (``summary.json``, ``run.json``, ``history.json``)."""
    save_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2)))


def plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` as tensors and plain data (dicts, lists, tuples, strings, numbers, booleans, ``None``).

    Dataclasses and namespaces become dicts, NumPy scalars numbers and arrays tensors, paths strings, enums
    their values; anything else is a ``TypeError`` naming where it is.
    """
    if obj is None or isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass, pickled as a NumPy object
        return obj.item()
    if isinstance(obj, enum.Enum):
        return plain(obj.value, where)
    for base in (bool, int, float, str):  # subclasses (int-like flags, str-like names) as the base type
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    elif isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if isinstance(obj, dict):
        return {plain(k, f"{where} key"): plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which is not plain data")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` (made :func:`plain`) atomically with ``torch.save``."""
    state = plain(state)
    save_atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """A checkpoint of tensors and plain data, loaded without running code from the file.

    A ``ValueError`` names the file when it holds pickled objects (with the command that converts a trusted
    one) or cannot be read; a ``FileNotFoundError`` when it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path} is not a plain-data checkpoint (it holds pickled Python objects, which are not loaded: "
            f"unpickling can run code); if you trust the file, convert it once with "
            f"`python -m geomanip.runs convert {path}`"
        ) from exc
    except Exception as exc:  # a damaged or foreign file
        raise ValueError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a checkpoint (a {type(state).__name__}, not a dict)")
    return state


def convert(path: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Rewrite a trusted checkpoint that holds pickled objects as plain data (``output``, default: in place).

    This unpickles the file (``weights_only=False``), which can run code from it: call it only on files you
    trust.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    target = Path(output) if output else path
    try:
        save_checkpoint(state if isinstance(state, dict) else {"state": state}, target)
    except TypeError as exc:
        raise ValueError(f"{path}: cannot be converted to plain data: {exc}") from exc
    load_checkpoint(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geomanip.runs",
        description="Convert a trusted checkpoint that holds pickled Python objects into a plain-data one "
        "(tensors, dicts, lists, strings, numbers), which training and evaluation load safely.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="rewrite a trusted checkpoint as plain data (unpickles it once)")
    conv.add_argument("checkpoint", help="the checkpoint to convert (it is unpickled: trust it first)")
    conv.add_argument("--output", default=None, help="where to write the converted checkpoint (default: in place)")
    args = parser.parse_args(argv)
    try:
        target = convert(args.checkpoint, args.output)
    except (ValueError, FileNotFoundError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {target} (plain data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
