"""Learned basis of invariant edge attributes: polynomial expansion followed by an MLP."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geomanip.kernels.fiber_geometry import num_polynomial_features, polynomial_features

__all__ = ["PolynomialBasis"]


class PolynomialBasis(nn.Module):
    r"""Embeds a few invariants into a basis for convolution kernels, as in PONITA.

    .. math::
        b = \mathrm{GELU}(W_2\, \mathrm{GELU}(W_1\, \mathrm{poly}_d(a) + b_1) + b_2)

    where :math:`\mathrm{poly}_d(a)` are all monomials of degree 1 to ``degree`` of the invariants ``a``.
    A network computes the basis of its edges once and every :class:`~geomanip.kernels.FiberConv` maps it to its own
    kernel with one bias-free linear layer, so the MLP runs once per forward, not once per layer.

    Args:
        num_invariants: size of the last axis of the input (2 for spatial, 1 for orientation invariants).
        basis_dim: output size.
        degree: polynomial degree.
        hidden_channels: MLP width (default ``basis_dim``).

    Shapes:
        - input: ``[..., num_invariants]``
        - output: ``[..., basis_dim]``
    """

    def __init__(self, num_invariants: int, basis_dim: int, degree: int = 3, hidden_channels: int | None = None):
        super().__init__()
        hidden = basis_dim if hidden_channels is None else hidden_channels
        self.num_invariants = num_invariants
        self.degree = degree
        self.mlp = nn.Sequential(
            nn.Linear(num_polynomial_features(num_invariants, degree), hidden),
            nn.GELU(),
            nn.Linear(hidden, basis_dim),
            nn.GELU(),
        )

    def reset_parameters(self) -> None:
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, invariants: Tensor) -> Tensor:
        if invariants.size(-1) != self.num_invariants:
            raise ValueError(
                f"PolynomialBasis: expected {self.num_invariants} invariants on the last axis, "
                f"got shape {list(invariants.shape)}"
            )
        return self.mlp(polynomial_features(invariants, self.degree))

    def forward_rows(self, features: Tensor) -> Tensor:
        """The basis from polynomial features laid out one feature per row: ``[P + 1, N] -> [basis_dim, N]``.

        ``features`` holds :func:`~geomanip.kernels.polynomial_features` transposed (row ``m`` is monomial ``m``
        of every input) and a last row of ones, which carries the first layer's bias into its matrix product.
        The result is :meth:`forward`'s, transposed. For many inputs of few invariants this layout is the cheap
        one: a caller can write each monomial as a contiguous row, and the skinny matrix products read and
        write rows instead of short strided columns.
        """
        first, act1, second, act2 = self.mlp
        if features.dim() != 2 or features.size(0) != first.in_features + 1:
            raise ValueError(
                f"PolynomialBasis.forward_rows: expected [{first.in_features + 1}, N] features (monomials and a row "
                f"of ones), got shape {list(features.shape)}"
            )
        h = act1(torch.cat([first.weight, first.bias[:, None]], 1) @ features)
        return act2(torch.addmm(second.bias[:, None], second.weight, h))
