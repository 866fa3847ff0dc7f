"""EqMotion: equivariant multi-agent trajectory prediction with invariant interaction reasoning."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomanip import weights
from geomanip.kernels import EGNNConv

__all__ = ["EqMotion", "complete_edges", "radius_edges"]


def complete_edges(mask: Tensor) -> Tensor:
    """Edges ``j -> i`` between every two distinct valid agents of each sample, on flattened nodes.

    ``mask [B, N]`` (bool) -> ``edge_index [2, E]`` indexing ``B * N`` nodes (node ``b * N + i``).
    """
    return _flat_edges(_valid_pairs(mask))


def radius_edges(positions: Tensor, mask: Tensor, radius: float) -> Tensor:
    """Edges ``j -> i`` between distinct valid agents of a sample at most ``radius`` apart.

    ``positions [B, N, D]`` (e.g. the last observed frame), ``mask [B, N]`` -> ``edge_index [2, E]`` on
    ``B * N`` flattened nodes, like :func:`complete_edges`. Distances are invariant, so the graph is too.
    """
    return _flat_edges(_valid_pairs(mask) & (torch.cdist(positions, positions) <= radius))


def _valid_pairs(mask: Tensor) -> Tensor:
    """``[B, N, N]``: ``True`` where agents ``i`` and ``j`` of a sample are both valid and distinct."""
    N = mask.shape[1]
    return mask[:, :, None] & mask[:, None, :] & ~torch.eye(N, dtype=torch.bool, device=mask.device)


def _flat_edges(valid: Tensor) -> Tensor:
    """``valid [B, N, N]`` (``valid[b, i, j]``: j sends to i) -> ``edge_index [2, E]`` on flattened nodes."""
    N = valid.shape[1]
    b, i, j = valid.nonzero(as_tuple=True)
    return torch.stack([b * N + j, b * N + i])


class EqMotion(nn.Module):
    r"""EqMotion (Xu et al., CVPR 2023), rebuilt on the shared kernels with sparse edges.

    For past positions ``x [B, N, T_p, D]`` (any D; 2 for pedestrians, 3 for particles):

    1. Centre on the mean ``c`` over valid agents and frames; velocities are frame differences.
    2. Equivariant features: ``C`` vector channels per agent from bias-free linear maps over time,
       ``X = W_x (x - c)`` and ``V = W_v v``; invariant features ``h`` from ``log(1 + |X_c|)``,
       ``log(1 + |V_c|)`` and the cosine of ``X_c, V_c`` (and optional node features). The logarithms keep
       the input of the invariant MLPs bounded in scale when a scene is wider than any seen in training.
    3. Invariant interaction reasoning, once: soft edge categories
       ``softmax(MLP[h_i, h_j, |X_i,c - X_j,c|])`` over ``edge_types`` types.
    4. ``layers`` times: an :class:`~geomanip.kernels.EGNNConv` with C channels and the categories as edge
       attributes (per-channel coordinate messages, gated), then ``LayerNorm(h)``; a velocity term
       ``X += tanh(phi_v(h)) V``; inner-agent attention ``X_c += tanh(phi_a(h))_c (X_c - mean_c X)``; the
       equivariant non-linearity (channel mixes ``q, k``; where ``<q, k> < 0`` the part of ``q`` along ``k``
       is removed) as a residual.
    5. Output: a bias-free linear map from C channels to ``modes x future_frames`` displacements, added to
       each agent's last observed position.

    Why the norm and the ``tanh``: the per-layer updates multiply ``X`` by gates computed from ``h``; left
    unbounded, a crowd denser or wider than the training scenes (ETH/UCY's univ) compounded them over the
    layers into predictions thousands of metres off. Anchoring at the last observed position (rather than
    the group centre) makes "stand still" the zero output, so the network learns corrections to it.

    Every step is E(D)-equivariant (rotations, reflections, translations) and permutation-equivariant over
    agents. Edges join all valid agents of a sample (``mask``); pass ``edge_index`` to use another graph.

    Args:
        past_frames, future_frames: lengths T_p and T_f.
        hidden_channels: invariant feature size.
        vector_channels: C.
        num_layers: message-passing layers.
        edge_types: interaction categories (2 for particles, 4 for pedestrians in the paper).
        modes: K predictions per agent (best-of-K training and metrics when K > 1).
        node_feature_dim: size of optional invariant per-agent features.

    Shapes:
        - past: ``[B, N, T_p, D]``; mask: ``[B, N]`` bool (default all valid); node_features: ``[B, N, F]``
        - output: ``[B, N, K, T_f, D]``
    """

    def __init__(
        self,
        past_frames: int = 10,
        future_frames: int = 20,
        hidden_channels: int = 64,
        vector_channels: int = 64,
        num_layers: int = 4,
        edge_types: int = 2,
        modes: int = 1,
        node_feature_dim: int = 0,
    ) -> None:
        super().__init__()
        if past_frames < 2:
            raise ValueError(f"EqMotion needs at least 2 past frames (velocities), got {past_frames}")
        self.past_frames, self.future_frames = past_frames, future_frames
        self.modes, self.edge_types, self.node_feature_dim = modes, edge_types, node_feature_dim
        H, C = hidden_channels, vector_channels
        self.pos_in = nn.Linear(past_frames, C, bias=False)
        self.vel_in = nn.Linear(past_frames - 1, C, bias=False)
        self.node_in = nn.Sequential(nn.Linear(3 * C + node_feature_dim, H), nn.SiLU(), nn.Linear(H, H))
        self.edge_category = nn.Sequential(nn.Linear(2 * H + C, H), nn.SiLU(), nn.Linear(H, edge_types))
        self.convs = nn.ModuleList(
            [
                EGNNConv(H, H, vector_channels=C, edge_dim=edge_types, attention="gate", tanh=True)
                for _ in range(num_layers)
            ]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(H) for _ in range(num_layers)])
        self.vel_gate = nn.ModuleList([nn.Linear(H, C) for _ in range(num_layers)])
        self.inner_gate = nn.ModuleList([nn.Linear(H, C) for _ in range(num_layers)])
        self.q_mix = nn.ModuleList([nn.Linear(C, C, bias=False) for _ in range(num_layers)])
        self.k_mix = nn.ModuleList([nn.Linear(C, C, bias=False) for _ in range(num_layers)])
        self.out = nn.Linear(C, modes * future_frames, bias=False)

    @classmethod
    def pretrained(cls, data: str = "charged") -> EqMotion:
        """The network shipped with the package for ``data`` (``"charged"``), in eval mode on the CPU.

        Its card (``geomanip.weights.card("eqmotion-charged")``) gives the training command, the data and
        the test metrics; ``geomanip.weights.available()`` lists what ships.
        """
        checkpoint = weights.load(f"eqmotion-{data}")
        model = cls(**checkpoint["kwargs"])
        model.load_state_dict(checkpoint["model"])
        return model.eval()

    @staticmethod
    def _mix(layer: nn.Linear, X: Tensor) -> Tensor:
        """Apply a linear map over the channel axis of ``X [M, C, D]``."""
        return layer(X.transpose(1, 2)).transpose(1, 2)

    def forward(
        self,
        past: Tensor,
        mask: Tensor | None = None,
        node_features: Tensor | None = None,
        edge_index: Tensor | None = None,
    ) -> Tensor:
        if past.dim() != 4 or past.size(2) != self.past_frames:
            raise ValueError(f"EqMotion: past must have shape [B, N, {self.past_frames}, D], got {list(past.shape)}")
        B, N, T, D = past.shape
        if mask is None:
            mask = torch.ones(B, N, dtype=torch.bool, device=past.device)
        elif mask.shape != (B, N):
            raise ValueError(f"EqMotion: mask must have shape [B={B}, N={N}], got {list(mask.shape)}")
        if self.node_feature_dim and (node_features is None or node_features.shape != (B, N, self.node_feature_dim)):
            raise ValueError(f"EqMotion: node_features must have shape [B, N, {self.node_feature_dim}]")
        if not torch.isfinite(past).all():
            raise ValueError("EqMotion: past contains NaN or inf")

        w = mask.to(past.dtype)[:, :, None, None]
        centre = (past * w).sum((1, 2), keepdim=True) / (w.sum((1, 2), keepdim=True) * T).clamp(min=1)
        x = (past - centre) * w
        v = (past[:, :, 1:] - past[:, :, :-1]) * w
        X = self.pos_in(x.transpose(2, 3)).transpose(2, 3).reshape(B * N, -1, D)  # [M, C, D]
        V = self.vel_in(v.transpose(2, 3)).transpose(2, 3).reshape(B * N, -1, D)
        x_norm, v_norm = X.norm(dim=-1), V.norm(dim=-1)
        inv = [torch.log1p(x_norm), torch.log1p(v_norm), (X * V).sum(-1) / (x_norm * v_norm + 1e-6)]
        if self.node_feature_dim:
            inv.append(node_features.reshape(B * N, -1))
        h = self.node_in(torch.cat(inv, -1))

        if edge_index is None:
            edge_index = complete_edges(mask)
        src, dst = edge_index
        dist = (X.index_select(0, dst) - X.index_select(0, src)).norm(dim=-1)  # [E, C]
        logits = self.edge_category(torch.cat([h.index_select(0, dst), h.index_select(0, src), dist], -1))
        categories = F.softmax(logits, -1)

        for conv, norm, vel_gate, inner_gate, q_mix, k_mix in zip(
            self.convs, self.norms, self.vel_gate, self.inner_gate, self.q_mix, self.k_mix, strict=True
        ):
            h, X = conv(h, X, edge_index, categories)
            h = norm(h)
            X = X + torch.tanh(vel_gate(h)).unsqueeze(-1) * V
            X = X + torch.tanh(inner_gate(h)).unsqueeze(-1) * (X - X.mean(1, keepdim=True))
            q, k = self._mix(q_mix, X), self._mix(k_mix, X)
            dot = (q * k).sum(-1, keepdim=True)
            k2 = (k * k).sum(-1, keepdim=True).clamp(min=1e-6)
            X = X + torch.where(dot < 0, q - dot / k2 * k, q)

        pred = self._mix(self.out, X)  # [M, K * T_f, D]
        return pred.reshape(B, N, self.modes, self.future_frames, D) + past[:, :, None, -1:]
