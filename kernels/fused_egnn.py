"""Fused Triton kernels for the edge computation and aggregation of :class:`~geomanip.kernels.EGNNConv`.

For every edge ``j -> i`` (``dx = x_i - x_j``, ``[C, D]``), one kernel computes and aggregates

    pre   = A[i] + B[j] + |dx|^2 @ W_d.T + e_ij @ W_e.T         (A, B: the node terms of edge_lin1)
    m     = silu(silu(pre) @ W_2.T + b_2)                        (edge_lin2)
    a     = sigmoid(m . w_a + b_a)  or 1                          (attention="gate" or "none")
    w     = [tanh](silu(m @ W_c1.T + b_c1) @ W_c2.T)             (coord_lin1, coord_lin2)
    u     = dx / (|dx| + kappa)  or dx                            (norm_constant or None)
    m_i  += a * m ;  dx_i += u * w

without writing any ``[E, H]`` tensor to memory: a program takes a block of destination-sorted edges
(:class:`~geomanip.kernels.EdgeLayout`), gathers the node terms, runs both MLPs on the block with ``tl.dot`` and adds
the results into the node outputs with atomics. Programs loop over blocks (as many programs as fill the GPU),
so each loads the weights once. The backward kernel recomputes the forward of each block
(nothing per edge is saved) and accumulates the weight gradients of its blocks in registers; each program
writes one partial sum, and the partials are added with ``torch.sum`` (deterministic, and no atomics on the
small, hot weight tensors). Gradients of node inputs are added with atomics.

Numerics: accumulation is float32 throughout; float32 inputs use exact (``ieee``) float32 dot products, so
results match the PyTorch path to rounding (about 1e-6; atomics make the summation order vary between
runs). bfloat16 inputs use bfloat16 dot products with float32 accumulation.

``attention="softmax"`` needs a per-destination normalisation before aggregation and is left to the
PyTorch path (:data:`unsupported` says so).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from geomanip.kernels.backend import triton_interpreting
from geomanip.kernels.edge_layout import EdgeLayout

__all__ = ["fused_egnn_edges"]

_BLOCK_E = 32


def _egnn_fwd(
    SRC,
    DST,
    PERM,
    A,
    BV,
    XD,
    XS,
    W1S,
    EA,
    W2,
    B2,
    WA,
    BA,
    WC1,
    BC1,
    WC2,
    MI,
    DXI,
    E,
    num_blocks,
    kappa,
    tiny,
    H: tl.constexpr,
    HP: tl.constexpr,
    C: tl.constexpr,
    CP: tl.constexpr,
    D: tl.constexpr,
    DP: tl.constexpr,
    ED: tl.constexpr,
    EP: tl.constexpr,
    BE: tl.constexpr,
    GATE: tl.constexpr,
    COORD: tl.constexpr,
    TANH: tl.constexpr,
    NORM: tl.constexpr,
    LOW: tl.constexpr,
):
    KS: tl.constexpr = C + ED  # columns of W1S: [|dx|^2 (C) | edge attributes (ED)]
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    hh = tl.arange(0, HP)
    mh = hh < H
    cc = tl.arange(0, CP)
    mc = cc < C
    dd = tl.arange(0, DP)
    kk = tl.arange(0, EP)
    mk = kk < ED
    mhh = mh[:, None] & mh[None, :]
    off3 = cc[None, :, None] * D + dd[None, None, :]

    # Weights, loaded once per program (programs loop over edge blocks); "t" marks a transposed copy ([in, out]).
    wdt = tl.load(W1S + hh[None, :] * KS + cc[:, None], mask=mc[:, None] & mh[None, :], other=0.0).to(tl.float32)
    wet = tl.load(W1S + hh[None, :] * KS + C + kk[:, None], mask=mk[:, None] & mh[None, :], other=0.0)
    w2t = tl.load(W2 + hh[None, :] * H + hh[:, None], mask=mhh, other=0.0)
    b2 = tl.load(B2 + hh, mask=mh, other=0.0).to(tl.float32)

    for blk in range(pid, num_blocks, nprog):
        e = blk * BE + tl.arange(0, BE)
        me = e < E
        src = tl.load(SRC + e, mask=me, other=0).to(tl.int64)
        dst = tl.load(DST + e, mask=me, other=0).to(tl.int64)
        m2 = me[:, None] & mh[None, :]
        m3 = me[:, None, None] & mc[None, :, None] & (dd < D)[None, None, :]

        pre = tl.load(A + dst[:, None] * H + hh[None, :], mask=m2, other=0.0).to(tl.float32)
        pre += tl.load(BV + src[:, None] * H + hh[None, :], mask=m2, other=0.0).to(tl.float32)
        dx = tl.load(XD + dst[:, None, None] * (C * D) + off3, mask=m3, other=0.0).to(tl.float32)
        dx -= tl.load(XS + src[:, None, None] * (C * D) + off3, mask=m3, other=0.0).to(tl.float32)
        d2 = tl.sum(dx * dx, axis=2)  # [BE, CP]
        pre += tl.dot(d2, wdt, input_precision="ieee")
        if ED > 0:
            perm = tl.load(PERM + e, mask=me, other=0)
            ea = tl.load(EA + perm[:, None] * ED + kk[None, :], mask=me[:, None] & mk[None, :], other=0.0)
            pre += tl.dot(ea.to(tl.float32), wet.to(tl.float32), input_precision="ieee")
        s1 = pre * tl.sigmoid(pre)
        if LOW:
            z = tl.dot(s1.to(tl.bfloat16), w2t.to(tl.bfloat16))
        else:
            z = tl.dot(s1, w2t.to(tl.float32), input_precision="ieee")
        z += b2[None, :]
        m = z * tl.sigmoid(z)
        m = tl.where(m2, m, 0.0)

        if GATE:
            wa = tl.load(WA + hh, mask=mh, other=0.0).to(tl.float32)
            a = tl.sigmoid(tl.sum(m * wa[None, :], axis=1) + tl.load(BA).to(tl.float32))
            tl.atomic_add(MI + dst[:, None] * H + hh[None, :], m * a[:, None], mask=m2)
        else:
            tl.atomic_add(MI + dst[:, None] * H + hh[None, :], m, mask=m2)

        if COORD:
            wc1t = tl.load(WC1 + hh[None, :] * H + hh[:, None], mask=mhh, other=0.0)
            if LOW:
                zc = tl.dot(m.to(tl.bfloat16), wc1t.to(tl.bfloat16))
            else:
                zc = tl.dot(m, wc1t.to(tl.float32), input_precision="ieee")
            zc += tl.load(BC1 + hh, mask=mh, other=0.0).to(tl.float32)[None, :]
            c1 = zc * tl.sigmoid(zc)
            wc2t = tl.load(WC2 + cc[None, :] * H + hh[:, None], mask=mh[:, None] & mc[None, :], other=0.0)
            w = tl.dot(c1, wc2t.to(tl.float32), input_precision="ieee")  # [BE, CP]
            if TANH:
                w = 2.0 * tl.sigmoid(2.0 * w) - 1.0
            if NORM:
                u = dx / (tl.sqrt(tl.maximum(d2, tiny)) + kappa)[:, :, None]
            else:
                u = dx
            tl.atomic_add(DXI + dst[:, None, None] * (C * D) + off3, u * w[:, :, None], mask=m3)


def _egnn_bwd(
    SRC,
    DST,
    PERM,
    A,
    BV,
    XD,
    XS,
    W1S,
    EA,
    W2,
    B2,
    WA,
    BA,
    WC1,
    BC1,
    WC2,
    GMI,
    GDXI,
    GA,
    GBV,
    GXD,
    GXS,
    GEA,
    PW1S,
    PW2,
    PB2,
    PWA,
    PBA,
    PWC1,
    PBC1,
    PWC2,
    E,
    num_blocks,
    kappa,
    tiny,
    H: tl.constexpr,
    HP: tl.constexpr,
    C: tl.constexpr,
    CP: tl.constexpr,
    D: tl.constexpr,
    DP: tl.constexpr,
    ED: tl.constexpr,
    EP: tl.constexpr,
    BE: tl.constexpr,
    GATE: tl.constexpr,
    COORD: tl.constexpr,
    TANH: tl.constexpr,
    NORM: tl.constexpr,
    LOW: tl.constexpr,
):
    KS: tl.constexpr = C + ED
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    hh = tl.arange(0, HP)
    mh = hh < H
    cc = tl.arange(0, CP)
    mc = cc < C
    dd = tl.arange(0, DP)
    kk = tl.arange(0, EP)
    mk = kk < ED
    mhh = mh[:, None] & mh[None, :]
    off3 = cc[None, :, None] * D + dd[None, None, :]

    # Weights, loaded once per program; "t" marks a transposed copy ([in, out]).
    wdt = tl.load(W1S + hh[None, :] * KS + cc[:, None], mask=mc[:, None] & mh[None, :], other=0.0).to(tl.float32)
    wd = tl.load(W1S + hh[:, None] * KS + cc[None, :], mask=mh[:, None] & mc[None, :], other=0.0).to(tl.float32)
    w2 = tl.load(W2 + hh[:, None] * H + hh[None, :], mask=mhh, other=0.0)
    w2t = tl.load(W2 + hh[None, :] * H + hh[:, None], mask=mhh, other=0.0)
    b2 = tl.load(B2 + hh, mask=mh, other=0.0).to(tl.float32)

    # Per-program partial sums of the weight gradients.
    acc_wd = tl.zeros([CP, HP], dtype=tl.float32)  # transposed gradient of W1S[:, :C]
    acc_we = tl.zeros([EP, HP], dtype=tl.float32)  # transposed gradient of W1S[:, C:]
    acc_w2 = tl.zeros([HP, HP], dtype=tl.float32)
    acc_b2 = tl.zeros([HP], dtype=tl.float32)
    acc_wa = tl.zeros([HP], dtype=tl.float32)
    acc_ba = tl.zeros([HP], dtype=tl.float32)  # only element 0 is used; a vector keeps one code path
    acc_wc1 = tl.zeros([HP, HP], dtype=tl.float32)
    acc_bc1 = tl.zeros([HP], dtype=tl.float32)
    acc_wc2 = tl.zeros([CP, HP], dtype=tl.float32)

    for blk in range(pid, num_blocks, nprog):
        e = blk * BE + tl.arange(0, BE)
        me = e < E
        src = tl.load(SRC + e, mask=me, other=0).to(tl.int64)
        dst = tl.load(DST + e, mask=me, other=0).to(tl.int64)
        m2 = me[:, None] & mh[None, :]
        m3 = me[:, None, None] & mc[None, :, None] & (dd < D)[None, None, :]

        # Recompute the forward of this block.
        pre = tl.load(A + dst[:, None] * H + hh[None, :], mask=m2, other=0.0).to(tl.float32)
        pre += tl.load(BV + src[:, None] * H + hh[None, :], mask=m2, other=0.0).to(tl.float32)
        dx = tl.load(XD + dst[:, None, None] * (C * D) + off3, mask=m3, other=0.0).to(tl.float32)
        dx -= tl.load(XS + src[:, None, None] * (C * D) + off3, mask=m3, other=0.0).to(tl.float32)
        d2 = tl.sum(dx * dx, axis=2)
        pre += tl.dot(d2, wdt, input_precision="ieee")
        if ED > 0:
            perm = tl.load(PERM + e, mask=me, other=0)
            ea = tl.load(EA + perm[:, None] * ED + kk[None, :], mask=me[:, None] & mk[None, :], other=0.0)
            ea = ea.to(tl.float32)
            wet = tl.load(W1S + hh[None, :] * KS + C + kk[:, None], mask=mk[:, None] & mh[None, :], other=0.0)
            pre += tl.dot(ea, wet.to(tl.float32), input_precision="ieee")
        sig_pre = tl.sigmoid(pre)
        s1 = pre * sig_pre
        if LOW:
            z = tl.dot(s1.to(tl.bfloat16), w2t.to(tl.bfloat16))
        else:
            z = tl.dot(s1, w2t.to(tl.float32), input_precision="ieee")
        z += b2[None, :]
        sig_z = tl.sigmoid(z)
        m = tl.where(m2, z * sig_z, 0.0)

        # Messages: m_i += a * m.
        gmi = tl.load(GMI + dst[:, None] * H + hh[None, :], mask=m2, other=0.0)
        if GATE:
            wa = tl.load(WA + hh, mask=mh, other=0.0).to(tl.float32)
            a = tl.sigmoid(tl.sum(m * wa[None, :], axis=1) + tl.load(BA).to(tl.float32))
            g_logit = tl.sum(gmi * m, axis=1) * a * (1.0 - a)
            g_m = gmi * a[:, None] + g_logit[:, None] * wa[None, :]
            acc_wa += tl.sum(g_logit[:, None] * m, axis=0)
            acc_ba += tl.where(hh == 0, tl.sum(g_logit, axis=0), 0.0)
        else:
            g_m = gmi

        # Coordinates: dx_i += u * w.
        g_dx = tl.zeros([BE, CP, DP], dtype=tl.float32)
        if COORD:
            wc1 = tl.load(WC1 + hh[:, None] * H + hh[None, :], mask=mhh, other=0.0)
            wc1t = tl.load(WC1 + hh[None, :] * H + hh[:, None], mask=mhh, other=0.0)
            if LOW:
                zc = tl.dot(m.to(tl.bfloat16), wc1t.to(tl.bfloat16))
            else:
                zc = tl.dot(m, wc1t.to(tl.float32), input_precision="ieee")
            zc += tl.load(BC1 + hh, mask=mh, other=0.0).to(tl.float32)[None, :]
            sig_zc = tl.sigmoid(zc)
            c1 = tl.where(m2, zc * sig_zc, 0.0)
            wc2 = tl.load(WC2 + cc[:, None] * H + hh[None, :], mask=mc[:, None] & mh[None, :], other=0.0)
            wc2 = wc2.to(tl.float32)
            wc2t = tl.load(WC2 + cc[None, :] * H + hh[:, None], mask=mh[:, None] & mc[None, :], other=0.0)
            w = tl.dot(c1, wc2t.to(tl.float32), input_precision="ieee")
            if TANH:
                w = 2.0 * tl.sigmoid(2.0 * w) - 1.0
            if NORM:
                r = tl.sqrt(tl.maximum(d2, tiny))
                den = r + kappa
                u = dx / den[:, :, None]
            else:
                u = dx
            gdx3 = tl.load(GDXI + dst[:, None, None] * (C * D) + off3, mask=m3, other=0.0)
            g_w = tl.sum(gdx3 * u, axis=2)  # [BE, CP]
            if TANH:
                g_w = g_w * (1.0 - w * w)
            acc_wc2 += tl.dot(tl.trans(g_w), c1, input_precision="ieee")
            g_c1 = tl.dot(g_w, wc2, input_precision="ieee")
            g_zc = g_c1 * sig_zc * (1.0 + zc * (1.0 - sig_zc))
            g_zc = tl.where(m2, g_zc, 0.0)
            acc_wc1 += tl.dot(tl.trans(g_zc), m, input_precision="ieee")
            acc_bc1 += tl.sum(g_zc, axis=0)
            if LOW:
                g_m += tl.dot(g_zc.to(tl.bfloat16), wc1.to(tl.bfloat16))
            else:
                g_m += tl.dot(g_zc, wc1.to(tl.float32), input_precision="ieee")
            g_u = gdx3 * w[:, :, None]
            if NORM:
                # u = dx / (r + kappa) with r = sqrt(max(|dx|^2, tiny)); the clamp passes no gradient below tiny.
                radial = tl.sum(g_u * dx, axis=2) / (den * den * r)
                radial = tl.where(d2 > tiny, radial, 0.0)
                g_dx = g_u / den[:, :, None] - dx * radial[:, :, None]
            else:
                g_dx = g_u

        # Edge MLP.
        g_z = g_m * sig_z * (1.0 + z * (1.0 - sig_z))
        g_z = tl.where(m2, g_z, 0.0)
        acc_w2 += tl.dot(tl.trans(g_z), s1, input_precision="ieee")
        acc_b2 += tl.sum(g_z, axis=0)
        if LOW:
            g_s1 = tl.dot(g_z.to(tl.bfloat16), w2.to(tl.bfloat16))
        else:
            g_s1 = tl.dot(g_z, w2.to(tl.float32), input_precision="ieee")
        g_pre = g_s1 * sig_pre * (1.0 + pre * (1.0 - sig_pre))
        g_pre = tl.where(m2, g_pre, 0.0)
        tl.atomic_add(GA + dst[:, None] * H + hh[None, :], g_pre, mask=m2)
        tl.atomic_add(GBV + src[:, None] * H + hh[None, :], g_pre, mask=m2)
        acc_wd += tl.dot(tl.trans(d2), g_pre, input_precision="ieee")
        g_d2 = tl.dot(g_pre, wd, input_precision="ieee")  # [BE, CP]
        g_dx += 2.0 * dx * g_d2[:, :, None]
        tl.atomic_add(GXD + dst[:, None, None] * (C * D) + off3, g_dx, mask=m3)
        tl.atomic_add(GXS + src[:, None, None] * (C * D) + off3, -g_dx, mask=m3)
        if ED > 0:
            we = tl.load(W1S + hh[:, None] * KS + C + kk[None, :], mask=mh[:, None] & mk[None, :], other=0.0)
            g_ea = tl.dot(g_pre, we.to(tl.float32), input_precision="ieee")  # [BE, EP]
            tl.store(GEA + perm[:, None] * ED + kk[None, :], g_ea, mask=me[:, None] & mk[None, :])
            acc_we += tl.dot(tl.trans(ea), g_pre, input_precision="ieee")

    # One partial per program; the host adds them up.
    row_ch = cc[:, None] * HP + hh[None, :]
    tl.store(PW1S + pid * (CP + EP) * HP + row_ch, acc_wd)
    tl.store(PW1S + pid * (CP + EP) * HP + CP * HP + kk[:, None] * HP + hh[None, :], acc_we)
    row_hh = hh[:, None] * HP + hh[None, :]
    tl.store(PW2 + pid * HP * HP + row_hh, acc_w2)
    tl.store(PB2 + pid * HP + hh, acc_b2)
    tl.store(PWA + pid * HP + hh, acc_wa)
    tl.store(PBA + pid * HP + hh, acc_ba)
    tl.store(PWC1 + pid * HP * HP + row_hh, acc_wc1)
    tl.store(PBC1 + pid * HP + hh, acc_bc1)
    tl.store(PWC2 + pid * CP * HP + row_ch, acc_wc2)


_JIT: dict[tuple[str, bool], object] = {}


def _kernel(fn):
    # triton.jit decides between compiling and interpreting when it wraps the function, from TRITON_INTERPRET;
    # wrapping here, on first use in each mode, lets that variable be read at call time like the backend's.
    key = (fn.__name__, triton_interpreting())
    if key not in _JIT:
        _JIT[key] = triton.jit(fn)
    return _JIT[key]


def _pow2(n: int, lo: int = 16) -> int:
    return max(lo, triton.next_power_of_2(max(n, 1)))


def _warps(hp: int) -> int:
    # The backward keeps two [HP, HP] float32 weight-gradient accumulators per program in registers: at HP = 128
    # that is 128 KB, which 4 warps cannot hold without spilling. Untuned (no GPU was available to tune on).
    return 4 if hp <= 64 else 8


def _num_programs(num_blocks: int, device: torch.device) -> int:
    # Enough programs to fill the GPU, few enough that the per-program weight partials stay small.
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        return max(1, min(num_blocks, 4 * sms))
    return max(1, min(num_blocks, 2))


class _EGNNEdges(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        A: Tensor,
        BV: Tensor,
        XD: Tensor,
        XS: Tensor,
        W1S: Tensor,
        EA: Tensor | None,
        W2: Tensor,
        B2: Tensor,
        WA: Tensor | None,
        BA: Tensor | None,
        WC1: Tensor | None,
        BC1: Tensor | None,
        WC2: Tensor | None,
        layout: EdgeLayout,
        opts: dict,
    ) -> tuple[Tensor, Tensor]:
        A, BV, XD, XS, W1S, W2, B2 = (t.contiguous() for t in (A, BV, XD, XS, W1S, W2, B2))
        EA = EA.contiguous() if EA is not None else None
        n_dst, C, D = XD.shape
        H = A.size(1)
        MI = torch.zeros(n_dst, H, dtype=torch.float32, device=A.device)
        DXI = torch.zeros(n_dst, C, D, dtype=torch.float32, device=A.device)
        E = layout.num_edges
        dummy = A
        args = (
            layout.src,
            layout.dst,
            layout.perm,
            A,
            BV,
            XD,
            XS,
            W1S,
            EA if EA is not None else dummy,
            W2,
            B2,
            WA if WA is not None else dummy,
            BA if BA is not None else dummy,
            WC1 if WC1 is not None else dummy,
            BC1 if BC1 is not None else dummy,
            WC2 if WC2 is not None else dummy,
        )
        meta = _meta(H, C, D, 0 if EA is None else EA.size(1), A.dtype, opts)
        if E:
            num_blocks = triton.cdiv(E, meta["BE"])
            grid = (_num_programs(num_blocks, A.device),)
            _kernel(_egnn_fwd)[grid](
                *args, MI, DXI, E, num_blocks, opts["kappa"], opts["tiny"], num_warps=_warps(meta["HP"]), **meta
            )
        ctx.save_for_backward(A, BV, XD, XS, W1S, EA, W2, B2, WA, BA, WC1, BC1, WC2)
        ctx.layout, ctx.meta, ctx.opts = layout, meta, opts
        return MI.to(A.dtype), DXI.to(XD.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_mi: Tensor, g_dxi: Tensor):
        A, BV, XD, XS, W1S, EA, W2, B2, WA, BA, WC1, BC1, WC2 = ctx.saved_tensors
        layout, meta, opts = ctx.layout, ctx.meta, ctx.opts
        dev, H, C = A.device, A.size(1), XD.size(1)
        HP, CP, EP, ED = meta["HP"], meta["CP"], meta["EP"], meta["ED"]
        f32 = dict(dtype=torch.float32, device=dev)
        g_mi = g_mi.float().contiguous()
        g_dxi = g_dxi.float().contiguous()
        GA, GBV = torch.zeros(A.shape, **f32), torch.zeros(BV.shape, **f32)
        GXD, GXS = torch.zeros(XD.shape, **f32), torch.zeros(XS.shape, **f32)
        GEA = torch.zeros(EA.shape, **f32) if EA is not None else GA
        E = layout.num_edges
        num_blocks = triton.cdiv(E, meta["BE"])
        P = _num_programs(num_blocks, dev)
        PW1S = torch.zeros(P, CP + EP, HP, **f32)
        PW2, PWC1 = torch.zeros(P, HP, HP, **f32), torch.zeros(P, HP, HP, **f32)
        PB2, PWA, PBA, PBC1 = (torch.zeros(P, HP, **f32) for _ in range(4))
        PWC2 = torch.zeros(P, CP, HP, **f32)
        if E:
            dummy = A
            _kernel(_egnn_bwd)[(P,)](
                layout.src,
                layout.dst,
                layout.perm,
                A,
                BV,
                XD,
                XS,
                W1S,
                EA if EA is not None else dummy,
                W2,
                B2,
                WA if WA is not None else dummy,
                BA if BA is not None else dummy,
                WC1 if WC1 is not None else dummy,
                BC1 if BC1 is not None else dummy,
                WC2 if WC2 is not None else dummy,
                g_mi,
                g_dxi,
                GA,
                GBV,
                GXD,
                GXS,
                GEA,
                PW1S,
                PW2,
                PB2,
                PWA,
                PBA,
                PWC1,
                PBC1,
                PWC2,
                E,
                num_blocks,
                opts["kappa"],
                opts["tiny"],
                num_warps=_warps(HP),
                **meta,
            )
        w1s = PW1S.sum(0)
        g_w1s = torch.cat([w1s[:C, :H], w1s[CP : CP + ED, :H]], 0).T
        g_w2 = PW2.sum(0)[:H, :H]
        g_b2 = PB2.sum(0)[:H]
        g_wa = PWA.sum(0)[:H] if WA is not None else None
        g_ba = PBA.sum(0)[:1].view(BA.shape) if BA is not None else None
        g_wc1 = PWC1.sum(0)[:H, :H] if WC1 is not None else None
        g_bc1 = PBC1.sum(0)[:H] if BC1 is not None else None
        g_wc2 = PWC2.sum(0)[:C, :H] if WC2 is not None else None

        def cast(g: Tensor | None, like: Tensor | None) -> Tensor | None:
            return None if g is None or like is None else g.to(like.dtype).view(like.shape)

        return (
            cast(GA, A),
            cast(GBV, BV),
            cast(GXD, XD),
            cast(GXS, XS),
            cast(g_w1s, W1S),
            cast(GEA, EA) if EA is not None else None,
            cast(g_w2, W2),
            cast(g_b2, B2),
            cast(g_wa, WA),
            cast(g_ba, BA),
            cast(g_wc1, WC1),
            cast(g_bc1, BC1),
            cast(g_wc2, WC2),
            None,
            None,
        )


def _meta(H: int, C: int, D: int, ED: int, dtype: torch.dtype, opts: dict) -> dict:
    return dict(
        H=H,
        HP=_pow2(H),
        C=C,
        CP=_pow2(C),
        D=D,
        DP=_pow2(D, lo=1),
        ED=ED,
        EP=_pow2(ED),
        BE=_BLOCK_E,
        GATE=opts["gate"],
        COORD=opts["coord"],
        TANH=opts["tanh"],
        NORM=opts["norm"],
        # Triton's interpreter computes bfloat16 dot products wrongly (checked with triton 3.9), so under it
        # bfloat16 inputs are multiplied in float32; on the GPU they use bfloat16 tensor-core products.
        LOW=dtype == torch.bfloat16 and not triton_interpreting(),
    )


def fused_egnn_edges(
    layout: EdgeLayout,
    node_dst: Tensor,
    node_src: Tensor,
    x_dst: Tensor,
    x_src: Tensor,
    w_scalar: Tensor,
    edge_attr: Tensor | None,
    w2: Tensor,
    b2: Tensor,
    att_w: Tensor | None,
    att_b: Tensor | None,
    coord_w1: Tensor | None,
    coord_b1: Tensor | None,
    coord_w2: Tensor | None,
    tanh: bool,
    norm_constant: float | None,
) -> tuple[Tensor, Tensor]:
    """Aggregated messages and coordinate updates of an EGNN layer, fused over the edges of ``layout``.

    Shapes: ``node_dst [N_d, H]`` (destination terms of the first edge layer, bias included), ``node_src
    [N_s, H]``, ``x_dst [N_d, C, D]``, ``x_src [N_s, C, D]``, ``w_scalar [H, C + edge_dim]`` (the columns of
    the first edge layer for ``|dx|^2`` and edge attributes), ``edge_attr [E, edge_dim]`` in the original edge
    order, ``w2 [H, H]``, ``b2 [H]``, ``att_w [H]`` and ``att_b [1]`` for a sigmoid gate (``None`` for none),
    ``coord_w1 [H, H]``, ``coord_b1 [H]``, ``coord_w2 [C, H]`` (``None`` to skip the coordinate update).
    Returns ``(sum_j a_ij m_ij [N_d, H], sum_j u_ij w_ij [N_d, C, D])``, differentiable in every tensor.
    """
    opts = dict(
        gate=att_w is not None,
        coord=coord_w1 is not None,
        tanh=tanh,
        norm=norm_constant is not None,
        kappa=float(norm_constant or 0.0),
        tiny=float(torch.finfo(torch.float32).tiny),
    )
    return _EGNNEdges.apply(
        node_dst,
        node_src,
        x_dst,
        x_src,
        w_scalar,
        edge_attr,
        w2,
        b2,
        att_w,
        att_b,
        coord_w1,
        coord_b1,
        coord_w2,
        layout,
        opts,
    )
