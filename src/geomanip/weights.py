"""Pretrained weights shipped inside the package, each with a card that says how it was made.

A weight ``NAME`` is two files in ``geomanip/assets/weights``:

- ``NAME.pt``: a checkpoint of tensors and plain data only (``model``: the state dict; ``kwargs``: what the
  model's constructor takes; ``config``: the training run's options), loaded with
  ``torch.load(weights_only=True)`` (:func:`geomanip.runs.load_checkpoint`), which never runs code from the file;
- ``NAME.json``: its card: the command that trained it (``scripts/train_pretrained.py NAME`` reruns it), the
  commit, the data, the steps, the metrics the training run printed, and ``check``: metrics on a small fixed
  set that a test recomputes from the shipped file.

The models' own entry points use this module (``EqMotion.pretrained("charged")``,
``geomanip.policies.pretrained.load_policy("RigidSliding-v0")``); nothing is downloaded, and no environment
variable is read. This module imports none of the project's subpackages.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from geomanip import runs

__all__ = ["available", "card", "load", "path", "save", "weights_dir"]


def weights_dir() -> Path:
    """The folder of the shipped weights (inside the installed package)."""
    return Path(str(resources.files("geomanip.assets") / "weights"))


def available() -> list[str]:
    """Names of the shipped weights (those with both a ``.pt`` and a ``.json`` card)."""
    folder = weights_dir()
    return sorted(p.stem for p in folder.glob("*.pt") if p.with_suffix(".json").is_file())


def path(name: str) -> Path:
    """The checkpoint file of weight ``name``; a ``FileNotFoundError`` listing the shipped ones if there is none."""
    if name not in available():
        shipped = ", ".join(available()) or "none"
        raise FileNotFoundError(f"no pretrained weight {name!r} in this package (shipped: {shipped})")
    return weights_dir() / f"{name}.pt"


def card(name: str) -> dict[str, Any]:
    """The card of weight ``name``: how it was trained and what it measured."""
    return json.loads(path(name).with_suffix(".json").read_text())


def load(name: str, map_location: str = "cpu") -> dict[str, Any]:
    """The checkpoint of weight ``name`` (``model``, ``kwargs``, ``config``), loaded with ``weights_only=True``."""
    return runs.load_checkpoint(path(name), map_location=map_location)


def save(folder: str | Path, name: str, checkpoint: dict[str, Any], card: dict[str, Any]) -> None:
    """Write ``NAME.pt`` (tensors and plain data only) and ``NAME.json`` into ``folder``, each atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    runs.save_checkpoint(checkpoint, folder / f"{name}.pt")
    runs.write_json(folder / f"{name}.json", card)
