"""HEPi: heterogeneous equivariant policy on position-orientation space, and its homogeneous twin EMPN."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geomanip.kernels import (
    ConvNeXtMLP,
    FiberConv,
    HeteroConv,
    PolynomialBasis,
    lift_vectors,
    offset_invariants,
    orientation_invariants,
    readout_scalars,
    readout_vectors,
    ring_grid,
)
from geomanip.policies.graph_obs import GraphLayout, batch_edges, node_vectors

__all__ = ["HEPiNetwork", "edge_invariants"]

_MERGED = ("node", "edge", "node")


def edge_invariants(pos_src: Tensor, pos_dst: Tensor, edge_index: Tensor, grid: Tensor) -> Tensor:
    """PONITA's two invariants of each edge at each grid direction, plus a chiral one: ``[E, O, 3]``.

    The third, ``z . (n_o x dx)``, tells on which side of direction ``n_o`` the edge ``dx`` lies seen from above.
    It is invariant to rotations about the vertical but changes sign under reflections. Without it the network
    is also exactly invariant to the grid's mirror reflections, so its invariant yaw rate would have to be the
    same for a scene and its mirror image, where the right turns are opposite.
    """
    dx = pos_src.index_select(0, edge_index[0]) - pos_dst.index_select(0, edge_index[1])
    side = dx[:, None, 1] * grid[None, :, 0] - dx[:, None, 0] * grid[None, :, 1]  # (n_o x dx)_z
    return torch.cat([offset_invariants(dx, grid), side[..., None]], -1)


class HEPiNetwork(nn.Module):
    r"""Actor and critic latents from a graph observation (after HEPi, ICLR 2025, REFERENCE.md §1).

    Every node carries features on a grid of directions (:func:`geomanip.kernels.ring_grid`: rings about the vertical
    axis, so the network is exactly equivariant to rotations about it by multiples of ``2 pi / longitudes``,
    to translations, and to permutations of same-type nodes). Vectors (velocities, offsets to targets) are
    lifted onto the grid; each node type adds a learned type embedding.

    ``heterogeneous=True`` (HEPi): each edge type has its own :class:`~geomanip.kernels.FiberConv`, summed per
    destination type; a layer runs two message steps, first the internal edges (object to object), then the
    task and agent edges (object to gripper, gripper to gripper), each followed by a per-type ConvNeXt update.
    ``heterogeneous=False`` (EMPN): one graph, one node type, one convolution per step over all edges.

    Each edge has PONITA's two invariants per direction plus a chiral one (:func:`edge_invariants`), so the
    yaw rate can tell a scene from its mirror image. They enter the kernel bases as ``asinh(x / length_scale)``:
    linear below the objects' size, logarithmic beyond, so centimetre-scale keypoint edges and metre-scale
    distances both give the bases something to resolve. The convolutions calibrate their kernels on the first batch (see
    :class:`~geomanip.kernels.FiberConv`); without that their outputs started about 1e-4 of their inputs and every
    node's direction-averaged features, hence the critic, were constant to 1e-6 across states.

    Heads: for each actuator node, an equivariant vector ``v`` (read out from the grid) times an invariant
    gate ``s`` gives the linear-velocity mean (its first ``linear_dims`` components), and an invariant scalar
    gives the yaw rate. The gate starts near 1 (a product of two small factors would give the translation
    actions far less gradient than the yaw rate). The critic latent is a DeepSets sum over invariant node
    read-outs, so the value is invariant too.

    Shapes: ``forward(obs)`` with ``obs[key] [B, n, 3]`` -> ``(action mean [B, A], critic latent [B, H])``.
    """

    def __init__(
        self,
        layout: GraphLayout,
        hidden: int = 64,
        layers: int = 1,
        longitudes: int = 8,
        basis_dim: int = 32,
        heterogeneous: bool = True,
        length_scale: float = 0.1,
    ) -> None:
        super().__init__()
        if length_scale <= 0:
            raise ValueError(f"HEPiNetwork: length_scale must be positive, got {length_scale}")
        self.layout, self.hidden, self.heterogeneous = layout, hidden, heterogeneous
        self.length_scale = length_scale
        # Kept in float64 and cast per call: a grid rounded to float32 is no longer mapped exactly onto itself by
        # the rotations it should be (cos 45 degrees is off by 3e-8), which float64 equivariance tests would see.
        self.register_buffer("grid", ring_grid(longitudes, dtype=torch.float64), persistent=False)
        types = list(layout.node_counts)
        self.embed = nn.ModuleDict({t: nn.Linear(len(layout.vector_features(t)), hidden, bias=False) for t in types})
        self.type_embedding = nn.ParameterDict({t: nn.Parameter(torch.randn(hidden) * 0.1) for t in types})
        self.fiber_basis = PolynomialBasis(1, basis_dim)
        edge_types = list(layout.edges)
        internal = [et for et in edge_types if et[0] == et[2] != layout.actuator]
        external = [et for et in edge_types if et not in internal]
        self.steps = [internal, external] if heterogeneous else [[_MERGED]]
        basis_types = edge_types if heterogeneous else [_MERGED]
        self.spatial_basis = nn.ModuleDict({"__".join(et): PolynomialBasis(3, basis_dim) for et in basis_types})
        self.convs = nn.ModuleList()
        self.updates = nn.ModuleList()
        for _ in range(layers):
            for step in self.steps:
                self.convs.append(
                    HeteroConv({et: FiberConv(hidden, hidden, basis_dim, aggr="mean", calibrate=True) for et in step})
                )
                dsts = {et[2] for et in step}
                self.updates.append(nn.ModuleDict({t: ConvNeXtMLP(hidden, layer_scale=None) for t in dsts}))
        self.head_vector = nn.Linear(hidden, 1, bias=False)
        self.head_scalar = nn.Linear(hidden, 2)
        with torch.no_grad():
            self.head_scalar.bias[0] = 1.0  # the gate s
        self.critic_node = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.critic_out = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU())

    def forward(self, obs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        lay = self.layout
        pos_a = obs[f"{lay.actuator}_pos"]
        B, device = pos_a.shape[0], pos_a.device
        grid = self.grid.to(device, pos_a.dtype)
        pos, f = {}, {}
        for t in lay.node_counts:
            p, v = node_vectors(obs, lay, t)
            pos[t] = p
            f[t] = self.embed[t](lift_vectors(v, grid)) + self.type_embedding[t]
        edges = {
            et: batch_edges(idx, lay.node_counts[et[0]], lay.node_counts[et[2]], B, device)
            for et, idx in lay.edges.items()
        }
        if not self.heterogeneous:
            # One node set: types stacked in a fixed order, edges shifted to the stacked numbering.
            order = list(lay.node_counts)
            start = {t: sum(lay.node_counts[u] * B for u in order[: order.index(t)]) for t in order}
            edges = {
                _MERGED: torch.cat(
                    [ei + torch.tensor([[start[s]], [start[d]]], device=device) for (s, _, d), ei in edges.items()], 1
                )
            }
            pos = {"node": torch.cat([pos[t] for t in order])}
            f = {"node": torch.cat([f[t] for t in order])}
        fiber = self.fiber_basis(orientation_invariants(grid))
        bases = {}
        for et, ei in edges.items():
            invariants = torch.asinh(edge_invariants(pos[et[0]], pos[et[2]], ei, grid) / self.length_scale)
            bases[et] = {"spatial_basis": self.spatial_basis["__".join(et)](invariants)}
        for k, (conv, update) in enumerate(zip(self.convs, self.updates, strict=True)):
            step = self.steps[k % len(self.steps)]
            nodes = {t: {"f": f[t]} for t in {et[0] for et in step} | {et[2] for et in step}}
            out = conv(nodes, {et: edges[et] for et in step}, {et: bases[et] for et in step}, fiber_basis=fiber)
            for t, u in out.items():
                f[t] = f[t] + update[t](u)
        if not self.heterogeneous:
            order = list(lay.node_counts)
            chunks = torch.split(f["node"], [lay.node_counts[t] * B for t in order])
            f = dict(zip(order, chunks, strict=True))

        # Actor: equivariant vector times invariant gate; invariant yaw rate.
        fa = f[lay.actuator]
        # x3 makes the read-out the inverse of lifting on this grid (sum_o n_o n_o^T = O/3 I): a lifted vector
        # reads out unchanged, instead of at a third of its length.
        vec = 3.0 * readout_vectors(self.head_vector(fa), grid)[:, 0]  # [B * G, 3]
        scal = readout_scalars(self.head_scalar(fa))  # [B * G, 2]
        linear = (vec * scal[:, :1])[:, : lay.linear_dims]
        per_node = torch.cat([linear, scal[:, 1:]], 1) if lay.yaw else linear
        mean = per_node.reshape(B, -1)

        # Critic: DeepSets over invariant node read-outs.
        pooled = sum(self.critic_node(readout_scalars(f[t])).reshape(B, -1, self.hidden).sum(1) for t in f)
        return mean, self.critic_out(pooled)
