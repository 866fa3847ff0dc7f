"""One copy of the batched task logic for NumPy arrays and torch tensors on any device.

The rigid tasks' observation, reward and success functions (:mod:`geomanip.envs.rigid`) are written against
the Python array API: they take ``xp = namespace(x)`` of their input and use only what NumPy (2.x, whose main
namespace implements the standard) and ``array_api_compat``'s torch wrapper both provide. The C MuJoCo
environments call them with NumPy arrays, the MuJoCo Warp batch
(:class:`~geomanip.envs.warp_batch.WarpBatch`) with torch tensors on the simulation's device.

NumPy input takes NumPy itself as the namespace (no wrapper, so the CPU path costs what it did); other arrays
go through ``array_api_compat``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["Array", "as_like", "device", "float32", "namespace", "to_numpy", "zeros"]

Array = Any
"""A NumPy array or a torch tensor (the batched task logic takes either)."""


def namespace(x: Any) -> Any:
    """The array namespace of ``x``: :mod:`numpy` for NumPy arrays, ``array_api_compat``'s otherwise."""
    if isinstance(x, np.ndarray):
        return np
    import array_api_compat

    return array_api_compat.array_namespace(x)


def device(x: Any) -> Any:
    """The device of ``x``: ``"cpu"`` for NumPy arrays, the tensor's device otherwise."""
    return "cpu" if isinstance(x, np.ndarray) else x.device


@functools.lru_cache(maxsize=512)
def _torch_constant(data: bytes, dtype: str, shape: tuple[int, ...], like_dtype: Any, device: Any) -> Any:
    import torch

    value = np.frombuffer(data, dtype=dtype).reshape(shape)
    # Floats take the dtype of the array they meet (as a NumPy float64 constant would); integers stay integers.
    target = like_dtype if value.dtype.kind == "f" else torch.int64
    return torch.as_tensor(value.copy(), dtype=target, device=device)


def as_like(value: np.ndarray, like: Any) -> Any:
    """The NumPy constant ``value`` as an array of ``like``'s kind: itself for NumPy, else a tensor on ``like``'s
    device (float constants in ``like``'s dtype, integer ones int64), cached so that a step copies no constant
    to the device twice."""
    if isinstance(like, np.ndarray):
        return value
    value = np.ascontiguousarray(value)
    return _torch_constant(value.tobytes(), value.dtype.str, value.shape, like.dtype, like.device)


def zeros(shape: tuple[int, ...], like: Any) -> Any:
    """Zeros of ``shape`` in ``like``'s kind, dtype and device."""
    if isinstance(like, np.ndarray):
        return np.zeros(shape, dtype=like.dtype)
    return namespace(like).zeros(shape, dtype=like.dtype, device=like.device)


def float32(x: Any) -> Any:
    """``x`` as C-contiguous float32 (the observations' dtype), a copy."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32, order="C")
    return x.to(dtype=namespace(x).float32).contiguous()


def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a NumPy array (a device-to-host copy for tensors; NumPy arrays are returned as they are)."""
    if isinstance(x, np.ndarray):
        return x
    return x.detach().cpu().numpy()
