"""Fused spatial message passing of the position-orientation convolution, edge chunk by edge chunk.

Computes, for edges ``j -> i`` and directions ``o``,

    g[i, o, c] = sum_{e = (j -> i)} (basis[e, o] @ weight.T)[c] * f[j, o, c]

without keeping any ``[E, O, C]`` tensor alive: the forward walks the edges in chunks and accumulates into
``g``, and the backward recomputes each chunk's kernel and gathered features instead of storing them. Why:
on the CPU an ``[E, O, C]`` tensor is tens to hundreds of MB, and allocating it fresh every step costs more
in page faults than the arithmetic (several times as much for a product written into a new tensor as into a
reused one). Chunks of about 256k elements (1 MB in float32) stay in the allocator's cache. On
CUDA the whole edge set is one chunk unless it is very large.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["fiber_message"]

_CPU_CHUNK_ELEMENTS = 1 << 18
_CUDA_CHUNK_ELEMENTS = 1 << 28


def _chunks(num_edges: int, per_edge: int, device: torch.device, chunk_edges: int | None) -> list[tuple[int, int]]:
    if chunk_edges is None:
        budget = _CUDA_CHUNK_ELEMENTS if device.type == "cuda" else _CPU_CHUNK_ELEMENTS
        chunk_edges = max(1, budget // max(per_edge, 1))
    return [(s, min(s + chunk_edges, num_edges)) for s in range(0, num_edges, chunk_edges)]


class _FiberMessage(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, basis: Tensor, weight: Tensor, f: Tensor, src: Tensor, dst: Tensor, num_dst: int, chunk_edges: int | None
    ) -> Tensor:
        E, O, B = basis.shape
        C = weight.size(0)
        out = f.new_zeros(num_dst, O, C)
        chunks = _chunks(E, O * max(B, C), f.device, chunk_edges)
        for s, e in chunks:
            msg = torch.matmul(basis[s:e], weight.T)
            msg.mul_(f.index_select(0, src[s:e]))
            out.index_add_(0, dst[s:e], msg)
        ctx.save_for_backward(basis, weight, f, src, dst)
        ctx.chunks = chunks
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        basis, weight, f, src, dst = ctx.saved_tensors
        need_basis, need_weight, need_f = ctx.needs_input_grad[:3]
        grad_out = grad_out.contiguous()
        C, B = weight.shape
        grad_basis = torch.empty_like(basis) if need_basis else None
        grad_weight = torch.zeros_like(weight) if need_weight else None
        grad_f = torch.zeros_like(f) if need_f else None
        for s, e in ctx.chunks:
            go = grad_out.index_select(0, dst[s:e])  # [e, O, C]
            if need_f:
                kernel = torch.matmul(basis[s:e], weight.T)
                grad_f.index_add_(0, src[s:e], kernel.mul_(go))
            if need_basis or need_weight:
                grad_kernel = go.mul_(f.index_select(0, src[s:e]))
                if need_weight:
                    grad_weight.addmm_(grad_kernel.reshape(-1, C).T, basis[s:e].reshape(-1, B))
                if need_basis:
                    torch.matmul(grad_kernel, weight, out=grad_basis[s:e])
        return grad_basis, grad_weight, grad_f, None, None, None, None


def fiber_message(
    basis: Tensor,
    weight: Tensor,
    f: Tensor,
    edge_index: Tensor,
    num_dst: int,
    chunk_edges: int | None = None,
) -> Tensor:
    """Sum over incoming edges of ``(basis @ weight.T) * f[source]``, fused and chunked.

    Shapes: ``basis [E, O, B]``, ``weight [C, B]``, ``f [N_s, O, C]``, ``edge_index [2, E]`` (checked by the
    caller) -> ``[num_dst, O, C]``. Differentiable once in ``basis``, ``weight`` and ``f`` (no double
    backward). ``chunk_edges`` overrides the number of edges per chunk.
    """
    return _FiberMessage.apply(basis, weight, f, edge_index[0], edge_index[1], num_dst, chunk_edges)
