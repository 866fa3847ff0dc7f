"""Shared helpers of the equivariance tests: random group elements and their action on graphs."""

from __future__ import annotations

import torch
from torch import Tensor

from geomanip.kernels import random_rotation, rotation_2d

# Float64 tolerance of every exact-equivariance check.
RTOL = 1e-9


def random_orthogonal(dim: int, reflect: bool = False) -> Tensor:
    """A random rotation (``reflect=False``) or rotoreflection, ``[dim, dim]`` float64."""
    if dim == 3:
        Q = random_rotation(dtype=torch.float64)
    elif dim == 2:
        Q = rotation_2d(torch.rand((), dtype=torch.float64) * 6.283185307179586)
    else:
        raise ValueError(dim)
    if reflect:
        Q = Q @ torch.diag(torch.tensor([-1.0] + [1.0] * (dim - 1), dtype=torch.float64))
    return Q


def permute_graph(perm: Tensor, edge_index: Tensor) -> Tensor:
    """Relabel ``edge_index`` after the nodes are reordered as ``new = old[perm]``."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    return inv[edge_index]


def assert_close(actual: Tensor, expected: Tensor, rtol: float = RTOL) -> None:
    """Equal up to ``rtol`` relative to the size of ``expected`` (max-norm)."""
    scale = expected.abs().max().clamp(min=1.0)
    err = (actual - expected).abs().max()
    assert err <= rtol * scale, f"max abs error {err.item():.3e} exceeds {rtol:.0e} x {scale.item():.3e}"
