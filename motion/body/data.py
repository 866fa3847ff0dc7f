"""Training and test bodies generated from a body model: shapes, poses, surface point clouds, labels.

Each sample holds the ground truth ArtEq regresses (:func:`generate`): ``rotations [24, 3, 3]`` (root
global, then local per joint), ``betas [10]``, ``vertices [V, 3]``, ``joints [24, 3]``, and the input
``points [P, 3]`` sampled on the posed surface with probability proportional to triangle area plus Gaussian
noise, with the part ``labels [P]`` (0-21) of the vertex nearest each sample.

Distributions (:data:`SPLITS`):

- ``train`` / ``test``: betas ~ N(0, 1) clipped to +-2.5; each joint angle uniform in half of its limit
  range (:data:`JOINT_LIMITS`, Euler angles in the joint's parent frame, scaled towards zero); global
  orientation upright: a uniform turn about the vertical axis and at most 0.2 rad of tilt.
- ``test_orient``: as ``test`` with the global orientation uniform on SO(3) (unseen orientations).
- ``test_pose``: upright as ``test`` with joint angles over the full limit ranges, up to twice the
  training range (unseen, larger joint angles).

Hands (joints 22, 23) stay unposed: their vertices belong to the wrist part, as in ArtEq.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from geomanip.kernels.rotation import axis_angle_to_matrix, random_rotation
from geomanip.motion.body.model import NUM_BETAS, NUM_JOINTS, BodyModel

__all__ = ["JOINT_LIMITS", "SPLITS", "SplitSpec", "sample_pose", "sample_surface", "generate"]

# Euler limits (radians) per joint, rotation R = Rz(z) Ry(y) Rx(x) in the parent frame (y up, facing +z),
# for the left side; the right side mirrors y and z. From the rest A-pose: hip flexion is -x, knee +x,
# shoulder raise +z (left), elbow flexion -y (left). Rough human ranges; zero is always inside.
_LEFT_LIMITS = {
    "hip": ((-1.8, 0.5), (-0.6, 0.6), (-0.3, 0.9)),
    "knee": ((0.0, 2.3), (-0.15, 0.15), (-0.1, 0.1)),
    "ankle": ((-0.7, 0.5), (-0.3, 0.3), (-0.3, 0.3)),
    "foot": ((-0.4, 0.4), (-0.1, 0.1), (-0.1, 0.1)),
    "collar": ((-0.3, 0.3), (-0.3, 0.3), (-0.3, 0.5)),
    "shoulder": ((-1.0, 1.0), (-1.5, 1.0), (-0.8, 1.6)),
    "elbow": ((-0.5, 0.5), (-2.4, 0.0), (-0.2, 0.2)),
    "wrist": ((-0.8, 0.8), (-0.6, 0.6), (-1.0, 1.0)),
}
_CENTRE_LIMITS = {
    "spine1": ((-0.4, 0.8), (-0.5, 0.5), (-0.4, 0.4)),
    "spine2": ((-0.3, 0.5), (-0.4, 0.4), (-0.3, 0.3)),
    "spine3": ((-0.3, 0.5), (-0.4, 0.4), (-0.3, 0.3)),
    "neck": ((-0.6, 0.8), (-0.8, 0.8), (-0.5, 0.5)),
    "head": ((-0.5, 0.6), (-0.7, 0.7), (-0.4, 0.4)),
}


def _limits() -> Tensor:
    from geomanip.motion.body.model import JOINT_NAMES

    out = torch.zeros(NUM_JOINTS, 3, 2)
    for j, name in enumerate(JOINT_NAMES):
        if name in _CENTRE_LIMITS:
            out[j] = torch.tensor(_CENTRE_LIMITS[name])
        elif "_" in name and name.split("_", 1)[1] in _LEFT_LIMITS:
            side, joint = name.split("_", 1)
            lim = torch.tensor(_LEFT_LIMITS[joint])
            if side == "right":
                lim[1:] = -lim[1:].flip(-1)
            out[j] = lim
    return out  # pelvis (global) and hands stay (0, 0)


JOINT_LIMITS = _limits()
"""``[24, 3, 2]`` (low, high) Euler angle limits per joint and axis (x, y, z); see :func:`sample_pose`."""


@dataclass(frozen=True)
class SplitSpec:
    """How one split samples its bodies."""

    pose_scale: float
    """Joint angles uniform in ``pose_scale`` times each limit interval (towards zero)."""
    upright: bool
    """Global orientation: a turn about the vertical axis plus a small tilt, or uniform on SO(3)."""


SPLITS = {
    "train": SplitSpec(0.5, True),
    "test": SplitSpec(0.5, True),
    "test_orient": SplitSpec(0.5, False),
    "test_pose": SplitSpec(1.0, True),
}


def _euler(angles: Tensor) -> Tensor:
    """``Rz(z) Ry(y) Rx(x)`` for ``angles [..., 3]`` = (x, y, z)."""
    eye = torch.eye(3, dtype=angles.dtype, device=angles.device)
    rx, ry, rz = (axis_angle_to_matrix(eye[i] * angles[..., i : i + 1]) for i in range(3))
    return rz @ ry @ rx


def sample_pose(n: int, spec: SplitSpec, generator: torch.Generator, max_tilt: float = 0.2) -> Tensor:
    """Rotations ``[n, 24, 3, 3]``: global orientation then local joint rotations within the limits."""
    u = torch.rand(n, NUM_JOINTS, 3, generator=generator)
    lo, hi = (spec.pose_scale * JOINT_LIMITS).unbind(-1)
    rot = _euler(lo + u * (hi - lo))
    if spec.upright:
        yaw = torch.rand(n, generator=generator) * 2 * math.pi
        tilt_dir = torch.rand(n, generator=generator) * 2 * math.pi
        tilt = torch.rand(n, generator=generator) * max_tilt
        axis = torch.stack([tilt_dir.cos(), torch.zeros(n), tilt_dir.sin()], -1)  # horizontal axis
        up = torch.stack([torch.zeros(n), yaw, torch.zeros(n)], -1)
        rot[:, 0] = axis_angle_to_matrix(axis * tilt[:, None]) @ axis_angle_to_matrix(up)
    else:
        rot[:, 0] = random_rotation(n, generator=generator)
    return rot


def sample_surface(
    vertices: Tensor, faces: Tensor, num_points: int, generator: torch.Generator, noise: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Points uniform on each mesh's surface (area-weighted), ``[B, P, 3]``, and their nearest corner ``[B, P]``.

    ``vertices [B, V, 3]``, ``faces [F, 3]``; ``noise``: standard deviation (m) of Gaussian noise added
    to every coordinate. The corner is the vertex with the largest barycentric coordinate, which labels
    each point with that vertex's part.
    """
    tri = vertices[:, faces]  # [B, F, 3, 3]
    area = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]).norm(dim=-1)
    face = torch.multinomial(area, num_points, replacement=True, generator=generator)  # [B, P]
    r1, r2 = torch.rand(2, *face.shape, 1, generator=generator, dtype=vertices.dtype)
    s = r1.sqrt()  # uniform on the triangle: (1 - sqrt r1, sqrt r1 (1 - r2), sqrt r1 r2)
    bary = torch.cat([1 - s, s * (1 - r2), s * r2], -1)  # [B, P, 3]
    corners = torch.gather(tri, 1, face[..., None, None].expand(-1, -1, 3, 3))  # [B, P, 3, 3]
    points = (bary.unsqueeze(-1) * corners).sum(-2)
    if noise > 0:
        points = points + noise * torch.randn(points.shape, generator=generator, dtype=points.dtype)
    nearest = faces[face].gather(-1, bary.argmax(-1, keepdim=True))[..., 0]
    return points, nearest


@torch.no_grad()
def generate(
    body: BodyModel,
    n: int,
    split: str = "train",
    seed: int = 0,
    num_points: int = 5000,
    noise: float = 0.005,
    batch: int = 64,
) -> dict[str, Tensor]:
    """``n`` bodies of ``split`` (see :data:`SPLITS`), deterministic in ``seed``; a dict of stacked tensors.

    Keys: ``points [n, P, 3]``, ``labels [n, P]``, ``rotations [n, 24, 3, 3]``, ``betas [n, 10]``,
    ``vertices [n, V, 3]``, ``joints [n, 24, 3]``. Bodies are not translated: their root joint is near the
    origin (models centre their input anyway).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; available: {', '.join(SPLITS)}")
    spec = SPLITS[split]
    # Distinct streams per split, so "test" never repeats "train" bodies at the same seed.
    gen = torch.Generator().manual_seed(seed * 1000 + list(SPLITS).index(split))
    dtype = body.v_template.dtype
    out: dict[str, list[Tensor]] = {k: [] for k in ("points", "labels", "rotations", "betas", "vertices", "joints")}
    for start in range(0, n, batch):
        m = min(batch, n - start)
        rot = sample_pose(m, spec, gen).to(dtype)
        betas = torch.randn(m, NUM_BETAS, generator=gen).clamp(-2.5, 2.5).to(dtype)
        verts, joints = body(rot, betas)
        points, nearest = sample_surface(verts, body.faces, num_points, gen, noise)
        out["points"].append(points)
        out["labels"].append(body.part_of_vertex[nearest])
        out["rotations"].append(rot)
        out["betas"].append(betas)
        out["vertices"].append(verts)
        out["joints"].append(joints)
    return {k: torch.cat(v) for k, v in out.items()}
