"""A graph's edges sorted by destination, built once per graph and reused by every layer and step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from geomanip.kernels.scatter import check_edge_index

__all__ = ["EdgeLayout", "as_layout"]


@dataclass(frozen=True)
class EdgeLayout:
    """The edges ``j -> i`` of a graph, sorted by destination ``i``, with what the fused kernels need.

    Layers accept an ``EdgeLayout`` wherever they accept an ``edge_index``. Build it once per graph
    (environments with static edge sets, motion batches with a fixed topology) and pass it to every layer
    and step: it holds the sort (``O(E log E)``, a device synchronisation) and the validation of the indices,
    which a plain ``edge_index`` would repeat on every call. The PyTorch path uses :attr:`edge_index`
    unchanged, so results do not depend on which form a layer was given.

    Sorting by destination makes the fused kernels' gathers of destination rows and their atomic
    accumulations at the destination hit neighbouring memory (mostly the same rows within a block of
    edges), which is what makes accumulating in place cheap on a GPU.

    Attributes:
        edge_index: the original ``[2, E]`` indices (row 0 source, row 1 destination), original order.
        num_src: number of source nodes (bounds row 0).
        num_dst: number of destination nodes (bounds row 1).
        src: ``[E]`` int32 sources in destination-sorted order.
        dst: ``[E]`` int32 destinations, non-decreasing.
        perm: ``[E]`` int64, ``perm[k]`` is the original position of sorted edge ``k`` (for per-edge inputs
            such as edge attributes and spatial bases, which stay in the original order).
        degree: ``[num_dst]`` float32 in-degree of each destination node.
    """

    edge_index: Tensor
    num_src: int
    num_dst: int
    src: Tensor
    dst: Tensor
    perm: Tensor
    degree: Tensor

    @classmethod
    def build(cls, edge_index: Tensor, num_src: int, num_dst: int | None = None, validate: bool = True) -> EdgeLayout:
        """Validate ``edge_index`` (unless ``validate=False``) and sort it by destination (stable: ties keep
        their order)."""
        num_dst = num_src if num_dst is None else num_dst
        if validate:
            check_edge_index(edge_index, num_src, num_dst)
        # int32 indices halve the index traffic of the kernels; 2**31 nodes is far beyond any graph here.
        if max(num_src, num_dst) >= 2**31:
            raise ValueError(f"EdgeLayout: at most 2**31 - 1 nodes are supported, got {max(num_src, num_dst)}")
        dst_sorted, perm = torch.sort(edge_index[1], stable=True)
        src_sorted = edge_index[0].index_select(0, perm)
        degree = torch.zeros(num_dst, dtype=torch.float32, device=edge_index.device)
        degree.index_add_(0, dst_sorted, torch.ones_like(dst_sorted, dtype=torch.float32))
        return cls(
            edge_index=edge_index,
            num_src=num_src,
            num_dst=num_dst,
            src=src_sorted.to(torch.int32).contiguous(),
            dst=dst_sorted.to(torch.int32).contiguous(),
            perm=perm.contiguous(),
            degree=degree,
        )

    @property
    def num_edges(self) -> int:
        return self.edge_index.size(1)

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    def to(self, device: torch.device | str) -> EdgeLayout:
        """The same layout on ``device`` (no re-sorting)."""
        return EdgeLayout(
            edge_index=self.edge_index.to(device),
            num_src=self.num_src,
            num_dst=self.num_dst,
            src=self.src.to(device),
            dst=self.dst.to(device),
            perm=self.perm.to(device),
            degree=self.degree.to(device),
        )

    def check(self, num_src: int, num_dst: int, owner: str) -> None:
        """Raise a ``ValueError`` unless the layout was built for ``num_src`` source and ``num_dst`` nodes."""
        if (self.num_src, self.num_dst) != (num_src, num_dst):
            raise ValueError(
                f"{owner}: the EdgeLayout was built for {self.num_src} source and {self.num_dst} destination "
                f"nodes, but the inputs have {num_src} and {num_dst}; build one EdgeLayout per graph"
            )


def as_layout(edge_index: Tensor | EdgeLayout, num_src: int, num_dst: int) -> EdgeLayout:
    """``edge_index`` itself if it is a layout, else a layout built from it now (sorting on every call).

    For layers that have already checked ``edge_index`` this call: it is not checked again (a device sync).
    """
    if isinstance(edge_index, EdgeLayout):
        return edge_index
    return EdgeLayout.build(edge_index, num_src, num_dst, validate=False)
