"""ConvNeXt-style residual block around a position-orientation convolution."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geomanip.kernels.fiber_conv import FiberConv

__all__ = ["ConvNeXtMLP", "FiberBlock"]


class ConvNeXtMLP(nn.Module):
    r"""The update half of a ConvNeXt block: ``gamma * W_2 GELU(W_1 LayerNorm(u))``, channel-wise.

    Applied to the output ``u`` of a convolution (or to the sum of several, one per edge type) before the
    residual connection. ``gamma`` is a learned per-channel layer scale initialised to ``layer_scale``
    (``None`` to leave it out); a small value starts deep stacks near the identity, as in ConvNeXt and PONITA.

    Shapes: ``[..., channels] -> [..., channels]``.
    """

    def __init__(self, channels: int, widening: int = 4, layer_scale: float | None = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.lin1 = nn.Linear(channels, widening * channels)
        self.lin2 = nn.Linear(widening * channels, channels)
        self.layer_scale_init = layer_scale
        self.gamma = nn.Parameter(torch.empty(channels)) if layer_scale is not None else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()
        if self.gamma is not None:
            nn.init.constant_(self.gamma, self.layer_scale_init)

    def forward(self, u: Tensor) -> Tensor:
        out = self.lin2(nn.functional.gelu(self.lin1(self.norm(u))))
        return out * self.gamma if self.gamma is not None else out


class FiberBlock(nn.Module):
    r"""One residual layer on R^D x S^(D-1): ``f' = f + ConvNeXtMLP(FiberConv(f))``.

    Args:
        channels: channels C, kept through the block.
        basis_dim: size B of the spatial and fiber bases fed to the convolution.
        widening: hidden width of the MLP as a multiple of C.
        layer_scale: initial layer scale of the MLP (``None`` for none).
        aggr: aggregation of the convolution, ``"sum"`` or ``"mean"``.

    Shapes: as :class:`~geomanip.kernels.FiberConv` with ``in_channels = out_channels = C``, homogeneous graphs.
    """

    def __init__(
        self,
        channels: int,
        basis_dim: int,
        widening: int = 4,
        layer_scale: float | None = 1e-6,
        aggr: str = "sum",
    ) -> None:
        super().__init__()
        self.conv = FiberConv(channels, channels, basis_dim, aggr=aggr)
        self.update = ConvNeXtMLP(channels, widening, layer_scale)

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        self.update.reset_parameters()

    def forward(self, f: Tensor, edge_index: Tensor, spatial_basis: Tensor, fiber_basis: Tensor) -> Tensor:
        return f + self.update(self.conv(f, edge_index, spatial_basis, fiber_basis))
