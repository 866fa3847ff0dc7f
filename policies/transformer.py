"""Transformer baseline: a token per node (its raw world-frame vectors and its type), no geometry built in."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geomanip.policies.graph_obs import GraphLayout, node_scalar_tensors

__all__ = ["TransformerNetwork"]


class TransformerNetwork(nn.Module):
    """Node tokens -> ``layers`` Transformer encoder layers (``heads`` heads, width ``hidden``).

    Each token is a linear embedding of the node's concatenated observation vectors (positions included,
    as the raw world frame) plus a learned type embedding and, where the layout has them, a linear map of the
    node's fixed scalars (``layout.node_scalars``: a rope link's place along the rope). Actuator tokens are
    decoded to their action components; the critic latent is the mean of all tokens. Not equivariant (the
    baseline's point).

    Shapes: ``forward(obs)`` with ``obs[key] [B, n, 3]`` -> ``(action mean [B, A], critic latent [B, H])``;
    :meth:`forward_actor` and :meth:`forward_critic` compute one head each.
    """

    def __init__(self, layout: GraphLayout, hidden: int = 16, layers: int = 2, heads: int = 2) -> None:
        super().__init__()
        self.layout, self.hidden = layout, hidden
        self.embed = nn.ModuleDict({t: nn.Linear(3 * len(k), hidden) for t, k in layout.node_keys.items()})
        self.type_embedding = nn.ParameterDict({t: nn.Parameter(torch.randn(hidden) * 0.1) for t in layout.node_keys})
        scalars = node_scalar_tensors(layout)
        self.scalar_embed = nn.ModuleDict({t: nn.Linear(v.shape[1], hidden, bias=False) for t, v in scalars.items()})
        for t, v in scalars.items():
            self.register_buffer(f"scalars_{t}", v, persistent=False)
        layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.actor = nn.Linear(hidden, layout.linear_dims + int(layout.yaw))
        self.critic = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU())

    def _type_bias(self, node_type: str) -> Tensor:
        """The type embedding ``[C]``, plus the node scalars' embedding ``[n, C]`` where the type has them."""
        bias = self.type_embedding[node_type]
        if node_type in self.scalar_embed:
            bias = bias + self.scalar_embed[node_type](getattr(self, f"scalars_{node_type}"))
        return bias

    def _encode(self, obs: dict[str, Tensor]) -> Tensor:
        tokens = [
            self.embed[t](torch.cat([obs[k] for k in keys], -1)) + self._type_bias(t)
            for t, keys in self.layout.node_keys.items()
        ]
        return self.encoder(torch.cat(tokens, 1))

    def _actor(self, h: Tensor) -> Tensor:
        lay = self.layout
        order = list(lay.node_keys)
        start = sum(lay.node_counts[t] for t in order[: order.index(lay.actuator)])
        return self.actor(h[:, start : start + lay.node_counts[lay.actuator]]).flatten(1)

    def forward(self, obs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        h = self._encode(obs)
        return self._actor(h), self.critic(h.mean(1))

    def forward_actor(self, obs: dict[str, Tensor]) -> Tensor:
        """The action mean alone, ``[B, A]``."""
        return self._actor(self._encode(obs))

    def forward_critic(self, obs: dict[str, Tensor]) -> Tensor:
        """The critic latent alone, ``[B, H]``."""
        return self.critic(self._encode(obs).mean(1))
