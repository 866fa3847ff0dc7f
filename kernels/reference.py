"""Straightforward PyG ``MessagePassing`` versions of the fast layers, for tests and benchmarks.

Each reference layer wraps a fast layer and reads its parameters, so both compute with the same weights:
``EGNNReference(layer)(h, x, edge_index)`` must equal ``layer(h, x, edge_index)``. They are written the way
the maths reads (concatenate the endpoint features of each edge, run the MLP on every edge, aggregate with
PyG), which is the baseline the benchmarks time our layers against. Homogeneous graphs only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import degree, softmax

from geomanip.kernels.egnn_conv import EGNNConv
from geomanip.kernels.fiber_block import FiberBlock

__all__ = ["EGNNReference", "FiberBlockReference"]


class EGNNReference(MessagePassing):
    """:class:`~geomanip.kernels.EGNNConv` written as a PyG ``MessagePassing`` layer (same parameters)."""

    def __init__(self, layer: EGNNConv) -> None:
        super().__init__(aggr="add")
        self.layer = layer

    def forward(
        self, h: Tensor, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        L = self.layer
        n, C, D = x.shape
        agg = self.propagate(edge_index, h=h, x=x.flatten(1), edge_attr=edge_attr, C=C, D=D)
        m_i = agg[:, : L.hidden_channels]
        h_out = L.node_lin2(F.silu(L.node_lin1(torch.cat([h, m_i], 1))))
        if L.residual and L.out_channels == L.in_channels:
            h_out = h_out + h
        if not L.update_coords:
            return h_out, x
        dx_i = agg[:, L.hidden_channels :].view(n, C, D)
        if L.coord_aggr == "mean":
            dx_i = dx_i / degree(edge_index[1], n, dtype=x.dtype).clamp(min=1).view(-1, 1, 1)
        return h_out, x + dx_i if L.residual else dx_i

    def message(
        self,
        h_i: Tensor,
        h_j: Tensor,
        x_i: Tensor,
        x_j: Tensor,
        edge_attr: Tensor | None,
        index: Tensor,
        size_i: int | None,
        C: int,
        D: int,
    ) -> Tensor:
        L = self.layer
        dx = (x_i - x_j).view(-1, C, D)
        dist2 = (dx * dx).sum(-1)
        feats = [h_i, h_j, dist2] + ([edge_attr] if edge_attr is not None else [])
        m = F.silu(L.edge_lin2(F.silu(L.edge_lin1(torch.cat(feats, 1)))))
        out = m
        if L.attention == "gate":
            out = m * torch.sigmoid(L.att_lin(m))
        elif L.attention == "softmax":
            out = m * softmax(L.att_lin(m), index, num_nodes=size_i)
        if not L.update_coords:
            return out
        w = L.coord_lin2(F.silu(L.coord_lin1(m)))
        if L.tanh:
            w = torch.tanh(w)
        if L.norm_constant is not None:
            dx = dx / (dist2.clamp(min=torch.finfo(dist2.dtype).tiny).sqrt().unsqueeze(-1) + L.norm_constant)
        return torch.cat([out, (dx * w.unsqueeze(-1)).flatten(1)], 1)


class FiberBlockReference(MessagePassing):
    """:class:`~geomanip.kernels.FiberBlock` written as a PyG ``MessagePassing`` layer (same parameters)."""

    def __init__(self, block: FiberBlock) -> None:
        super().__init__(aggr="add")
        self.block = block

    def forward(self, f: Tensor, edge_index: Tensor, spatial_basis: Tensor, fiber_basis: Tensor) -> Tensor:
        conv = self.block.conv
        n, O, C = f.shape
        kernel = conv.spatial_kernel(spatial_basis).flatten(1)
        g = self.propagate(edge_index, f=f.flatten(1), kernel=kernel).view(n, O, C)
        if conv.aggr == "mean":
            g = g / degree(edge_index[1], n, dtype=f.dtype).clamp(min=1).view(-1, 1, 1)
        fiber = conv.fiber_kernel(fiber_basis)
        g = torch.einsum("noc,poc->npc", g, fiber) / O
        return f + self.block.update(conv.linear(g))

    def message(self, f_j: Tensor, kernel: Tensor) -> Tensor:
        return kernel * f_j
