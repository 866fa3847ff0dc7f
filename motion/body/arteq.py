"""ArtEq: SMPL shape and pose from a body point cloud with articulated SE(3) equivariance.

After "Generalizing Neural Human Fitting to Unseen Poses With Articulated SE(3) Equivariance" (Feng et al.,
ICCV 2023), on the shared kernels. Features live on the 60 rotations of the icosahedral group
(:func:`geomanip.kernels.icosahedral_group`), ``f [points, 60, C]``: feature ``f[n, g]`` describes the neighbourhood
of point ``n`` as seen in the frame of rotation ``G_g``. Pipeline:

1. Centre the cloud (translation is not regressed) and keep ``num_points`` of its points (a strided
   subset: rotation invariant, see :func:`subsample`).
2. Embed each point's position in every frame (``G_g^T x``, a quadratic per channel: equivariant), then
   lift and convolve on a k-nearest-neighbour graph with :class:`GroupPointConv` (the maths of
   :class:`geomanip.kernels.FiberConv` on the group; a quadratic spatial kernel, a
   :class:`geomanip.kernels.PolynomialBasis` fiber kernel): the spatial kernel of edge ``j -> i`` at group
   element ``g`` depends on ``G_g^T (x_j - x_i)``, the fiber kernel between ``g`` and ``g'`` on ``G_g^T G_g'``.
   Rotating the input by ``h`` in the group permutes the group axis, ``f'[n, g] = f[n, h^-1 g]``, exactly.
   A global-context layer then mixes each point's feature with the cloud's mean feature in the same frame
   (still equivariant: both permute together).
3. Part segmentation (22 parts) from the group-averaged, hence invariant, features; features soft-pooled
   per part with the predicted part probabilities (still equivariant).
4. Shape: invariant part features, self-attention over parts, mean, MLP -> betas (invariant).
5. Pose: per part, attention weights over the 60 rotation tokens and a small residual rotation per token
   in that token's frame (as in EPN); the weighted chordal mean (SVD) of the 60 corrected anchors
   ``G_g delta_g`` is the part's global rotation (equivariant: ``R(h x) = h R(x)`` for ``h`` in the group).
   Local rotations follow from the kinematic tree, ``R_parent^T R``; hands (joints 22, 23) are identity.
   Refinement (``refine=True``): each part sees the cloud in its estimated frame, ``R^T (x - c_part)``
   (invariant wherever ``R`` is equivariant), and a small PointNet predicts a residual ``dR``; the part's
   rotation is ``R dR``. The discrete group and the soft mean leave ~15 degrees of orientation error that a
   canonical frame lets a plain network correct.
6. The body model turns rotations and betas into vertices and joints; a translation puts the mesh's
   area-weighted centroid on the cloud's centroid.

Equivariance is exact (up to float round-off) for the 60 group rotations and approximate in between; how
close depends on training (``tests/motion/body/test_arteq.py`` states the tolerances).

Losses (:func:`arteq_loss`): part cross-entropy, squared Frobenius distance of part rotations, betas MSE,
joint and vertex distances.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomanip.kernels import PolynomialBasis, chordal_mean, icosahedral_group
from geomanip.motion.body.model import NUM_BETAS, NUM_PARTS, PARENTS, BodyModel, load_body_model

__all__ = [
    "ArtEq",
    "arteq_loss",
    "subsample",
    "knn_graph",
    "sixd_to_matrix",
    "rotation_near_identity",
    "local_from_global",
    "mesh_centroid",
    "GroupPointConv",
    "QuadraticKernel",
    "monomials",
]


def subsample(points: Tensor, num: int) -> Tensor:
    """Indices ``[B, num]`` of ``num`` evenly strided points of ``points [B, P, 3]`` (all of them if ``P <= num``).

    The choice depends on the order of the points only, never on their coordinates, so rotating a cloud keeps
    the same points; clouds sampled from a surface come in random order, which makes this a random subset.
    (Farthest-point sampling is also rotation invariant but cost seconds per batch on the 2-core CPU.)
    """
    B, P, _ = points.shape
    idx = torch.arange(P, device=points.device) if num >= P else torch.linspace(0, P - 1, num, device=points.device)
    return idx.long().expand(B, -1)


def knn_graph(x: Tensor, k: int) -> Tensor:
    """Indices ``[B, N, k]`` of each point's ``k`` nearest neighbours in ``x [B, N, 3]`` (itself excluded).

    Every point has exactly ``k`` incoming edges, so aggregation over neighbours is a sum over this axis:
    no scatter. (On a CPU, ``index_add_`` over chunks of this size was slow enough to make the edge-list
    :class:`geomanip.kernels.FiberConv` path take minutes per batch here.)
    """
    d = torch.cdist(x, x)
    d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    return d.topk(k, dim=-1, largest=False).indices


def monomials(r: Tensor) -> Tensor:
    """The 10 monomials of degree at most 2 of ``r [..., 3]``: ``1, x, y, z, xx, yy, zz, xy, xz, yz``."""
    x, y, z = r.unbind(-1)
    return torch.stack([torch.ones_like(x), x, y, z, x * x, y * y, z * z, x * y, x * z, y * z], -1)


class QuadraticKernel(nn.Module):
    r"""Per-channel quadratic function of a vector in each group frame, ``k_c(G_g^T r)``, as coefficients.

    ``k_c(y) = a_c + b_c \cdot y + y^T A_c y``, so ``k_c(G_g^T r) = a_c + (G_g b_c) \cdot r + r^T (G_g A_c G_g^T) r``:
    a polynomial in ``r`` whose coefficients :meth:`forward` returns, ``[60, 10, C]`` in the order of
    :func:`monomials`. Then ``monomials(r) @ coefficients`` evaluates the kernel of every frame at once, and a
    sum over neighbours can be taken before the kernel is applied (one dense matmul; see :class:`GroupPointConv`).
    """

    def __init__(self, channels: int, init_std: float = 0.3) -> None:
        super().__init__()
        self.a = nn.Parameter(init_std * torch.randn(channels))
        self.b = nn.Parameter(init_std * torch.randn(channels, 3))
        self.A = nn.Parameter(init_std * torch.randn(channels, 3, 3))

    def forward(self, group: Tensor) -> Tensor:
        lin = torch.einsum("gpq,cq->gpc", group, self.b)  # G_g b_c, [60, 3, C]
        quad = torch.einsum("gpi,cij,gqj->gpqc", group, self.A, group)  # G_g A_c G_g^T, [60, 3, 3, C]
        diag = quad.diagonal(dim1=1, dim2=2).permute(0, 2, 1)  # [60, 3, C]
        sym = quad + quad.transpose(1, 2)
        off = torch.stack([sym[:, 0, 1], sym[:, 0, 2], sym[:, 1, 2]], 1)  # xy, xz, yz
        const = self.a.expand(group.shape[0], 1, -1)
        return torch.cat([const, lin, diag, off], 1)


class GroupPointConv(nn.Module):
    r"""Separable convolution on points x the icosahedral group, for fixed-degree neighbourhoods.

    The maths of :class:`geomanip.kernels.FiberConv` with the 60 group rotations as the fiber grid: for point ``i``,
    its neighbours ``j`` and rotations ``g``, ``p``,

    .. math::
        u_{i,g} = \frac{1}{k} \sum_j k_s(G_g^T (x_j - x_i)) \odot f_{j,g}, \qquad
        f'_{i,p} = W \Big(u_{i,p} + \frac{1}{60} \sum_g (W_f\, b_f(G_p^T G_g)) \odot u_{i,g}\Big) + b

    with a quadratic spatial kernel ``k_s`` per channel (:class:`QuadraticKernel`). Both kernels depend on
    quantities unchanged when the input and the frames are rotated together, so a rotation ``h`` of the input
    that belongs to the group permutes the group axis: ``f'[i, g] -> f'[i, h^-1 g]``.

    Because ``k_s(G_g^T r)`` is a fixed polynomial in ``r`` with frame-dependent coefficients, the kernels of
    all edges and frames come from one dense matmul, ``monomials(r) [edges, 10] @ coefficients [10, 60 C]``.
    (The previous MLP basis, evaluated per edge and frame, and its weight gradient dominated the step time.)

    Shapes: ``f [B, N, 60, C]``, ``nbr [B, N, k]``, ``mono [B, N, k, 10]`` (:func:`monomials` of the relative
    positions), ``group [60, 3, 3]``, ``fiber_basis [60, 60, D]`` -> ``[B, N, 60, out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int, basis_dim: int) -> None:
        super().__init__()
        self.spatial_kernel = QuadraticKernel(in_channels)
        self.fiber_kernel = nn.Linear(basis_dim, in_channels, bias=False)
        self.linear = nn.Linear(in_channels, out_channels)

    def forward(self, f: Tensor, nbr: Tensor, mono: Tensor, group: Tensor, fiber_basis: Tensor) -> Tensor:
        B, N, G, C = f.shape
        k = nbr.shape[-1]
        flat = (nbr + N * torch.arange(B, device=nbr.device).view(B, 1, 1)).reshape(-1)
        f_j = f.reshape(B * N, G * C).index_select(0, flat).view(B * N, k, G * C)
        # Spatial kernel of every edge and frame by one dense matmul, [BN, k, 60 C] (the 1/k of the mean folded in).
        edge = (mono.reshape(B * N * k, -1) / k) @ self.spatial_kernel(group).transpose(0, 1).reshape(-1, G * C)
        u = (edge.view(B * N, k, G * C) * f_j).sum(1).view(B * N, G, C)
        kernel = self.fiber_kernel(fiber_basis)  # [60 (p), 60 (g), C]
        mixed = torch.bmm(kernel.permute(2, 0, 1), u.permute(2, 1, 0))  # [C, 60, BN]
        # Plus the unmixed term: at initialisation the fiber kernel is nearly the same for every pair, so the
        # mixed term alone is nearly constant over the group and would wash out all orientation information.
        return self.linear(u + mixed.permute(2, 1, 0) / G).view(B, N, G, -1)


class GroupPointBlock(nn.Module):
    """Residual block ``f + gamma * MLP(LayerNorm(GroupPointConv(f)))``, like :class:`geomanip.kernels.FiberBlock`."""

    def __init__(self, channels: int, basis_dim: int, layer_scale: float = 0.1) -> None:
        super().__init__()
        self.conv = GroupPointConv(channels, channels, basis_dim)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))
        self.gamma = nn.Parameter(torch.full((channels,), layer_scale))

    def forward(self, f: Tensor, nbr: Tensor, mono: Tensor, group: Tensor, fiber_basis: Tensor) -> Tensor:
        return f + self.gamma * self.mlp(self.norm(self.conv(f, nbr, mono, group, fiber_basis)))


def sixd_to_matrix(d6: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` from two 3-vectors ``[..., 6]`` by Gram-Schmidt (columns)."""
    a, b = d6[..., :3], d6[..., 3:]
    x = F.normalize(a, dim=-1)
    y = F.normalize(b - (x * b).sum(-1, keepdim=True) * x, dim=-1)
    return torch.stack([x, y, torch.linalg.cross(x, y)], -1)


def rotation_near_identity(d6: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` from offsets ``[..., 6]`` to the identity's 6-D representation: a zero
    offset gives the identity, so a head whose last layer starts at zero starts with no rotation."""
    eye6 = torch.tensor([1.0, 0, 0, 0, 1.0, 0], dtype=d6.dtype, device=d6.device)
    return sixd_to_matrix(eye6 + d6)


def local_from_global(part_rot: Tensor) -> Tensor:
    """SMPL rotations ``[B, 24, 3, 3]`` (root global, others local) from global part rotations ``[B, 22, 3, 3]``.

    ``R_local[j] = R_global[parent(j)]^T R_global[j]``; the hands (22, 23) get the identity.
    """
    out = [part_rot[:, 0]]
    for j in range(1, NUM_PARTS):
        out.append(part_rot[:, PARENTS[j]].transpose(-1, -2) @ part_rot[:, j])
    eye = torch.eye(3, dtype=part_rot.dtype, device=part_rot.device).expand(part_rot.shape[0], 3, 3)
    return torch.stack(out + [eye, eye], 1)


def mesh_centroid(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted centroid of each mesh's surface, ``[B, 3]``: the mean of points sampled on it."""
    tri = vertices[:, faces]
    area = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]).norm(dim=-1)
    return (area.unsqueeze(-1) * tri.mean(2)).sum(1) / area.sum(1, keepdim=True)


def body_prediction(
    body: BodyModel, part_rot: Tensor, betas: Tensor, centre: Tensor, logits: Tensor, idx: Tensor
) -> dict[str, Tensor]:
    """The output dict of a body regressor: posed body from per-part global rotations and shape, placed so
    that its mesh centroid sits at the input cloud's ``centre``."""
    rotations = local_from_global(part_rot)
    verts, joints = body(rotations, betas)
    transl = centre[:, 0] - mesh_centroid(verts, body.faces)
    return {
        "rotations": rotations,
        "global_orient": rotations[:, 0],
        "betas": betas,
        "vertices": verts + transl[:, None],
        "joints": joints + transl[:, None],
        "transl": transl,
        "part_rotations": part_rot,
        "part_logits": logits,
        "sample_index": idx,
    }


class BodyRegressor(nn.Module):
    """Base of the point-cloud body regressors: :meth:`fit` is :meth:`forward` in eval mode, no gradients."""

    @torch.no_grad()
    def fit(self, points: Tensor) -> dict[str, Tensor]:
        was = self.training
        self.eval()
        try:
            return self(points)
        finally:
            self.train(was)


class ArtEq(BodyRegressor):
    """ArtEq network (see the module docstring) with the body model it regresses parameters of.

    Args:
        body: an SMPL-format :class:`~geomanip.motion.body.BodyModel` (default:
            :func:`~geomanip.motion.body.load_body_model`).
        num_points: points kept from each input cloud (:func:`subsample`).
        neighbours: k of the k-nearest-neighbour graph.
        channels: feature channels per group element.
        layers: residual :class:`~geomanip.kernels.FiberBlock` layers after the lifting convolution.
        basis_dim: size of the kernel bases.
        radius: length scale (m) dividing relative positions before the spatial basis.
        refine: correct each part's rotation from the cloud seen in its estimated frame (step 5 above).

    Shapes:
        - input: ``points [B, P, 3]`` (metres, any position and orientation)
        - output: dict with ``rotations [B, 24, 3, 3]`` (root global, others local), ``global_orient
          [B, 3, 3]``, ``betas [B, 10]``, ``vertices [B, V, 3]``, ``joints [B, 24, 3]``, ``transl [B, 3]``,
          ``part_rotations [B, 22, 3, 3]`` (global), ``part_logits [B, num_points, 22]`` and
          ``sample_index [B, num_points]`` (which input points were kept).
    """

    def __init__(
        self,
        body: BodyModel | None = None,
        num_points: int = 128,
        neighbours: int = 8,
        channels: int = 16,
        layers: int = 2,
        basis_dim: int = 8,
        radius: float = 0.15,
        refine: bool = True,
    ) -> None:
        super().__init__()
        # Held outside the module tree: its arrays come from the body-model file, not from training.
        self._body = [body if body is not None else load_body_model()]
        self.num_points, self.neighbours, self.radius = num_points, neighbours, radius
        self.body_scale = 0.5  # metres dividing positions from the centroid before the position embedding
        group = icosahedral_group(torch.float32)
        self.register_buffer("group", group, persistent=False)
        self.register_buffer(
            "fiber_invariants", torch.einsum("pab,oac->pobc", group, group).reshape(60, 60, 9), persistent=False
        )
        C = channels
        self.fiber_basis = PolynomialBasis(9, basis_dim, degree=2)
        self.position = QuadraticKernel(C)
        self.lift = GroupPointConv(C, C, basis_dim)
        self.blocks = nn.ModuleList(GroupPointBlock(C, basis_dim) for _ in range(layers))
        self.context = nn.Sequential(nn.LayerNorm(2 * C), nn.Linear(2 * C, 2 * C), nn.GELU(), nn.Linear(2 * C, C))
        self.frame_score = nn.Linear(C, 1)
        self.seg_head = nn.Sequential(nn.Linear(2 * C, 2 * C), nn.GELU(), nn.Linear(2 * C, NUM_PARTS))
        self.part_embed = nn.Parameter(0.1 * torch.randn(NUM_PARTS, C))
        self.shape_attn = nn.TransformerEncoderLayer(C, nhead=4, dim_feedforward=2 * C, batch_first=True)
        self.shape_head = nn.Sequential(nn.Linear(C, C), nn.GELU(), nn.Linear(C, NUM_BETAS))
        self.pose_head = nn.Sequential(nn.Linear(2 * C, C), nn.GELU(), nn.Linear(C, 1 + 6))
        # Small random (not zero) last layer: with equal attention logits the 60 anchors average to the zero
        # matrix, whose SVD (the chordal mean) is undefined; small residual rotations start near the anchors.
        nn.init.normal_(self.pose_head[-1].weight, std=0.1)
        nn.init.zeros_(self.pose_head[-1].bias)
        self.refine = refine
        if refine:
            width = 4 * C
            self.refine_point = nn.Linear(3 + NUM_PARTS, width)
            self.refine_part = nn.Parameter(torch.zeros(NUM_PARTS, width))
            self.refine_mlp = nn.Sequential(nn.GELU(), nn.Linear(width, width))
            self.refine_head = nn.Sequential(nn.Linear(width + C, width), nn.GELU(), nn.Linear(width, 6))
            # Zero last layer: the refinement starts as the identity, so it can be added to a trained network.
            nn.init.zeros_(self.refine_head[-1].weight)
            nn.init.zeros_(self.refine_head[-1].bias)

    @property
    def body(self) -> BodyModel:
        return self._body[0]

    def _apply(self, fn, recurse=True):  # keep the body model on the network's device and dtype
        self._body[0] = self._body[0]._apply(fn)
        return super()._apply(fn, recurse)

    def features(self, x: Tensor) -> Tensor:
        """Equivariant features ``[B, N, 60, C]`` of centred, subsampled points ``x [B, N, 3]``."""
        B, N, _ = x.shape
        nbr = knn_graph(x, self.neighbours)
        x_j = torch.gather(x.unsqueeze(1).expand(B, N, N, 3), 2, nbr.unsqueeze(-1).expand(-1, -1, -1, 3))
        mono = monomials((x_j - x.unsqueeze(2)) / self.radius)  # [B, N, k, 10]
        fb = self.fiber_basis(self.fiber_invariants)
        # Input: each point's position (from the centroid) in every frame, an equivariant embedding.
        pos = monomials(x / self.body_scale).reshape(B * N, -1) @ self.position(self.group).transpose(0, 1).flatten(1)
        f = self.lift(pos.view(B, N, 60, -1), nbr, mono, self.group, fb)
        for block in self.blocks:
            f = block(f, nbr, mono, self.group, fb)
        # Global context: the cloud's mean feature in the same frame joins every point's feature. Local features
        # alone (a few neighbourhoods of ~10 cm) cannot tell left from right or a hand from a foot.
        glob = f.mean(1, keepdim=True).expand_as(f)
        return f + self.context(torch.cat([f, glob], -1))

    def forward(self, points: Tensor) -> dict[str, Tensor]:
        if points.dim() != 3 or points.size(-1) != 3:
            raise ValueError(f"ArtEq: points must have shape [B, P, 3], got {list(points.shape)}")
        centre = points.mean(1, keepdim=True)
        x = points - centre
        idx = subsample(x, self.num_points)
        x = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, 3))
        f = self.features(x)  # [B, N, 60, C]
        B, N = x.shape[:2]

        # --- segmentation from invariant features; soft pooling per part ------------------------
        # Invariant per-point features: the mean over the 60 frames, and an attention-weighted sum whose weights
        # come from the cloud's mean feature in each frame (they pick frames aligned with the body, so the
        # weighted features read positions in the body's own frame; permuting the frames permutes the weights).
        frame_w = self.frame_score(f.mean(1)).softmax(1)  # [B, 60, 1]
        aligned = torch.einsum("bgo,bngc->bnc", frame_w, f)
        logits = self.seg_head(torch.cat([f.mean(2), aligned], -1))  # [B, N, 22]
        prob = logits.softmax(-1)
        mass = prob.sum(1).clamp(min=1e-6)  # [B, 22]
        part = torch.einsum("bnp,bngc->bpgc", prob, f) / mass[:, :, None, None]  # [B, 22, 60, C]

        # --- shape: invariant part tokens with self-attention ---------------------------------------
        tokens = self.shape_attn(part.mean(2) + self.part_embed)
        betas = self.shape_head(tokens.mean(1))

        # --- pose: attention over the 60 rotation tokens of each part -------------------------------
        # Normalised over the group axis (statistics over all 60 tokens, so still equivariant): what varies
        # with orientation is small next to what does not, and would leave the attention nearly uniform.
        part_n = (part - part.mean(2, keepdim=True)) / (part.std(2, keepdim=True) + 1e-5)
        emb = self.part_embed[None, :, None, :].expand(B, -1, 60, -1)
        head = self.pose_head(torch.cat([part_n, emb], -1))  # [B, 22, 60, 7]
        weights = head[..., 0].softmax(-1)
        delta = rotation_near_identity(head[..., 1:])  # residual in each anchor's frame
        anchors = self.group.to(head.dtype) @ delta  # G_g delta_g, [B, 22, 60, 3, 3]
        part_rot = chordal_mean(anchors, weights)  # [B, 22, 3, 3]
        if self.refine:
            part_rot = part_rot @ self._residual_rotations(x, prob, mass, part_rot)

        return body_prediction(self.body, part_rot, betas, centre, logits, idx)

    def _residual_rotations(self, x: Tensor, prob: Tensor, mass: Tensor, part_rot: Tensor) -> Tensor:
        """Per-part corrections ``[B, 22, 3, 3]`` from the cloud seen in each part's estimated frame.

        ``y = R_p^T (x - c_p)`` (``c_p`` the part's soft centroid) does not change when the cloud is rotated by
        ``h`` and ``R_p`` becomes ``h R_p``, so the correction is invariant and ``R_p dR_p`` stays equivariant.
        Every point enters each part's view with its part probabilities, so a part also sees its neighbours.
        """
        centre = torch.einsum("bnp,bnk->bpk", prob, x) / mass[..., None]  # [B, 22, 3]
        y = torch.einsum("bpji,bpnj->bpni", part_rot, x[:, None] - centre[:, :, None]) / self.body_scale
        B, P, N, _ = y.shape
        h = self.refine_point(torch.cat([y, prob[:, None].expand(B, P, N, -1)], -1)) + self.refine_part[:, None]
        h = self.refine_mlp(h).amax(2)  # [B, 22, width]
        d6 = self.refine_head(torch.cat([h, self.part_embed.expand(B, -1, -1)], -1))
        return rotation_near_identity(d6)


def arteq_loss(
    out: dict[str, Tensor],
    batch: dict[str, Tensor],
    body: BodyModel,
    weights: dict[str, float] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Weighted sum of ArtEq's losses and each term as a float (``losses/<term>``).

    Terms: ``seg`` (cross-entropy of the kept points' part labels; skipped when ``out`` has no
    ``part_logits``), ``rot`` (mean squared Frobenius distance of the 22 global part rotations), ``betas``
    (MSE), ``joints`` and ``vertices`` (mean Euclidean distance, m). ``batch`` holds ground truth as made
    by :func:`geomanip.motion.body.data.generate`.
    """
    w = {"seg": 1.0, "rot": 1.0, "betas": 0.1, "joints": 5.0, "vertices": 5.0, **(weights or {})}
    gt_global = body.global_rotations(batch["rotations"])[:, :NUM_PARTS]
    pred_global = out.get("part_rotations")
    if pred_global is None:
        pred_global = body.global_rotations(out["rotations"])[:, :NUM_PARTS]
    terms = {
        "rot": (pred_global - gt_global).square().sum((-1, -2)).mean(),
        "betas": F.mse_loss(out["betas"], batch["betas"]),
        "joints": (out["joints"] - batch["joints"]).norm(dim=-1).mean(),
        "vertices": (out["vertices"] - batch["vertices"]).norm(dim=-1).mean(),
    }
    if "part_logits" in out:
        labels = torch.gather(batch["labels"], 1, out["sample_index"])
        terms["seg"] = F.cross_entropy(out["part_logits"].reshape(-1, NUM_PARTS), labels.reshape(-1))
    total = sum(w[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}
