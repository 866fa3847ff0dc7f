"""Fused Triton kernels for the spatial message and aggregation of :class:`~geomanip.kernels.FiberConv`.

Computes the same sum as :func:`geomanip.kernels.fiber_message.fiber_message`,

    g[i, o, c] = sum_{e = (j -> i)} (basis[e, o] @ weight.T)[c] * f[j, o, c]

with programs per direction ``o`` that loop over blocks of destination-sorted edges
(:class:`~geomanip.kernels.EdgeLayout`): for each block a program multiplies the basis rows by the weight with
``tl.dot``, multiplies by the gathered source features and adds into ``g`` with atomics, so neither the
``[E, O, C]`` kernel nor the messages are written to memory. The backward recomputes the kernel per block;
it adds ``grad f`` with atomics, writes ``grad basis`` (one row per edge and direction, the size of
``basis`` itself) and keeps per-program partial sums of ``grad weight`` that the host adds up
(deterministic, no atomics on the small weight).

Numerics: float32 accumulation; float32 inputs use exact (``ieee``) float32 dot products; bfloat16 inputs
bfloat16 products with float32 accumulation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from geomanip.kernels.backend import triton_interpreting
from geomanip.kernels.edge_layout import EdgeLayout
from geomanip.kernels.fused_egnn import _kernel, _num_programs, _pow2

__all__ = ["fused_fiber_message"]

_BLOCK_E = 32


def _fiber_fwd(
    SRC,
    DST,
    PERM,
    BASIS,
    W,
    F,
    G,
    E,
    O,
    num_blocks,
    B: tl.constexpr,
    BP: tl.constexpr,
    C: tl.constexpr,
    CP: tl.constexpr,
    BE: tl.constexpr,
    LOW: tl.constexpr,
):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    o = tl.program_id(1).to(tl.int64)
    bb = tl.arange(0, BP)
    mb = bb < B
    cc = tl.arange(0, CP)
    mc = cc < C
    wt = tl.load(W + cc[None, :] * B + bb[:, None], mask=mb[:, None] & mc[None, :], other=0.0)  # [B, C] = W.T
    for blk in range(pid, num_blocks, nprog):
        e = blk * BE + tl.arange(0, BE)
        me = e < E
        src = tl.load(SRC + e, mask=me, other=0).to(tl.int64)
        dst = tl.load(DST + e, mask=me, other=0).to(tl.int64)
        perm = tl.load(PERM + e, mask=me, other=0)
        mbe = me[:, None] & mb[None, :]
        basis = tl.load(BASIS + perm[:, None] * (O * B) + o * B + bb[None, :], mask=mbe, other=0.0)
        if LOW:
            ker = tl.dot(basis.to(tl.bfloat16), wt.to(tl.bfloat16))
        else:
            ker = tl.dot(basis.to(tl.float32), wt.to(tl.float32), input_precision="ieee")
        m2 = me[:, None] & mc[None, :]
        fj = tl.load(F + src[:, None] * (O * C) + o * C + cc[None, :], mask=m2, other=0.0).to(tl.float32)
        tl.atomic_add(G + dst[:, None] * (O * C) + o * C + cc[None, :], ker * fj, mask=m2)


def _fiber_bwd(
    SRC,
    DST,
    PERM,
    BASIS,
    W,
    F,
    GO,
    GBASIS,
    GF,
    PW,
    E,
    O,
    num_blocks,
    B: tl.constexpr,
    BP: tl.constexpr,
    C: tl.constexpr,
    CP: tl.constexpr,
    BE: tl.constexpr,
    LOW: tl.constexpr,
    NEED_BASIS: tl.constexpr,
    NEED_F: tl.constexpr,
):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    o = tl.program_id(1).to(tl.int64)
    bb = tl.arange(0, BP)
    mb = bb < B
    cc = tl.arange(0, CP)
    mc = cc < C
    w = tl.load(W + cc[:, None] * B + bb[None, :], mask=mc[:, None] & mb[None, :], other=0.0).to(tl.float32)
    wt = tl.load(W + cc[None, :] * B + bb[:, None], mask=mb[:, None] & mc[None, :], other=0.0).to(tl.float32)
    acc_w = tl.zeros([CP, BP], dtype=tl.float32)
    for blk in range(pid, num_blocks, nprog):
        e = blk * BE + tl.arange(0, BE)
        me = e < E
        src = tl.load(SRC + e, mask=me, other=0).to(tl.int64)
        dst = tl.load(DST + e, mask=me, other=0).to(tl.int64)
        perm = tl.load(PERM + e, mask=me, other=0)
        mbe = me[:, None] & mb[None, :]
        basis = tl.load(BASIS + perm[:, None] * (O * B) + o * B + bb[None, :], mask=mbe, other=0.0)
        m2 = me[:, None] & mc[None, :]
        go = tl.load(GO + dst[:, None] * (O * C) + o * C + cc[None, :], mask=m2, other=0.0)
        fj = tl.load(F + src[:, None] * (O * C) + o * C + cc[None, :], mask=m2, other=0.0).to(tl.float32)
        if NEED_F:
            if LOW:
                ker = tl.dot(basis.to(tl.bfloat16), wt.to(tl.bfloat16))
            else:
                ker = tl.dot(basis.to(tl.float32), wt, input_precision="ieee")
            tl.atomic_add(GF + src[:, None] * (O * C) + o * C + cc[None, :], ker * go, mask=m2)
        g_ker = go * fj  # [BE, C]
        acc_w += tl.dot(tl.trans(g_ker), basis.to(tl.float32), input_precision="ieee")
        if NEED_BASIS:
            g_basis = tl.dot(g_ker, w, input_precision="ieee")
            tl.store(GBASIS + perm[:, None] * (O * B) + o * B + bb[None, :], g_basis, mask=mbe)
    tl.store(PW + (pid * O + o) * CP * BP + cc[:, None] * BP + bb[None, :], acc_w)


class _FusedFiberMessage(torch.autograd.Function):
    @staticmethod
    def forward(ctx, basis: Tensor, weight: Tensor, f: Tensor, layout: EdgeLayout) -> Tensor:
        basis, weight, f = basis.contiguous(), weight.contiguous(), f.contiguous()
        E, O, B = basis.shape
        C = weight.size(0)
        g = torch.zeros(layout.num_dst, O, C, dtype=torch.float32, device=f.device)
        meta = dict(B=B, BP=_pow2(B), C=C, CP=_pow2(C), BE=_BLOCK_E, LOW=_low(f.dtype))
        if E:
            num_blocks = triton.cdiv(E, _BLOCK_E)
            # Programs loop over edge blocks and load the weight once; the directions split the GPU's fill.
            grid = (triton.cdiv(_num_programs(num_blocks, f.device), O), O)
            args = (layout.src, layout.dst, layout.perm, basis, weight, f, g, E, O, num_blocks)
            _kernel(_fiber_fwd)[grid](*args, **meta)
        ctx.save_for_backward(basis, weight, f)
        ctx.layout, ctx.meta = layout, meta
        return g.to(f.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        basis, weight, f = ctx.saved_tensors
        layout, meta = ctx.layout, ctx.meta
        need_basis, need_weight, need_f = ctx.needs_input_grad[:3]
        E, O, B = basis.shape
        f32 = dict(dtype=torch.float32, device=f.device)
        grad_out = grad_out.float().contiguous()
        # Every (edge, direction) row of grad basis is written exactly once, so it needs no zeroing.
        g_basis = torch.empty(basis.shape, **f32) if need_basis else grad_out
        g_f = torch.zeros(f.shape, **f32) if need_f else grad_out
        num_blocks = triton.cdiv(E, _BLOCK_E)
        # The grid's second axis (directions) multiplies the programs: split the GPU's fill among directions.
        P = triton.cdiv(_num_programs(num_blocks, f.device), O)
        partial = torch.zeros(P, O, meta["CP"], meta["BP"], **f32)
        if E:
            _kernel(_fiber_bwd)[(P, O)](
                layout.src,
                layout.dst,
                layout.perm,
                basis,
                weight,
                f,
                grad_out,
                g_basis,
                g_f,
                partial,
                E,
                O,
                num_blocks,
                NEED_BASIS=need_basis,
                NEED_F=need_f,
                **meta,
            )
        grad_weight = partial.sum((0, 1))[: weight.size(0), :B].to(weight.dtype) if need_weight else None
        return (
            g_basis.to(basis.dtype) if need_basis else None,
            grad_weight,
            g_f.to(f.dtype) if need_f else None,
            None,
        )


def _low(dtype: torch.dtype) -> bool:
    # Triton's interpreter computes bfloat16 dot products wrongly (triton 3.9): multiply in float32 there.
    return dtype == torch.bfloat16 and not triton_interpreting()


def fused_fiber_message(basis: Tensor, weight: Tensor, f: Tensor, layout: EdgeLayout) -> Tensor:
    """Sum over incoming edges of ``(basis @ weight.T) * f[source]``, fused in Triton.

    Shapes: ``basis [E, O, B]`` (original edge order), ``weight [C, B]``, ``f [N_s, O, C]`` ->
    ``[layout.num_dst, O, C]``. Differentiable once in ``basis``, ``weight`` and ``f``.
    """
    return _FusedFiberMessage.apply(basis, weight, f, layout)
