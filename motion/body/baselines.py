"""Baselines for ArtEq on the same data: a PointNet regressor and optimisation-based fitting.

- :class:`PointNetRegressor`: a non-equivariant point-cloud network (shared per-point MLP, max pooling,
  MLP heads) regressing the 22 global part rotations (6-D representation), betas and per-point part
  labels; same outputs, body model and losses as :class:`~geomanip.motion.body.arteq.ArtEq`.
- :func:`fit_by_optimisation`: ``smplx`` parameters (global orientation and local joint rotations as
  axis-angle, betas, translation) optimised with Adam on a symmetric Chamfer loss between the model's
  vertices and the cloud, with small L2 priors on pose and betas; starts from the mean body, upright, at
  the cloud's centroid.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geomanip.kernels.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from geomanip.motion.body.arteq import BodyRegressor, body_prediction, mesh_centroid, rotation_near_identity, subsample
from geomanip.motion.body.model import NUM_BETAS, NUM_JOINTS, NUM_PARTS, BodyModel, load_body_model

__all__ = ["PointNetRegressor", "fit_by_optimisation", "chamfer"]


class PointNetRegressor(BodyRegressor):
    """PointNet-style regressor of SMPL parameters (see the module docstring).

    Shapes: ``points [B, P, 3]`` -> the dict of :class:`~geomanip.motion.body.arteq.ArtEq`.
    """

    def __init__(self, body: BodyModel | None = None, num_points: int = 1024, width: int = 256) -> None:
        super().__init__()
        self._body = [body if body is not None else load_body_model()]
        self.num_points = num_points
        self.local = nn.Sequential(nn.Linear(3, 64), nn.GELU(), nn.Linear(64, 128), nn.GELU())
        self.global_mlp = nn.Sequential(nn.Linear(128, width), nn.GELU(), nn.Linear(width, width))
        self.seg_head = nn.Sequential(nn.Linear(128 + width, 128), nn.GELU(), nn.Linear(128, NUM_PARTS))
        self.param_head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, NUM_PARTS * 6 + NUM_BETAS))
        nn.init.zeros_(self.param_head[-1].weight)
        nn.init.zeros_(self.param_head[-1].bias)

    @property
    def body(self) -> BodyModel:
        return self._body[0]

    def _apply(self, fn, recurse=True):
        self._body[0] = self._body[0]._apply(fn)
        return super()._apply(fn, recurse)

    def forward(self, points: Tensor) -> dict[str, Tensor]:
        centre = points.mean(1, keepdim=True)
        x = points - centre
        idx = subsample(x, self.num_points)
        x = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, 3))
        local = self.local(x)  # [B, N, 128]
        glob = self.global_mlp(local).amax(1)  # [B, width]
        logits = self.seg_head(torch.cat([local, glob[:, None].expand(-1, x.shape[1], -1)], -1))
        head = self.param_head(glob)
        part_rot = rotation_near_identity(head[:, : NUM_PARTS * 6].view(-1, NUM_PARTS, 6))
        betas = head[:, NUM_PARTS * 6 :]
        return body_prediction(self.body, part_rot, betas, centre, logits, idx)


def chamfer(a: Tensor, b: Tensor) -> Tensor:
    """Symmetric Chamfer distance (mean of nearest-neighbour distances both ways), ``[B, N, 3], [B, M, 3] -> [B]``.

    The nearest neighbours are found without gradient and their distances recomputed from the gathered pairs,
    so the backward pass is O(N + M): differentiating through ``cdist(...).min(...)`` builds two dense
    ``[B, N, M]`` gradients and dominated an optimisation step. Same value and gradient.
    """
    with torch.no_grad():
        d = torch.cdist(a, b)
        nearest_in_b, nearest_in_a = d.argmin(2), d.argmin(1)  # [B, N], [B, M]
    a_to_b = (a - torch.gather(b, 1, nearest_in_b.unsqueeze(-1).expand(-1, -1, 3))).norm(dim=-1)
    b_to_a = (b - torch.gather(a, 1, nearest_in_a.unsqueeze(-1).expand(-1, -1, 3))).norm(dim=-1)
    return a_to_b.mean(1) + b_to_a.mean(1)


def fit_by_optimisation(
    body: BodyModel,
    points: Tensor,
    iters: int = 200,
    lr: float = 0.03,
    num_points: int = 1024,
    pose_prior: float = 1e-3,
    betas_prior: float = 1e-3,
    yaw_starts: int = 1,
    init: dict[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Optimise body-model parameters to a cloud ``points [B, P, 3]`` (see the module docstring).

    ``yaw_starts``: run the optimisation from this many headings, evenly spaced about the vertical (y) axis,
    and keep for each body the one with the lowest final Chamfer distance (the cost grows in proportion). A
    single start from one heading is a local search: bodies facing away from it end in wrong minima.
    ``init``: start from a fit instead (a dict with ``rotations [B, 24, 3, 3]``, ``betas`` and ``transl``, such
    as :meth:`ArtEq.fit`'s output), to refine a network's prediction; one start.

    Returns the dict of :class:`~geomanip.motion.body.arteq.ArtEq` (without part outputs), detached.
    """
    if yaw_starts < 1:
        raise ValueError(f"fit_by_optimisation: yaw_starts must be at least 1, got {yaw_starts}")
    if init is not None and yaw_starts != 1:
        raise ValueError("fit_by_optimisation: a fit given as init is a single start; leave yaw_starts at 1")
    B, K = points.shape[0], yaw_starts
    dtype, device = points.dtype, points.device
    idx = subsample(points, num_points)
    # The K starts of all bodies as one batch, start-major: row k * B + b.
    target = torch.gather(points, 1, idx.unsqueeze(-1).expand(-1, -1, 3)).repeat(K, 1, 1)
    if init is None:
        pose = torch.zeros(K * B, NUM_JOINTS, 3, dtype=dtype, device=device)
        pose[:, 0, 1] = torch.arange(K, dtype=dtype, device=device).repeat_interleave(B) * (2 * torch.pi / K)
        betas = torch.zeros(K * B, NUM_BETAS, dtype=dtype, device=device)
        with torch.no_grad():
            v0, _ = body(axis_angle_to_matrix(pose), betas)
            transl = points.mean(1).repeat(K, 1) - mesh_centroid(v0, body.faces)
    else:
        pose = matrix_to_axis_angle(init["rotations"].to(dtype))
        betas, transl = init["betas"].to(dtype).clone(), init["transl"].to(dtype).clone()
    pose, betas, transl = (t.detach().requires_grad_(True) for t in (pose, betas, transl))
    opt = torch.optim.Adam([pose, betas, transl], lr=lr)
    with torch.enable_grad():
        for _ in range(iters):
            rot = axis_angle_to_matrix(pose)
            verts, _ = body(rot, betas, transl)
            loss = chamfer(verts, target).sum()
            loss = loss + pose_prior * pose[:, 1:].square().sum() + betas_prior * betas.square().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        rot = axis_angle_to_matrix(pose)
        verts, joints = body(rot, betas, transl)
        best = torch.arange(B, device=device)
        if K > 1:
            best = best + B * chamfer(verts, target).view(K, B).argmin(0)
    return {
        "rotations": rot[best],
        "global_orient": rot[best, 0],
        "betas": betas.detach()[best],
        "vertices": verts[best],
        "joints": joints[best],
        "transl": transl.detach()[best],
    }
