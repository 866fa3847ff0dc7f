"""Separable convolution on position-orientation space R^D x S^(D-1)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomanip.kernels.backend import FUSED_DTYPES, Backend, check_backend, resolve_backend
from geomanip.kernels.edge_layout import EdgeLayout, as_layout
from geomanip.kernels.fiber_message import fiber_message
from geomanip.kernels.scatter import check_edge_index, in_degree

__all__ = ["FiberConv"]

Pair = Tensor | tuple[Tensor, Tensor]


class FiberConv(nn.Module):
    r"""Separable group convolution on R^D x S^(D-1), in the style of PONITA.

    From "Fast, Expressive SE(n) Equivariant Networks through Weight-Sharing in Position-Orientation
    Space" (Bekkers et al., ICLR 2024). Node features live on a grid of O directions, ``f [N, O, C]``.
    With a spatial basis ``b_s[e, o]`` computed from the invariants of edge ``e = (j -> i)`` at the
    destination's direction ``o`` and a fiber basis ``b_f[p, o]`` from ``<n_p, n_o>`` (see
    :mod:`geomanip.kernels.fiber_geometry` and :class:`~geomanip.kernels.PolynomialBasis`):

    .. math::
        g_{i,o} = \mathrm{aggr}_{j \in N(i)}\; (W_s b_s[(j,i), o]) \odot f_{j,o}

        f'_{i,p} = W \Big(\frac{1}{O} \sum_o (W_f b_f[p, o]) \odot g_{i,o}\Big) + b

    The first step is a spatial message per direction, the second a depthwise (per-channel) convolution
    over directions, the third a channel mix. Because the kernels depend on invariants only, the layer is
    equivariant in the sense stated in :mod:`geomanip.kernels.fiber_geometry`. It returns the convolution alone,
    without residual or normalisation: :class:`~geomanip.kernels.FiberBlock` adds those, and
    :class:`~geomanip.kernels.HeteroConv` sums several of these layers (one per edge type) first.

    The first step runs fused and chunked over edges (:func:`geomanip.kernels.fiber_message.fiber_message`), so no
    ``[E, O, C]`` tensor is kept for the backward pass; on CUDA it runs as fused Triton kernels
    (:mod:`geomanip.kernels.fused_fiber`) that write no per-edge tensor at all (see ``backend``).

    Args:
        in_channels: channels C of the input features.
        out_channels: channels of the output.
        basis_dim: size B of the spatial and fiber bases.
        aggr: ``"sum"`` or ``"mean"`` over incoming edges.
        bias: learn the bias ``b``.
        backend: ``"auto"`` (fused Triton kernels on CUDA when available, PyTorch otherwise), ``"torch"`` or
            ``"triton"``; see :mod:`geomanip.kernels.backend`. float64 uses PyTorch.
        calibrate: rescale the two kernels once, on the first forward call, so that each step keeps the
            standard deviation of its input (PONITA's data-dependent initialisation). Without it the output
            starts as a product of small kernels and the features, orders of magnitude below its input, and
            a network on top sees almost constant features. The first call already returns the calibrated
            output; a ``calibrated`` buffer, saved with the weights, keeps a loaded model from rescaling again.

    Shapes:
        - f: ``[N, O, C]`` or a ``(source [N_s, O, C], destination [N_d, O, *])`` pair for bipartite graphs
          (only the destination's length is used)
        - edge_index: ``[2, E]``, row 0 source, row 1 destination, or an :class:`~geomanip.kernels.EdgeLayout` of it
          (built once per graph; saves the per-call index check and the fused path's sort)
        - spatial_basis: ``[E, O, B]``
        - fiber_basis: ``[O, O, B]``, indexed ``[p (output direction), o (input direction)]``
        - output: ``[N_d, O, out_channels]``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        basis_dim: int,
        aggr: Literal["sum", "mean"] = "sum",
        bias: bool = True,
        backend: Backend = "auto",
        calibrate: bool = False,
    ) -> None:
        super().__init__()
        check_backend(backend, "FiberConv")
        if aggr not in ("sum", "mean"):
            raise ValueError(f"FiberConv: aggr must be 'sum' or 'mean', got {aggr!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.basis_dim = basis_dim
        self.aggr = aggr
        self.backend = backend
        self.spatial_kernel = nn.Linear(basis_dim, in_channels, bias=False)
        self.fiber_kernel = nn.Linear(basis_dim, in_channels, bias=False)
        self.linear = nn.Linear(in_channels, out_channels, bias=bias)
        self.calibrate = calibrate
        if calibrate:
            self.register_buffer("calibrated", torch.tensor(False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.spatial_kernel.reset_parameters()
        self.fiber_kernel.reset_parameters()
        self.linear.reset_parameters()
        if self.linear.bias is not None:
            # Zero, as in PONITA: the convolution's output starts small (a product of three small kernels and
            # the features), and a random bias would swamp it, leaving a LayerNorm after it nothing to rescale.
            nn.init.zeros_(self.linear.bias)
        if self.calibrate:
            self.calibrated.fill_(False)
        # Mirrors the buffer in Python (kept in step on load), so that calibrated layers do not read a device
        # tensor, a synchronisation on CUDA, on every call.
        self._needs_calibration = self.calibrate

    @property
    def needs_calibration(self) -> bool:
        """Whether the next forward call will calibrate the kernels (``calibrate=True`` and not yet done)."""
        return self._needs_calibration

    def _check(
        self,
        f_src: Tensor,
        f_dst: Tensor,
        edge_index: Tensor | EdgeLayout,
        spatial_basis: Tensor,
        fiber_basis: Tensor,
    ) -> None:
        name = type(self).__name__
        if f_src.dim() != 3 or f_src.size(-1) != self.in_channels:
            raise ValueError(f"{name}: f must have shape [N, O, {self.in_channels}], got {list(f_src.shape)}")
        if f_dst.dim() != 3 or f_dst.size(1) != f_src.size(1):
            raise ValueError(f"{name}: destination f must have shape [N, {f_src.size(1)}, *], got {list(f_dst.shape)}")
        if isinstance(edge_index, EdgeLayout):
            edge_index.check(f_src.size(0), f_dst.size(0), name)  # its indices were checked when it was built
            edge_index = edge_index.edge_index
        else:
            check_edge_index(edge_index, f_src.size(0), f_dst.size(0))
        E, O, B = edge_index.size(1), f_src.size(1), self.basis_dim
        if spatial_basis.shape != (E, O, B):
            raise ValueError(
                f"{name}: spatial_basis must have shape [E={E}, O={O}, B={B}], got {list(spatial_basis.shape)}"
            )
        if fiber_basis.shape != (O, O, B):
            raise ValueError(
                f"{name}: fiber_basis must have shape [O={O}, O={O}, B={B}], got {list(fiber_basis.shape)}"
            )

    def forward(self, f: Pair, edge_index: Tensor | EdgeLayout, spatial_basis: Tensor, fiber_basis: Tensor) -> Tensor:
        f_src, f_dst = (f[0], f[1]) if isinstance(f, tuple) else (f, f)
        self._check(f_src, f_dst, edge_index, spatial_basis, fiber_basis)
        n_dst = f_dst.size(0)
        if self._needs_calibration:
            self._calibrate(f_src, edge_index, spatial_basis, fiber_basis, n_dst)

        unsupported = None
        if f_src.dtype not in FUSED_DTYPES or spatial_basis.dtype != f_src.dtype:
            unsupported = f"dtype {f_src.dtype} (f) / {spatial_basis.dtype} (basis); only float32 and bfloat16"
        if resolve_backend(self.backend, f_src.device, unsupported, type(self).__name__) == "triton":
            # Imported here: it imports triton, which is optional.
            from geomanip.kernels.fused_fiber import fused_fiber_message

            layout = as_layout(edge_index, f_src.size(0), n_dst)
            g = fused_fiber_message(spatial_basis, self.spatial_kernel.weight, f_src, layout)
            if self.aggr == "mean":
                g = g / layout.degree.to(g.dtype).clamp(min=1).view(-1, 1, 1)
        else:
            g = self._message(f_src, edge_index, spatial_basis, n_dst)
        return F.linear(self._mix_directions(g, fiber_basis), self.linear.weight, self.linear.bias)

    def _message(self, f_src: Tensor, edge_index: Tensor | EdgeLayout, spatial_basis: Tensor, n_dst: int) -> Tensor:
        """The spatial step in PyTorch, aggregated over incoming edges: ``[N_d, O, C]``."""
        if isinstance(edge_index, EdgeLayout):
            edge_index = edge_index.edge_index
        g = fiber_message(spatial_basis, self.spatial_kernel.weight, f_src, edge_index, n_dst)
        if self.aggr == "mean":
            g = g / in_degree(edge_index[1], n_dst, g.dtype).clamp(min=1).view(-1, 1, 1)
        return g

    def _mix_directions(self, g: Tensor, fiber_basis: Tensor) -> Tensor:
        """The depthwise convolution over directions: ``[N, O, C] -> [N, O, C]``."""
        kernel = self.fiber_kernel(fiber_basis)  # [O(p), O(o), C]
        # Channels as the batch of one matmul each; contiguous operands make the small GEMMs faster.
        out = torch.bmm(g.permute(2, 0, 1).contiguous(), kernel.permute(2, 1, 0).contiguous()).permute(1, 2, 0)
        return out / g.size(1)

    @torch.no_grad()
    def _calibrate(
        self, f_src: Tensor, edge_index: Tensor | EdgeLayout, spatial_basis: Tensor, fiber_basis: Tensor, n_dst: int
    ) -> None:
        g = self._message(f_src, edge_index, spatial_basis, n_dst)
        std_in, std_g = f_src.std(), g.std()
        if not (torch.isfinite(std_g) and std_g > 0 and std_in > 0):
            return  # nothing to calibrate on (no edges, constant features): try again on the next call
        self.spatial_kernel.weight.mul_(std_in / std_g)
        std_out = self._mix_directions(g * (std_in / std_g), fiber_basis).std()
        if torch.isfinite(std_out) and std_out > 0:
            self.fiber_kernel.weight.mul_(std_in / std_out)
            self.calibrated.fill_(True)
            self._needs_calibration = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.calibrate:
            self._needs_calibration = not bool(self.calibrated)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, basis_dim={self.basis_dim}, aggr={self.aggr!r}, "
            f"backend={self.backend!r}"
        )
