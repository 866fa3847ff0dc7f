"""HEPi: heterogeneous equivariant policy on position-orientation space, and its homogeneous twin EMPN."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomanip.kernels import (
    ConvNeXtMLP,
    FiberConv,
    HeteroConv,
    PolynomialBasis,
    offset_invariants,
    orientation_invariants,
    polynomial_features,
    polynomial_rows_,
    ring_grid,
)
from geomanip.kernels.fiber_geometry import num_polynomial_features
from geomanip.policies.graph_obs import GraphLayout, node_scalar_tensors

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


@dataclass(frozen=True)
class _EdgeSet:
    """One edge type of the dense graph, its edges sorted by destination.

    ``degree`` is the in-degree when every destination node has the same one (messages are then summed over
    a reshaped axis and the 1/degree goes into the mixing matrix), else ``None`` (averaged by a ``[n_dst, E]``
    matrix product). ``identity``: the sources are the source nodes in order, one edge each, so no gather.
    """

    edge_type: tuple[str, str, str]
    src_type: str
    dst_type: str
    src: tuple[int, ...]
    dst: tuple[int, ...]
    n_src: int
    n_dst: int
    degree: int | None
    identity: bool


def _asinh_(x: Tensor) -> Tensor:
    """``asinh`` in place, as ``sign(x) log1p(|x| + x^2 / (1 + sqrt(1 + x^2)))`` (accurate near 0 too).

    ``torch.asinh`` on the CPU runs element by element; these vectorised operations are several times faster
    on the ``[E, B, O, 3]`` invariants of a PPO minibatch.
    """
    if x.numel() < 4096:
        return torch.asinh_(x)  # few elements: one operation costs less than the eight below
    a = x.abs()
    sq = x.square()
    sq.div_(sq.add(1.0).sqrt_().add_(1.0)).add_(a).log1p_()
    return x.copy_(sq.copysign_(x))


def _edge_set(edge_type, src_type, dst_type, src, dst, n_src, n_dst) -> _EdgeSet:
    order = sorted(range(len(dst)), key=lambda e: dst[e])
    src, dst = tuple(src[e] for e in order), tuple(dst[e] for e in order)
    counts = [dst.count(i) for i in range(n_dst)]
    degree = counts[0] if counts and counts[0] > 0 and all(c == counts[0] for c in counts) else None
    identity = src == tuple(range(n_src))
    return _EdgeSet(edge_type, src_type, dst_type, src, dst, n_src, n_dst, degree, identity)


@dataclass(frozen=True)
class _Constants:
    """Input-independent tensors of one (device, dtype), built once: they depend on the layout and grid only."""

    grid: Tensor  # [O, 3]
    side: Tensor  # [O, 3]: dx @ side.T = (n_o x dx)_z
    incidence: Tensor  # [E_all, N_all]: +1/length_scale at each edge's source, -1/length_scale at its destination
    fiber_features: Tensor  # [O, O, P]: polynomial features of <n_p, n_o>
    src: dict[tuple[str, str, str], Tensor]  # gather indices of each edge type
    mean: dict[tuple[str, str, str], Tensor]  # [n_dst, E] averaging matrices of the non-uniform edge types
    scalars: dict[str, Tensor]  # [n, k] node scalars of the types that have them


class HEPiNetwork(nn.Module):
    r"""Actor and critic latents from a graph observation (after HEPi, ICLR 2025).

    Every node carries features on a grid of directions (:func:`geomanip.kernels.ring_grid`: rings about the vertical
    axis, so the network is exactly equivariant to rotations about it by multiples of ``2 pi / longitudes``,
    to translations, and to permutations of same-type nodes that carry their node scalars along). Vectors
    (velocities, offsets to targets) are lifted onto the grid; each node type adds a learned type embedding, and
    each node a learned linear map of its fixed scalars where the layout has them (``layout.node_scalars``).

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

    How it runs: every environment of a task has the same graph, so a batch is one fixed graph repeated. The
    network keeps each node type's features as one dense ``[n, B, O, C]`` tensor (node-major, so that the
    edges of a type are contiguous rows), gathers messages with one ``index_select`` per edge type and
    averages them with a reshape (or a fixed matrix where in-degrees differ).
    The maths are those of :class:`~geomanip.kernels.FiberConv` on the batched edge list; the weights are held
    by the same modules, so checkpoints are unchanged. At PPO's batch sizes a forward is a few dozen small
    operations, and per-operation overhead, not arithmetic, is what a gather/scatter formulation paid for.

    Shapes: ``forward(obs)`` with ``obs[key] [B, n, 3]`` -> ``(action mean [B, A], critic latent [B, H])``;
    :meth:`forward_actor` and :meth:`forward_critic` compute one head each.
    """

    def __init__(
        self,
        layout: GraphLayout,
        hidden: int = 16,
        layers: int = 1,
        longitudes: int = 4,
        basis_dim: int = 16,
        heterogeneous: bool = True,
        length_scale: float = 0.1,
    ) -> None:
        super().__init__()
        if length_scale <= 0:
            raise ValueError(f"HEPiNetwork: length_scale must be positive, got {length_scale}")
        self.layout, self.hidden, self.heterogeneous = layout, hidden, heterogeneous
        self.length_scale, self.longitudes = length_scale, longitudes
        # Kept in float64 (and the per-dtype constants are cast from float64): a grid rounded to float32 is no
        # longer mapped exactly onto itself by the rotations it should be (cos 45 degrees is off by 3e-8), which
        # float64 equivariance tests would see.
        self.register_buffer("grid", ring_grid(longitudes, dtype=torch.float64), persistent=False)
        types = list(layout.node_counts)
        self.embed = nn.ModuleDict({t: nn.Linear(len(layout.vector_features(t)), hidden, bias=False) for t in types})
        self.type_embedding = nn.ParameterDict({t: nn.Parameter(torch.randn(hidden) * 0.1) for t in types})
        # Fixed per-node scalars (a rope link's place along the rope) add an invariant per-node bias to the
        # type embedding.
        scalars = layout.node_scalars or {}
        self.scalar_embed = nn.ModuleDict({t: nn.Linear(len(v[0]), hidden, bias=False) for t, v in scalars.items()})
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
        self._basis_degree = self.spatial_basis[next(iter(self.spatial_basis))].degree
        self._build_dense_graph()
        self._constants: dict[tuple[torch.device, torch.dtype], _Constants] = {}
        self._weight_cache: tuple[tuple, dict] | None = None
        self._parameter_list: tuple[nn.Parameter, ...] | None = None

    def _build_dense_graph(self) -> None:
        """The node sets and edge sets the network computes on (EMPN: one node set, types stacked in order)."""
        lay = self.layout
        starts, n = {}, 0
        for t, count in lay.node_counts.items():
            starts[t], n = n, n + count
        if self.heterogeneous:
            self._edge_sets = {
                et: _edge_set(et, et[0], et[2], src, dst, lay.node_counts[et[0]], lay.node_counts[et[2]])
                for et, (src, dst) in lay.edges.items()
            }
            # The node set holding the actuators, and the row where they start.
            self._actuator = (lay.actuator, 0)
        else:
            src = [starts[s] + i for (s, _, _), (idx, _) in lay.edges.items() for i in idx]
            dst = [starts[d] + i for (_, _, d), (_, idx) in lay.edges.items() for i in idx]
            self._edge_sets = {_MERGED: _edge_set(_MERGED, "node", "node", src, dst, n, n)}
            self._actuator = ("node", starts[lay.actuator])
        # Rows of the positions of all nodes (types stacked in the layout's order), for the edge offsets.
        self._position_rows = {
            et: ([starts[es.src_type] + i for i in es.src], [starts[es.dst_type] + i for i in es.dst])
            if self.heterogeneous
            else (list(es.src), list(es.dst))
            for et, es in self._edge_sets.items()
        }
        self._num_positions = n

    def _apply(self, fn, recurse=True):
        # Rebuilt on the new device or dtype on the next call.
        self._constants, self._weight_cache, self._parameter_list = {}, None, None
        return super()._apply(fn, recurse)

    def _constants_for(self, device: torch.device, dtype: torch.dtype) -> _Constants:
        key = (device, dtype)
        if key not in self._constants:
            grid64 = ring_grid(self.longitudes, dtype=torch.float64)
            side = torch.stack([-grid64[:, 1], grid64[:, 0], torch.zeros_like(grid64[:, 0])], 1)  # (n_o x dx)_z
            rows = [r for et in self._edge_sets for r in zip(*self._position_rows[et], strict=True)]
            incidence = torch.zeros(len(rows), self._num_positions, dtype=torch.float64)
            for e, (s, d) in enumerate(rows):
                incidence[e, s] += 1.0 / self.length_scale
                incidence[e, d] -= 1.0 / self.length_scale
            fiber_features = polynomial_features(orientation_invariants(grid64), self.fiber_basis.degree)
            mean = {}
            for et, es in self._edge_sets.items():
                if es.degree is None:
                    m = torch.zeros(es.n_dst, len(es.dst), dtype=torch.float64)
                    m[list(es.dst), range(len(es.dst))] = 1.0
                    mean[et] = m / m.sum(1, keepdim=True).clamp(min=1)
            cast = dict(device=device, dtype=dtype)
            self._constants[key] = _Constants(
                grid=grid64.to(**cast),
                side=side.to(**cast),
                incidence=incidence.to(**cast),
                fiber_features=fiber_features.to(**cast),
                src={et: torch.tensor(es.src, device=device) for et, es in self._edge_sets.items()},
                mean={et: m.to(**cast) for et, m in mean.items()},
                # From the layout's float64 values, not rounded through float32 on their way to float64.
                scalars={t: v.to(**cast) for t, v in node_scalar_tensors(self.layout, torch.float64).items()},
            )
        return self._constants[key]

    def _embed(self, obs: dict[str, Tensor], w: dict) -> dict[str, Tensor]:
        """Each node set's lifted, embedded vectors, ``[n, B, O, C]``."""
        f = {}
        for t in self.layout.node_counts:
            pos = obs[f"{t}_pos"]
            B, n = pos.shape[:2]
            keys = self.layout.vector_features(t)
            v = torch.cat([obs[key] - pos if key.endswith("_target") else obs[key] for key in keys], -1)
            x = v.transpose(0, 1).reshape(n * B, -1)
            bias = w["embed_bias", t]
            if bias.dim() == 1:
                f[t] = torch.addmm(bias, x, w["lift", t]).view(n, B, -1, self.hidden)
            else:  # one bias per node
                f[t] = (x @ w["lift", t]).view(n, B, -1).add_(bias[:, None]).view(n, B, -1, self.hidden)
        if not self.heterogeneous:
            f = {"node": torch.cat(list(f.values()))}
        return f

    def _weights(self, k: _Constants) -> dict:
        """Tensors derived from the parameters alone (lifting, mixing and read-out matrices, the fiber basis).

        Recomputed on every call that records gradients; otherwise (rollouts, evaluation) cached until a
        parameter changes: in-place writes (``load_state_dict``, most optimizers) bump the parameters' version
        counters and moving the module replaces them. Writes that bypass the counters (a fused optimizer's
        step, writes through ``.data``) must be followed by :meth:`clear_cache`, as
        :class:`~geomanip.policies.sb3.GraphActorCriticPolicy` does after each of its optimizer's steps, and so
        must replacing a parameter by another object.
        """
        if torch.is_grad_enabled():
            return self._derive_weights(k)
        if self._parameter_list is None:
            # Listed once: ``self.parameters()`` walks the module tree, a cost each rollout step would pay again.
            self._parameter_list = tuple(self.parameters())
        key = (k.grid.device, k.grid.dtype, *((p.data_ptr(), p._version) for p in self._parameter_list))
        if self._weight_cache is None or self._weight_cache[0] != key:
            self._weight_cache = (key, self._derive_weights(k))
        return self._weight_cache[1]

    def clear_cache(self) -> None:
        """Forget the cached parameter-derived tensors (see :meth:`_weights`); the next call recomputes them."""
        self._weight_cache, self._parameter_list = None, None

    def _derive_weights(self, k: _Constants) -> dict:
        O, C = k.grid.size(0), self.hidden
        w: dict = {}
        for t in self.layout.node_counts:
            # Lifting (<v, n_o>) and the embedding (a linear map of the lifted vectors) as one matrix:
            # lift[(v, d), (o, c)] = W[c, v] grid[o, d].
            weight = self.embed[t].weight
            w["lift", t] = (weight.T[:, None, None, :] * k.grid.T[None, :, :, None]).reshape(-1, O * C)
            if t in self.scalar_embed:
                bias = self.type_embedding[t] + self.scalar_embed[t](k.scalars[t])  # [n, C]
                w["embed_bias", t] = bias.repeat(1, O)
            else:
                w["embed_bias", t] = self.type_embedding[t].repeat(O)
        w["fiber"] = fiber = self.fiber_basis.mlp(k.fiber_features)  # [O, O, basis_dim]
        for i, hetero in enumerate(self.convs):
            for et in self.steps[i % len(self.steps)]:
                conv, es = hetero.convs["__".join(et)], self._edge_sets[et]
                # FiberConv's last two steps, for messages aggregated channel-first: the depthwise kernel over
                # directions as [C, O(o), O(p)], and the channel mix with the 1/O of the direction average and,
                # for a uniform in-degree (messages summed, not averaged), the mean's 1/degree: on this small
                # matrix instead of on (and, backwards, through) the messages.
                w["fiber_kernel", i, et] = conv.fiber_kernel(fiber).permute(2, 1, 0)
                w["channel_mix", i, et] = conv.linear.weight / (O * (es.degree or 1))
        # Both read-outs of the actuator features as one matrix over (o, c): the equivariant vector, x3 so that it
        # inverts the lifting on this grid (sum_o n_o n_o^T = O/3 I: a lifted vector reads out unchanged, not at a
        # third of its length), and the direction-averaged invariant scalars (gate, yaw rate).
        vector = (3.0 / O) * k.grid[:, None, :] * self.head_vector.weight[0][None, :, None]  # [O, C, 3]
        scalar = (self.head_scalar.weight.T / O).expand(O, C, 2)
        w["heads"] = torch.cat([vector, scalar], -1).view(O * C, 5)
        return w

    def _edge_features(self, obs: dict[str, Tensor], k: _Constants) -> Tensor:
        """Polynomial features of every edge's invariants, one feature per row: ``[P + 1, E_all, B, O]``.

        Rows: the invariants ``asinh((<dx, n_o>, |dx - <dx, n_o> n_o|, (n_o x dx)_z) / length_scale)``, their
        monomials up to the bases' degree (:func:`~geomanip.kernels.polynomial_rows_`), and a row of ones.
        """
        lay, O = self.layout, k.grid.size(0)
        positions = [obs[f"{t}_pos"] for t in lay.node_counts]
        pos = torch.cat(positions, 1)  # [B, N, 3]
        B = pos.size(0)
        dx = (k.incidence @ pos.transpose(0, 1).reshape(self._num_positions, B * 3)).view(-1, B, 3)
        eps = torch.finfo(dx.dtype).eps
        degree = self._basis_degree
        if torch.is_grad_enabled() and any(p.requires_grad for p in positions):
            # Differentiable in the positions (the fast path below writes into a buffer, which autograd cannot
            # follow): the same quantities from out-of-place operations.
            along, side = dx @ k.grid.T, dx @ k.side.T
            across = ((dx * dx).sum(-1, keepdim=True) - along * along).clamp(min=eps).sqrt()
            invariants = torch.asinh(torch.stack([along, across, side], -1))
            features = polynomial_features(invariants, degree)
            return torch.cat([features, torch.ones_like(features[..., :1])], -1).permute(3, 0, 1, 2)
        # A function of the observation alone: built in one buffer, row by row, with in-place operations.
        rows = dx.new_empty(num_polynomial_features(3, degree) + 1, dx.size(0), B, O)
        torch.matmul(dx, k.grid.T, out=rows[0])
        torch.matmul(dx, k.side.T, out=rows[2])
        # As offset_invariants: clamped inside the sqrt only to keep its gradient finite.
        torch.sub((dx * dx).sum(-1, keepdim=True), rows[0].square(), out=rows[1]).clamp_(min=eps).sqrt_()
        _asinh_(rows[:3])
        polynomial_rows_(rows, 3, degree)
        rows[-1].fill_(1.0)
        return rows

    def _bases(self, obs: dict[str, Tensor], k: _Constants) -> dict[tuple[str, str, str], Tensor]:
        """The spatial basis of every edge type, one basis function per row: ``[basis_dim, E, B, O]``."""
        features = self._edge_features(obs, k)
        bases, start = {}, 0
        for et, es in self._edge_sets.items():
            end = start + len(es.src)
            rows = features[:, start:end]
            basis = self.spatial_basis["__".join(et)].forward_rows(rows.reshape(rows.size(0), -1))
            bases[et] = basis.view(-1, *rows.shape[1:])
            start = end
        return bases

    def _trunk(self, obs: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict]:
        """Node features after every layer, ``{node set: [n, B, O, C]}``."""
        ref = obs[f"{self.layout.actuator}_pos"]
        B, k = ref.size(0), self._constants_for(ref.device, ref.dtype)
        w = self._weights(k)
        f = self._embed(obs, w)
        bases = self._bases(obs, k)
        for i, (hetero, update) in enumerate(zip(self.convs, self.updates, strict=True)):
            out: dict[str, Tensor] = {}
            for et in self.steps[i % len(self.steps)]:
                es, conv = self._edge_sets[et], hetero.convs["__".join(et)]
                if conv.needs_calibration:
                    y = self._calibrating_conv(conv, f, es, bases[et], w["fiber"], B)
                else:
                    y = self._conv(conv, f[es.src_type], es, bases[et], w, i, k)
                out[es.dst_type] = out[es.dst_type] + y if es.dst_type in out else y
            for t, u in out.items():
                f[t] = f[t] + update[t](u)
        return f, w

    def _conv(
        self, conv: FiberConv, f_src: Tensor, es: _EdgeSet, basis: Tensor, w: dict, step: int, k: _Constants
    ) -> Tensor:
        """:class:`~geomanip.kernels.FiberConv` (``aggr="mean"``) on the dense graph: ``[n_dst, B, O, C']``.

        Messages are computed channel-first (``[C, E, B, O]``, as the basis comes), so that the kernel is one
        product with the basis rows, the gather and average act on contiguous blocks, and the depthwise mixing
        over directions is one batched product over channels without a transpose.
        """
        _, B, O, C = f_src.shape
        E = len(es.src)
        kernel = (conv.spatial_kernel.weight @ basis.view(basis.size(0), -1)).view(C, E, B, O)
        src = f_src.permute(3, 0, 1, 2).contiguous()  # [C, n_src, B, O]
        src = src if es.identity else src.index_select(1, k.src[es.edge_type])
        if es.degree is not None:
            # Edges grouped by destination; multiplied in that shape so that the sum's backward (a broadcast)
            # reaches the product without being copied back to [C, E, B, O]. The mean's 1/degree is in the
            # channel mix.
            shape = (C, es.n_dst, es.degree, B, O)
            g = (kernel.view(shape) * src.view(shape)).sum(2)
        else:
            g = torch.matmul(k.mean[es.edge_type], (kernel * src).view(C, E, B * O))
        y = torch.bmm(g.view(C, es.n_dst * B, O), w["fiber_kernel", step, es.edge_type])  # [C, n_dst * B, O]
        y = F.linear(y.permute(1, 2, 0), w["channel_mix", step, es.edge_type], conv.linear.bias)
        return y.view(es.n_dst, B, O, -1)

    def _calibrating_conv(self, conv: FiberConv, f: dict[str, Tensor], es: _EdgeSet, basis, fiber, B: int) -> Tensor:
        """The first call of a convolution: through its own forward on the batched edge list, which calibrates."""
        f_src = f[es.src_type].flatten(0, 1)
        # Node (i, b) of the node-major layout is row i * B + b; edge (e, b) is row e * B + b of the basis.
        batch = torch.arange(B, device=f_src.device)
        src = (torch.tensor(es.src, device=f_src.device)[:, None] * B + batch).reshape(-1)
        dst = (torch.tensor(es.dst, device=f_src.device)[:, None] * B + batch).reshape(-1)
        f_dst = f[es.dst_type].flatten(0, 1)
        edge_basis = basis.permute(1, 2, 3, 0).reshape(len(es.src) * B, basis.size(3), basis.size(0))
        y = conv((f_src, f_dst), torch.stack([src, dst]), edge_basis, fiber)
        return y.view(es.n_dst, B, *y.shape[1:])

    def _actor(self, f: dict[str, Tensor], w: dict) -> Tensor:
        lay = self.layout
        node_set, start = self._actuator
        n = lay.node_counts[lay.actuator]
        fa = f[node_set][start : start + n]  # [n, B, O, C]
        B = fa.size(1)
        heads = fa.reshape(n * B, -1) @ w["heads"]
        vec, scal = heads[:, :3], heads[:, 3:] + self.head_scalar.bias
        linear = (vec * scal[:, :1])[:, : lay.linear_dims]
        per_node = torch.cat([linear, scal[:, 1:]], 1) if lay.yaw else linear
        return per_node.view(n, B, -1).transpose(0, 1).reshape(B, -1)

    def _critic(self, f: dict[str, Tensor]) -> Tensor:
        # DeepSets over invariant node read-outs.
        pooled = sum(self.critic_node(x.mean(2)).sum(0) for x in f.values())
        return self.critic_out(pooled)

    def forward(self, obs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        f, w = self._trunk(obs)
        return self._actor(f, w), self._critic(f)

    def forward_actor(self, obs: dict[str, Tensor]) -> Tensor:
        """The action mean alone, ``[B, A]`` (the critic head is not computed)."""
        f, w = self._trunk(obs)
        return self._actor(f, w)

    def forward_critic(self, obs: dict[str, Tensor]) -> Tensor:
        """The critic latent alone, ``[B, H]`` (the actor head is not computed)."""
        f, _ = self._trunk(obs)
        return self._critic(f)
