"""Rotations in three dimensions, as small pure torch functions shared by ``policies`` and ``motion``.

Conventions, fixed here for the whole project:

- Rotation matrices act on column vectors, ``v' = R @ v``; batches are ``[..., 3, 3]``.
- Quaternions are ``[..., 4]`` in scalar-first order ``(w, x, y, z)``, unit norm; ``q`` and ``-q`` are the
  same rotation and :func:`matrix_to_quaternion` returns the one with ``w >= 0``.
- Axis-angle vectors are ``[..., 3]``: direction = axis, norm = angle in radians, in ``[0, pi]`` on output.

Every function accepts any leading batch shape and keeps the dtype and device of its input.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "random_rotation",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "icosahedral_group",
    "chordal_mean",
    "rotation_2d",
]


def _check_matrix(R: Tensor, name: str = "R") -> None:
    if R.dim() < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"{name} must have shape [..., 3, 3], got {list(R.shape)}")


def _check_last(t: Tensor, size: int, name: str) -> None:
    if t.dim() < 1 or t.shape[-1] != size:
        raise ValueError(f"{name} must have shape [..., {size}], got {list(t.shape)}")


def random_rotation(
    *shape: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Rotation matrices drawn uniformly (Haar measure) from SO(3), shape ``[*shape, 3, 3]``.

    Uniform because a normalised 4-D Gaussian is uniform on the unit quaternions.
    """
    q = torch.randn(*shape, 4, generator=generator, dtype=dtype, device=device)
    return quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True))


def rotation_2d(angle: Tensor) -> Tensor:
    """Planar rotation matrices ``[..., 2, 2]`` for angles ``[...]`` in radians (counter-clockwise)."""
    c, s = angle.cos(), angle.sin()
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` from unit quaternions ``[..., 4]`` ``(w, x, y, z)``."""
    _check_last(q, 4, "q")
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, -1).view(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Unit quaternions ``[..., 4]`` ``(w, x, y, z)`` with ``w >= 0`` from rotation matrices ``[..., 3, 3]``.

    Each of the four standard formulas divides by one quaternion component; the one with the largest
    component is taken per matrix, which keeps the result accurate for every rotation, angle ``pi``
    included.
    """
    _check_matrix(R)
    m = R.reshape(*R.shape[:-2], 9).unbind(-1)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    # 4 * component^2 for w, x, y, z; each candidate row is 4 * c * q, c being that component.
    sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1).clamp(
        min=0
    )
    cand = torch.stack(
        [
            torch.stack([sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, sq[..., 1], m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, sq[..., 2], m12 + m21], -1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3]], -1),
        ],
        -2,
    )
    best = sq.argmax(-1, keepdim=True)
    row = cand.gather(-2, best.unsqueeze(-1).expand(*best.shape, 4)).squeeze(-2)
    q = row / row.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def axis_angle_to_matrix(v: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` from axis-angle vectors ``[..., 3]`` (Rodrigues' formula).

    Through the quaternion ``(cos(t/2), sin(t/2) * axis)`` so that small angles stay exact and
    differentiable: ``sin(t/2)/t`` is evaluated by its Taylor series near zero.
    """
    _check_last(v, 3, "axis-angle vector")
    angle = v.norm(dim=-1, keepdim=True)
    half = 0.5 * angle
    small = angle < 1e-4
    safe = torch.where(small, torch.ones_like(angle), angle)
    sinc_half = torch.where(small, 0.5 - angle * angle / 48.0, half.sin() / safe)
    q = torch.cat([half.cos(), v * sinc_half], -1)
    return quaternion_to_matrix(q)


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """Axis-angle vectors ``[..., 3]`` (angle in ``[0, pi]``) from rotation matrices ``[..., 3, 3]``."""
    q = matrix_to_quaternion(R)
    w, xyz = q[..., :1], q[..., 1:]
    s = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, w)
    small = s < 1e-6
    scale = torch.where(small, 2.0 / w.clamp(min=1e-12), angle / torch.where(small, torch.ones_like(s), s))
    return xyz * scale


def icosahedral_group(dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """The 60 rotations of the icosahedral group, ``[60, 3, 3]``, identity first.

    Built by closing two generators under multiplication: a fifth turn about a vertex axis
    ``(0, 1, phi)`` and a half turn about the z axis (not perpendicular to it: together they generate the
    whole group, not a dihedral subgroup), both symmetries of the icosahedron whose twelve
    vertices are the cyclic permutations of ``(0, +-1, +-phi)``. The order is deterministic.
    """
    phi = (1 + math.sqrt(5)) / 2
    axis5 = torch.tensor([0.0, 1.0, phi], dtype=torch.float64)
    gens = [
        axis_angle_to_matrix(axis5 / axis5.norm() * (2 * math.pi / 5)),
        axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi], dtype=torch.float64)),
    ]
    group = [torch.eye(3, dtype=torch.float64)]
    frontier = list(group)
    while frontier:
        new = []
        for g in frontier:
            for h in gens:
                p = h @ g
                if all((p - e).abs().max() > 1e-8 for e in group):
                    group.append(p)
                    new.append(p)
        frontier = new
    if len(group) != 60:  # a construction error, not a user error
        raise RuntimeError(f"icosahedral closure produced {len(group)} rotations instead of 60")
    return torch.stack(group).to(dtype=dtype, device=device)


def chordal_mean(R: Tensor, weights: Tensor | None = None) -> Tensor:
    """Weighted chordal L2 mean of rotations: the rotation closest in Frobenius norm to ``sum_k w_k R_k``.

    Shapes: ``R [..., K, 3, 3]``, ``weights [..., K]`` (non-negative, need not sum to one; default
    uniform) -> ``[..., 3, 3]``. Solved by SVD, ``U diag(1, 1, det(U V^T)) V^T``, so the result is a
    proper rotation. Differentiable wherever the singular values of the weighted sum are distinct.
    """
    _check_matrix(R)
    if R.dim() < 3:
        raise ValueError(f"R must have shape [..., K, 3, 3], got {list(R.shape)}")
    if weights is None:
        weights = torch.ones(R.shape[:-2], dtype=R.dtype, device=R.device)
    if weights.shape != R.shape[:-2]:
        raise ValueError(f"weights must have shape {list(R.shape[:-2])} to match R, got {list(weights.shape)}")
    M = (weights[..., None, None] * R).sum(-3)
    U, _, Vh = torch.linalg.svd(M)
    d = torch.linalg.det(U @ Vh)
    D = torch.ones(*d.shape, 3, dtype=R.dtype, device=R.device)
    D = torch.cat([D[..., :2], d.unsqueeze(-1)], -1)
    return U @ (D.unsqueeze(-1) * Vh)
