"""Geometry of position-orientation space R^D x S^(D-1), as small pure torch functions.

A node carries one feature vector per direction of a fixed grid ``grid [O, D]`` of unit vectors (D = 3: a
Fibonacci sphere; D = 2: a circle), so node features are ``[N, O, C]``. Conventions:

- Edges are ``j -> i`` with ``edge_index[0] = j`` (source) and ``edge_index[1] = i`` (destination).
- The relative position of an edge is ``dx = x_j - x_i`` (source minus destination).
- Spatial invariants of an edge at the destination's direction ``n_o``: ``<dx, n_o>`` and
  ``|dx - <dx, n_o> n_o|``; orientation invariants between two directions: ``<n_o, n_p>``.

Equivariance, precisely: every quantity here is a function of positions and grid together, and is
exactly invariant (scalars) or equivariant (vectors) when both are rotated or reflected together. With the
grid held fixed, a rotation that permutes the grid (for example a multiple of ``2 pi / O`` for the circle)
permutes the direction axis exactly; any other rotation is matched only up to the grid's resolution.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

__all__ = [
    "fibonacci_sphere",
    "circle_grid",
    "ring_grid",
    "lift_scalars",
    "lift_vectors",
    "readout_scalars",
    "readout_vectors",
    "spatial_invariants",
    "offset_invariants",
    "orientation_invariants",
    "polynomial_features",
    "polynomial_rows_",
    "num_polynomial_features",
]


def fibonacci_sphere(num: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """``num`` nearly uniform unit vectors on the 2-sphere, ``[num, 3]``, on a Fibonacci spiral."""
    if num < 1:
        raise ValueError(f"num must be positive, got {num}")
    i = torch.arange(num, dtype=torch.float64)
    z = 1 - (2 * i + 1) / num
    r = (1 - z * z).clamp(min=0).sqrt()
    theta = math.pi * (3 - math.sqrt(5)) * i
    return torch.stack([r * theta.cos(), r * theta.sin(), z], -1).to(dtype=dtype, device=device)


def circle_grid(num: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """``num`` equally spaced unit vectors on the circle, ``[num, 2]``, starting at ``(1, 0)``."""
    if num < 1:
        raise ValueError(f"num must be positive, got {num}")
    a = 2 * math.pi * torch.arange(num, dtype=torch.float64) / num
    return torch.stack([a.cos(), a.sin()], -1).to(dtype=dtype, device=device)


def ring_grid(
    longitudes: int,
    elevations: tuple[float, ...] = (-0.6155, 0.6155),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Unit vectors on rings of constant elevation (radians), ``longitudes`` per ring: ``[R * L, 3]``.

    The grid is mapped onto itself by rotations about the z axis by multiples of ``2 pi / longitudes``
    (and by reflections through the vertical planes of its longitudes), so a network on it is exactly
    equivariant to those rotations: the grid for scenes whose only symmetry axis is gravity's. The default
    elevations (+-35.26 degrees) give the two rings of a cube's vertex directions when ``longitudes = 4``.
    """
    if longitudes < 1 or not elevations:
        raise ValueError("ring_grid needs at least one longitude and one elevation")
    a = 2 * math.pi * torch.arange(longitudes, dtype=torch.float64) / longitudes
    rings = []
    for e in elevations:
        c, s = math.cos(e), math.sin(e)
        rings.append(torch.stack([c * a.cos(), c * a.sin(), torch.full_like(a, s)], -1))
    return torch.cat(rings).to(dtype=dtype, device=device)


def _check_grid(grid: Tensor) -> None:
    if grid.dim() != 2 or grid.size(1) not in (2, 3):
        raise ValueError(f"grid must have shape [O, 2] or [O, 3], got {list(grid.shape)}")


def lift_scalars(s: Tensor, num_directions: int) -> Tensor:
    """Scalars ``[N, S]`` repeated on every direction: ``[N, O, S]`` (a view, no copy)."""
    if s.dim() != 2:
        raise ValueError(f"scalars must have shape [N, S], got {list(s.shape)}")
    return s.unsqueeze(1).expand(-1, num_directions, -1)


def lift_vectors(v: Tensor, grid: Tensor) -> Tensor:
    """Vectors ``[N, V, D]`` projected on every direction: ``out[n, o, k] = <v[n, k], grid[o]>``, ``[N, O, V]``."""
    _check_grid(grid)
    if v.dim() != 3 or v.size(-1) != grid.size(1):
        raise ValueError(f"vectors must have shape [N, V, {grid.size(1)}] to match the grid, got {list(v.shape)}")
    return torch.einsum("nvd,od->nov", v, grid)


def readout_scalars(f: Tensor) -> Tensor:
    """Invariant read-out: the mean over directions, ``[N, O, C] -> [N, C]``."""
    return f.mean(1)


def readout_vectors(f: Tensor, grid: Tensor) -> Tensor:
    """Equivariant read-out: ``out[n, c] = sum_o f[n, o, c] grid[o] / O``, ``[N, O, C] -> [N, C, D]``."""
    _check_grid(grid)
    if f.dim() != 3 or f.size(1) != grid.size(0):
        raise ValueError(
            f"fiber features must have shape [N, {grid.size(0)}, C] to match the grid, got {list(f.shape)}"
        )
    return torch.einsum("noc,od->ncd", f, grid) / grid.size(0)


def spatial_invariants(pos_src: Tensor, pos_dst: Tensor, edge_index: Tensor, grid: Tensor) -> Tensor:
    """Invariants of each edge at each direction of its destination, ``[E, O, 2]``.

    ``out[e, o] = (<dx, n_o>, |dx - <dx, n_o> n_o|)`` with ``dx = pos_src[j] - pos_dst[i]``. The second
    invariant is computed as ``sqrt(max(|dx|^2 - <dx, n_o>^2, 0))``, which is exact for unit ``n_o``.
    """
    dx = pos_src.index_select(0, edge_index[0]) - pos_dst.index_select(0, edge_index[1])
    return offset_invariants(dx, grid)


def offset_invariants(dx: Tensor, grid: Tensor) -> Tensor:
    """:func:`spatial_invariants` of edge offsets ``dx [E, D]`` already gathered, ``[E, O, 2]``."""
    _check_grid(grid)
    along = dx @ grid.T
    across_sq = (dx * dx).sum(-1, keepdim=True) - along * along
    # Clamped away from 0 inside the sqrt only so its gradient stays finite on a direction parallel to dx.
    across = across_sq.clamp(min=torch.finfo(dx.dtype).eps).sqrt()
    return torch.stack([along, across], -1)


def orientation_invariants(grid: Tensor) -> Tensor:
    """Invariants between every pair of directions, ``<n_o, n_p>``, as ``[O, O, 1]``."""
    _check_grid(grid)
    return (grid @ grid.T).unsqueeze(-1)


def _monomials(num_inputs: int, degree: int) -> list[tuple[int, ...]]:
    return [c for d in range(1, degree + 1) for c in itertools.combinations_with_replacement(range(num_inputs), d)]


def num_polynomial_features(num_inputs: int, degree: int) -> int:
    """Number of monomials of degree 1 to ``degree`` in ``num_inputs`` variables."""
    return len(_monomials(num_inputs, degree))


def polynomial_features(x: Tensor, degree: int) -> Tensor:
    """All monomials of degree 1 to ``degree`` of the last axis of ``x``: ``[..., k] -> [..., P]``.

    Ordered by degree, then lexicographically, e.g. ``(a, b) -> (a, b, a^2, ab, b^2)`` for degree 2.
    """
    if degree < 1:
        raise ValueError(f"degree must be at least 1, got {degree}")
    terms = [x]
    prev, prev_idx = x, [(i,) for i in range(x.size(-1))]
    for _ in range(1, degree):
        # Extend each monomial of the previous degree by a variable no smaller than its last one.
        src, var, idx = [], [], []
        for p, mono in enumerate(prev_idx):
            for v in range(mono[-1], x.size(-1)):
                src.append(p)
                var.append(v)
                idx.append((*mono, v))
        src_t = torch.tensor(src, device=x.device)
        var_t = torch.tensor(var, device=x.device)
        prev = prev.index_select(-1, src_t) * x.index_select(-1, var_t)
        prev_idx = idx
        terms.append(prev)
    return torch.cat(terms, -1)


def polynomial_rows_(rows: Tensor, num_inputs: int, degree: int) -> Tensor:
    """:func:`polynomial_features` in place, one feature per row: fills ``rows[k:P]`` from ``rows[:k]``.

    ``rows [R >= P, ...]`` holds the ``k = num_inputs`` inputs in its first rows; rows ``k`` to ``P - 1`` (``P =
    num_polynomial_features(k, degree)``) receive the monomials of degree 2 to ``degree``, in
    :func:`polynomial_features`' order, so ``rows[:P]`` is ``polynomial_features(x, degree)`` moved to the front
    axis. Rows past ``P`` are left alone (a caller can keep a row of ones there). Each degree takes ``k``
    products of contiguous row blocks (the monomials of degree ``d`` that start with input ``i`` are input ``i``
    times the monomials of degree ``d - 1`` that start with an input no smaller), instead of gathers along a
    short last axis and a concatenation. No autograd: for inputs that need no gradient (functions of the data).
    """
    if degree < 1:
        raise ValueError(f"degree must be at least 1, got {degree}")
    total = num_polynomial_features(num_inputs, degree)
    if rows.size(0) < total:
        raise ValueError(f"rows must have at least {total} rows for {num_inputs} inputs and degree {degree}")
    prev_start, prev_first, row = 0, list(range(num_inputs)), num_inputs
    for _ in range(1, degree):
        start, first = row, []
        for i in range(num_inputs):
            s = next(j for j, v in enumerate(prev_first) if v >= i)  # prev_first is non-decreasing
            count = len(prev_first) - s
            torch.mul(rows[i : i + 1], rows[prev_start + s : prev_start + len(prev_first)], out=rows[row : row + count])
            first += [i] * count
            row += count
        prev_start, prev_first = start, first
    return rows
