"""E(n)-equivariant graph convolution with several vector channels per node."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomanip.kernels.backend import FUSED_DTYPES, Backend, check_backend, resolve_backend
from geomanip.kernels.edge_layout import EdgeLayout, as_layout
from geomanip.kernels.scatter import check_edge_index, in_degree, scatter_softmax, scatter_sum

__all__ = ["EGNNConv"]

Pair = Tensor | tuple[Tensor, Tensor]


def _pair(t: Pair) -> tuple[Tensor, Tensor]:
    return (t[0], t[1]) if isinstance(t, tuple) else (t, t)


class EGNNConv(nn.Module):
    r"""E(n)-equivariant graph convolution (EGNN family) with C vector channels per node.

    From "E(n) Equivariant Graph Neural Networks" (Satorras, Hoogeboom, Welling, ICML 2021), extended to C
    vector channels with per-channel distances as EqMotion needs (C = 1 is plain EGNN). For each edge
    ``j -> i``, with ``dx_ij = x_i - x_j`` of shape ``[C, D]``:

    .. math::
        m_{ij} = \phi_e\big(h_i, h_j, \|dx_{ij,1}\|^2, \dots, \|dx_{ij,C}\|^2, e_{ij}\big) \in \mathbb{R}^H

        a_{ij} = \begin{cases} 1 & \text{attention="none"} \\
                 \sigma(w^\top m_{ij}) & \text{attention="gate"} \\
                 \mathrm{softmax}_{j \in N(i)}(w^\top m_{ij}) & \text{attention="softmax"} \end{cases}

        x_{i,c}' = x_{i,c} + \mathrm{aggr}_{j} \frac{dx_{ij,c}}{\|dx_{ij,c}\| + \kappa}\,\phi_x(m_{ij})_c

        h_i' = h_i + \phi_h\Big(h_i, \sum_j a_{ij} m_{ij}\Big)

    ``aggr`` is the mean (default, as in GeoTDM) or the sum over incoming edges; ``kappa`` is
    ``norm_constant`` (``None`` leaves ``dx`` unnormalised). The residuals apply when ``residual=True``
    (``h_i + ...`` only if ``in_channels == out_channels``). The layer is exactly equivariant to rotations,
    reflections and translations of ``x`` and to permutations of the nodes; ``h`` is invariant.

    Speed: the first layer of :math:`\phi_e` is linear in the concatenation ``[h_i, h_j, ...]``, so its
    node terms are computed once per node and then gathered (``N x H`` matmuls instead of ``E x 2F x H``),
    and the edge terms of ``|dx|^2`` and ``e_ij`` are added by fused ``addmm``. On CUDA the per-edge part
    (both edge MLPs, the gate and both aggregations) runs as one fused Triton kernel
    (:mod:`geomanip.kernels.fused_egnn`) that writes no per-edge tensor; see ``backend``.

    Args:
        in_channels: node feature size F.
        hidden_channels: message size H.
        out_channels: output node feature size (default F).
        vector_channels: vector channels C per node.
        edge_dim: size of optional edge attributes ``e_ij`` (0 for none).
        attention: ``"none"``, ``"gate"`` (sigmoid gate per message) or ``"softmax"`` over incoming edges.
        coord_aggr: ``"mean"`` or ``"sum"`` of the coordinate messages.
        norm_constant: ``kappa`` in the normalisation; ``None`` for no normalisation.
        update_coords: when False, ``x`` is returned unchanged (an invariant message-passing layer).
        residual: add the inputs to the outputs; set False inside :class:`~geomanip.kernels.HeteroConv`, which sums
            the updates of several edge types, and add the residual once outside.
        tanh: squash the coordinate weights with ``tanh`` (stabilises deep stacks).
        backend: ``"auto"`` (fused Triton kernels on CUDA when available, PyTorch otherwise), ``"torch"`` or
            ``"triton"``; see :mod:`geomanip.kernels.backend`. ``attention="softmax"`` and float64 use PyTorch.

    Shapes:
        - h: ``[N, F]`` or a ``(source [N_s, F], destination [N_d, F])`` pair for bipartite graphs
        - x: ``[N, C, D]`` or a pair likewise (any D; D = 2 or 3 in practice)
        - edge_index: ``[2, E]``, row 0 source, row 1 destination, or an :class:`~geomanip.kernels.EdgeLayout` of it
          (built once per graph; saves the per-call index check and the fused path's sort)
        - edge_attr: ``[E, edge_dim]`` or None
        - output: ``(h' [N_d, out_channels], x' [N_d, C, D])``
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int | None = None,
        vector_channels: int = 1,
        edge_dim: int = 0,
        attention: Literal["none", "gate", "softmax"] = "none",
        coord_aggr: Literal["mean", "sum"] = "mean",
        norm_constant: float | None = 1.0,
        update_coords: bool = True,
        residual: bool = True,
        tanh: bool = False,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        check_backend(backend, "EGNNConv")
        if attention not in ("none", "gate", "softmax"):
            raise ValueError(f"EGNNConv: attention must be 'none', 'gate' or 'softmax', got {attention!r}")
        if coord_aggr not in ("mean", "sum"):
            raise ValueError(f"EGNNConv: coord_aggr must be 'mean' or 'sum', got {coord_aggr!r}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.vector_channels = vector_channels
        self.edge_dim = edge_dim
        self.attention = attention
        self.coord_aggr = coord_aggr
        self.norm_constant = norm_constant
        self.update_coords = update_coords
        self.residual = residual
        self.tanh = tanh
        self.backend = backend

        # Column layout of edge_lin1's input: [h_i (F) | h_j (F) | |dx|^2 (C) | e_ij (edge_dim)].
        self.edge_lin1 = nn.Linear(2 * in_channels + vector_channels + edge_dim, hidden_channels)
        self.edge_lin2 = nn.Linear(hidden_channels, hidden_channels)
        self.att_lin = nn.Linear(hidden_channels, 1) if attention != "none" else None
        if update_coords:
            self.coord_lin1 = nn.Linear(hidden_channels, hidden_channels)
            self.coord_lin2 = nn.Linear(hidden_channels, vector_channels, bias=False)
        self.node_lin1 = nn.Linear(in_channels + hidden_channels, hidden_channels)
        self.node_lin2 = nn.Linear(hidden_channels, self.out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        if self.update_coords:
            # Small initial coordinate steps, as in the EGNN reference code, keep deep stacks stable.
            nn.init.xavier_uniform_(self.coord_lin2.weight, gain=1e-3)

    def _check(
        self,
        h_src: Tensor,
        h_dst: Tensor,
        x_src: Tensor,
        x_dst: Tensor,
        edge_index: Tensor | EdgeLayout,
        edge_attr: Tensor | None,
    ) -> None:
        name = type(self).__name__
        for t, what in ((h_src, "h (source)"), (h_dst, "h (destination)")):
            if t.dim() != 2 or t.size(1) != self.in_channels:
                raise ValueError(f"{name}: {what} must have shape [N, {self.in_channels}], got {list(t.shape)}")
        for t, what in ((x_src, "x (source)"), (x_dst, "x (destination)")):
            if t.dim() != 3 or t.size(1) != self.vector_channels:
                raise ValueError(f"{name}: {what} must have shape [N, {self.vector_channels}, D], got {list(t.shape)}")
        if x_src.size(-1) != x_dst.size(-1):
            raise ValueError(f"{name}: source and destination x differ in dimension D")
        if h_src.size(0) != x_src.size(0) or h_dst.size(0) != x_dst.size(0):
            raise ValueError(f"{name}: h and x must have the same number of nodes")
        if isinstance(edge_index, EdgeLayout):
            edge_index.check(h_src.size(0), h_dst.size(0), name)  # its indices were checked when it was built
            edge_index = edge_index.edge_index
        else:
            check_edge_index(edge_index, h_src.size(0), h_dst.size(0))
        if self.edge_dim:
            if edge_attr is None or edge_attr.shape != (edge_index.size(1), self.edge_dim):
                got = None if edge_attr is None else list(edge_attr.shape)
                raise ValueError(
                    f"{name}: edge_attr must have shape [E={edge_index.size(1)}, {self.edge_dim}], got {got}"
                )
        elif edge_attr is not None:
            raise ValueError(f"{name}: edge_attr given but the layer was built with edge_dim=0")

    def _unsupported(self, h: Tensor, x: Tensor) -> str | None:
        """The first option of this call that the fused kernels do not implement, or None."""
        if self.attention == "softmax":
            return "attention='softmax'"
        if h.dtype not in FUSED_DTYPES or x.dtype != h.dtype:
            return f"dtype {h.dtype} (h) / {x.dtype} (x); they implement float32 and bfloat16"
        return None

    def forward(
        self, h: Pair, x: Pair, edge_index: Tensor | EdgeLayout, edge_attr: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        h_src, h_dst = _pair(h)
        x_src, x_dst = _pair(x)
        self._check(h_src, h_dst, x_src, x_dst, edge_index, edge_attr)
        name = type(self).__name__
        if resolve_backend(self.backend, h_dst.device, self._unsupported(h_dst, x_dst), name) == "triton":
            return self._forward_fused(h_src, h_dst, x_src, x_dst, edge_index, edge_attr)
        if isinstance(edge_index, EdgeLayout):
            edge_index = edge_index.edge_index
        src, dst = edge_index[0], edge_index[1]
        n_dst, C, D = x_dst.shape
        F_in = self.in_channels

        dx = x_dst.index_select(0, dst) - x_src.index_select(0, src)  # [E, C, D]
        dist2 = (dx * dx).sum(-1)  # [E, C]

        W = self.edge_lin1.weight
        pre = F.linear(h_dst, W[:, :F_in], self.edge_lin1.bias).index_select(0, dst)
        pre = pre + F.linear(h_src, W[:, F_in : 2 * F_in]).index_select(0, src)
        pre = torch.addmm(pre, dist2, W[:, 2 * F_in : 2 * F_in + C].T)
        if self.edge_dim:
            pre = torch.addmm(pre, edge_attr, W[:, 2 * F_in + C :].T)
        m = F.silu(self.edge_lin2(F.silu(pre)))  # [E, H]

        if self.att_lin is not None:
            logits = self.att_lin(m)
            att = torch.sigmoid(logits) if self.attention == "gate" else scatter_softmax(logits, dst, n_dst, False)
            m_i = scatter_sum(m * att, dst, n_dst, validate=False)
        else:
            m_i = scatter_sum(m, dst, n_dst, validate=False)

        h_out = self._update_nodes(h_dst, m_i)
        if self.update_coords:
            w = self.coord_lin2(F.silu(self.coord_lin1(m)))  # [E, C]
            if self.tanh:
                w = torch.tanh(w)
            if self.norm_constant is not None:
                # Clamped so that coincident nodes (dx = 0) get a zero gradient instead of 0 * inf.
                dist = dist2.clamp(min=torch.finfo(dist2.dtype).tiny).sqrt()
                dx = dx / (dist.unsqueeze(-1) + self.norm_constant)
            dx_i = scatter_sum(dx * w.unsqueeze(-1), dst, n_dst, validate=False)
            if self.coord_aggr == "mean":
                dx_i = dx_i / in_degree(dst, n_dst, dx_i.dtype).clamp_(min=1).view(-1, 1, 1)
            x_out = x_dst + dx_i if self.residual else dx_i
        else:
            x_out = x_dst if self.residual else torch.zeros_like(x_dst)
        return h_out, x_out

    def _update_nodes(self, h_dst: Tensor, m_i: Tensor) -> Tensor:
        h_out = self.node_lin2(F.silu(self.node_lin1(torch.cat([h_dst, m_i], 1))))
        if self.residual and self.out_channels == self.in_channels:
            h_out = h_out + h_dst
        return h_out

    def _forward_fused(
        self,
        h_src: Tensor,
        h_dst: Tensor,
        x_src: Tensor,
        x_dst: Tensor,
        edge_index: Tensor | EdgeLayout,
        edge_attr: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        # Imported here: it imports triton, which is optional.
        from geomanip.kernels.fused_egnn import fused_egnn_edges

        layout = as_layout(edge_index, h_src.size(0), h_dst.size(0))
        F_in = self.in_channels
        W = self.edge_lin1.weight
        coord = self.update_coords
        m_i, dx_i = fused_egnn_edges(
            layout,
            F.linear(h_dst, W[:, :F_in], self.edge_lin1.bias),
            F.linear(h_src, W[:, F_in : 2 * F_in]),
            x_dst,
            x_src,
            W[:, 2 * F_in :],
            edge_attr,
            self.edge_lin2.weight,
            self.edge_lin2.bias,
            self.att_lin.weight.view(-1) if self.att_lin is not None else None,
            self.att_lin.bias if self.att_lin is not None else None,
            self.coord_lin1.weight if coord else None,
            self.coord_lin1.bias if coord else None,
            self.coord_lin2.weight if coord else None,
            self.tanh,
            self.norm_constant,
        )
        h_out = self._update_nodes(h_dst, m_i)
        if not coord:
            return h_out, x_dst if self.residual else torch.zeros_like(x_dst)
        if self.coord_aggr == "mean":
            dx_i = dx_i / layout.degree.to(dx_i.dtype).clamp(min=1).view(-1, 1, 1)
        return h_out, x_dst + dx_i if self.residual else dx_i

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, hidden={self.hidden_channels}, "
            f"vector_channels={self.vector_channels}, edge_dim={self.edge_dim}, attention={self.attention!r}, "
            f"backend={self.backend!r}"
        )
