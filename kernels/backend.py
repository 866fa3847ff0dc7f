"""Choice between the PyTorch and the fused Triton implementation of a layer's message passing.

Layers that have a fused path (:class:`~geomanip.kernels.EGNNConv`, :class:`~geomanip.kernels.FiberConv`) take a
``backend`` argument, also settable afterwards on a whole model with :func:`set_backend`:

- ``"auto"`` (default): the fused Triton kernels on CUDA tensors when Triton is installed and the layer's
  configuration is one they implement; the PyTorch path otherwise (CPU, float64, unsupported options).
- ``"torch"``: always the PyTorch path.
- ``"triton"``: always the fused path; raises if it cannot run (no Triton, CPU tensors outside Triton's
  interpreter, an option the kernels do not implement) instead of silently falling back.

For ``"auto"`` layers, the environment variable ``GEOMANIP_KERNEL_BACKEND`` (``torch`` or ``triton``), read at
call time, overrides the automatic choice; it exists so that a whole training run can be switched without
touching code. No other global state is involved.

Triton is optional: nothing here imports it. The fused modules (:mod:`geomanip.kernels.fused_egnn`,
:mod:`geomanip.kernels.fused_fiber`) import it and are imported only when the fused path is chosen. With
``TRITON_INTERPRET=1`` in the environment the fused kernels also run on CPU tensors through Triton's
interpreter (slowly; the tests use it).
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from typing import Literal

import torch
from torch import nn

__all__ = ["Backend", "BACKEND_ENV", "resolve_backend", "set_backend", "triton_available", "triton_interpreting"]

Backend = Literal["auto", "torch", "triton"]
BACKEND_ENV = "GEOMANIP_KERNEL_BACKEND"
_BACKENDS = ("auto", "torch", "triton")
# Dtypes the fused kernels implement; float64 (gradcheck) and float16 stay on the PyTorch path.
FUSED_DTYPES = (torch.float32, torch.bfloat16)


@cache
def triton_available() -> bool:
    """Whether the ``triton`` package can be imported (checked once; it does not change within a process)."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreting() -> bool:
    """Whether ``TRITON_INTERPRET`` asks for Triton's CPU interpreter (read now, as Triton reads it)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


def check_backend(backend: str, owner: str) -> None:
    if backend not in _BACKENDS:
        raise ValueError(f"{owner}: backend must be one of {_BACKENDS}, got {backend!r}")


def resolve_backend(backend: str, device: torch.device, unsupported: str | None, owner: str) -> str:
    """``"torch"`` or ``"triton"`` for one call of layer ``owner`` on tensors on ``device``.

    ``unsupported`` names the first option of this call the fused kernels do not implement (``None`` if
    they implement all): ``"auto"`` then falls back to PyTorch, ``"triton"`` raises.
    """
    check_backend(backend, owner)
    if unsupported is None and torch.are_deterministic_algorithms_enabled():
        unsupported = "torch.use_deterministic_algorithms(True): they add into their outputs with atomics"
    if backend == "auto":
        env = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
        if env not in _BACKENDS:
            raise ValueError(f"{BACKEND_ENV} must be one of {_BACKENDS}, got {env!r}")
        backend = env
    if backend == "torch":
        return "torch"
    if backend == "auto":
        ok = device.type == "cuda" and unsupported is None and triton_available()
        return "triton" if ok else "torch"
    if not triton_available():
        raise RuntimeError(f"{owner}: backend='triton' but triton is not installed; pip install triton or use 'torch'")
    if unsupported is not None:
        raise NotImplementedError(
            f"{owner}: the fused Triton kernels do not implement {unsupported}; use backend='torch' (or 'auto')"
        )
    if device.type != "cuda" and not triton_interpreting():
        raise ValueError(
            f"{owner}: backend='triton' needs CUDA tensors (got {device}); set TRITON_INTERPRET=1 to run the "
            "kernels on the CPU through Triton's interpreter"
        )
    return "triton"


def set_backend(module: nn.Module, backend: Backend) -> nn.Module:
    """Set ``backend`` on every layer of ``module`` that has a fused path; returns ``module``.

    Works on any model built from the kernels (HEPi, EqMotion, ...) without changing the model's code.
    """
    check_backend(backend, "set_backend")
    for m in module.modules():
        if hasattr(m, "backend") and isinstance(m.backend, str):
            m.backend = backend
    return module
