"""Gather and scatter primitives over the edges of a graph.

Conventions, fixed once for the whole package: an ``edge_index`` is a ``[2, E]`` integer tensor whose row 0
holds the source node ``j`` and row 1 the destination node ``i`` of each edge ``j -> i`` (PyG's
``flow="source_to_target"``). Messages live on edges, ``[E, ...]``; reductions collect them at their
destination, ``[N, ...]``.

Every function checks its indices unless called with ``validate=False``: layers check their
``edge_index`` once per forward (:func:`check_edge_index`) and then skip the per-call checks, which cost a
device synchronisation on CUDA.

Why these ops: gathers use ``index_select``, whose backward is an ``index_add_``; the alternative ``x[idx]``
backpropagates through a slow accumulating ``index_put``. Sums use ``index_add_``, max uses
``scatter_reduce_("amax")``; all run on CPU and CUDA with native autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "check_edge_index",
    "gather",
    "scatter_sum",
    "scatter_mean",
    "scatter_max",
    "scatter_softmax",
    "in_degree",
]


def check_edge_index(edge_index: Tensor, num_src: int, num_dst: int | None = None) -> None:
    """Raise a ``ValueError`` unless ``edge_index`` is a ``[2, E]`` integer tensor within range.

    ``num_src`` bounds row 0 and ``num_dst`` (default ``num_src``) bounds row 1.
    """
    num_dst = num_src if num_dst is None else num_dst
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"edge_index must be a torch.Tensor, got {type(edge_index).__name__}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"edge_index must hold int64 or int32 indices, got {edge_index.dtype}")
    if edge_index.numel() == 0:
        return
    lo = int(edge_index.min())
    src_hi, dst_hi = int(edge_index[0].max()), int(edge_index[1].max())
    if lo < 0:
        raise ValueError(f"edge_index holds a negative node index ({lo})")
    if src_hi >= num_src:
        raise ValueError(f"edge_index source index {src_hi} out of range for {num_src} source nodes")
    if dst_hi >= num_dst:
        raise ValueError(f"edge_index destination index {dst_hi} out of range for {num_dst} destination nodes")


def _check_index(src: Tensor, index: Tensor, dim_size: int | None, validate: bool) -> int:
    if not validate:
        if dim_size is None:
            raise ValueError("dim_size is required when validate=False")
        return dim_size
    if index.dim() != 1:
        raise ValueError(f"index must be 1-D, got shape {list(index.shape)}")
    if index.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"index must hold int64 or int32 values, got {index.dtype}")
    if src.size(0) != index.numel():
        raise ValueError(
            f"src has {src.size(0)} rows but index has {index.numel()} entries; they must match (one per edge)"
        )
    if index.device != src.device:
        raise ValueError(f"index is on {index.device} but src is on {src.device}")
    if dim_size is None:
        return int(index.max()) + 1 if index.numel() else 0
    if index.numel():
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= dim_size:
            raise ValueError(f"index values span [{lo}, {hi}], outside [0, {dim_size}) for dim_size={dim_size}")
    return dim_size


def gather(x: Tensor, index: Tensor, validate: bool = True) -> Tensor:
    """Rows of ``x`` at ``index``: ``out[e] = x[index[e]]``. Shapes ``[N, ...]``, ``[E]`` -> ``[E, ...]``."""
    if not validate:
        return x.index_select(0, index)
    if index.dim() != 1:
        raise ValueError(f"index must be 1-D, got shape {list(index.shape)}")
    if index.numel():
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= x.size(0):
            raise ValueError(f"gather index values span [{lo}, {hi}], outside [0, {x.size(0)})")
    return x.index_select(0, index)


def scatter_sum(src: Tensor, index: Tensor, dim_size: int | None = None, validate: bool = True) -> Tensor:
    """Sum of the rows of ``src`` that share a destination: ``out[i] = sum_{e: index[e]=i} src[e]``.

    Shapes: ``src [E, ...]``, ``index [E]`` -> ``[dim_size, ...]``; nodes with no edge get zeros.
    """
    n = _check_index(src, index, dim_size, validate)
    out = src.new_zeros((n, *src.shape[1:]))
    return out.index_add_(0, index, src)


def in_degree(index: Tensor, dim_size: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Number of edges arriving at each node, ``[dim_size]``, as ``dtype``."""
    return torch.zeros(dim_size, dtype=dtype, device=index.device).index_add_(
        0, index, torch.ones(index.numel(), dtype=dtype, device=index.device)
    )


def scatter_mean(src: Tensor, index: Tensor, dim_size: int | None = None, validate: bool = True) -> Tensor:
    """Mean of the rows of ``src`` that share a destination; nodes with no edge get zeros."""
    total = scatter_sum(src, index, dim_size, validate)
    count = in_degree(index, total.size(0), src.dtype).clamp_(min=1)
    return total / count.view(-1, *([1] * (src.dim() - 1)))


def scatter_max(src: Tensor, index: Tensor, dim_size: int | None = None, validate: bool = True) -> Tensor:
    """Elementwise maximum of the rows of ``src`` that share a destination; nodes with no edge get zeros.

    Where several edges tie for the maximum, the gradient is shared equally among them (the rule of
    ``scatter_reduce``).
    """
    n = _check_index(src, index, dim_size, validate)
    out = src.new_zeros((n, *src.shape[1:]))
    expanded = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    return out.scatter_reduce(0, expanded, src, reduce="amax", include_self=False)


def scatter_softmax(src: Tensor, index: Tensor, dim_size: int | None = None, validate: bool = True) -> Tensor:
    """Softmax of ``src`` over the edges that share a destination, per trailing element.

    ``out[e] = exp(src[e]) / sum_{e': index[e']=index[e]} exp(src[e'])``; shape ``[E, ...]`` like ``src``.
    The per-destination maximum is subtracted first (as a constant) for numerical stability.
    """
    n = _check_index(src, index, dim_size, validate)
    shift = scatter_max(src.detach(), index, n, validate=False).index_select(0, index)
    exp = (src - shift).exp()
    denom = scatter_sum(exp, index, n, validate=False).index_select(0, index)
    return exp / denom
