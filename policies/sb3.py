"""Stable-Baselines3 integration: an ``ActorCriticPolicy`` whose actor and critic are graph networks.

Uses SB3's extension points only: a features extractor that hands the observation dict through, a custom
``mlp_extractor`` (the graph network, returning the action mean and a critic latent), and an identity action
head so that the network's mean is the Gaussian's mean unchanged (a linear head would mix the components of
equivariant vectors). The standard deviation is SB3's learned, state-independent one (initial 1.0).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from geomanip.policies.graph_obs import GraphLayout
from geomanip.policies.hepi import HEPiNetwork
from geomanip.policies.transformer import TransformerNetwork

__all__ = ["GraphActorCriticPolicy", "GraphObservation", "NETWORKS"]

NETWORKS = {
    "hepi": lambda layout, **kw: HEPiNetwork(layout, heterogeneous=True, **kw),
    "empn": lambda layout, **kw: HEPiNetwork(layout, heterogeneous=False, **kw),
    "transformer": TransformerNetwork,
}


class GraphObservation(BaseFeaturesExtractor):
    """Passes the observation dict through unchanged (the graph network reads it)."""

    def __init__(self, observation_space: gym.spaces.Dict) -> None:
        super().__init__(observation_space, features_dim=1)

    def forward(self, observations: dict[str, Tensor]) -> dict[str, Tensor]:  # type: ignore[override]
        return observations


class _Extractor(nn.Module):
    """Actor mean and critic latent, from one shared network or from two of the same architecture."""

    def __init__(self, network: nn.Module, action_dim: int, critic: nn.Module | None = None) -> None:
        super().__init__()
        self.network = network
        self.critic = critic
        self.latent_dim_pi = action_dim
        self.latent_dim_vf = network.hidden

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        if self.critic is None:
            return self.network(features)
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: dict[str, Tensor]) -> Tensor:
        return self.network(features)[0]

    def forward_critic(self, features: dict[str, Tensor]) -> Tensor:
        return (self.network if self.critic is None else self.critic)(features)[1]


class GraphActorCriticPolicy(ActorCriticPolicy):
    """PPO/A2C policy over graph observations.

    Args (through ``policy_kwargs``):
        network: ``"hepi"``, ``"empn"`` or ``"transformer"``.
        layout: the environment's :class:`~geomanip.policies.graph_obs.GraphLayout` (``GraphLayout.from_env(env)``).
        network_kwargs: keyword arguments of the network (``hidden``, ``layers``, ...).
        shared_critic: actor and critic share one network (half the compute); by default the critic is a
            second network of the same architecture, as in SB3's default MLP policy: with one shared trunk the
            value loss dominated its gradients and PPO did not learn on insertion (measured, BENCHMARKS.md).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        lr_schedule,
        network: str = "hepi",
        layout: GraphLayout | None = None,
        network_kwargs: dict[str, Any] | None = None,
        shared_critic: bool = False,
        **kwargs: Any,
    ) -> None:
        if network not in NETWORKS:
            raise ValueError(f"unknown graph network {network!r}; available: {', '.join(NETWORKS)}")
        if layout is None:
            raise ValueError("GraphActorCriticPolicy needs policy_kwargs['layout'] (GraphLayout.from_env(env))")
        if layout.action_dim != action_space.shape[0]:
            raise ValueError(f"layout gives {layout.action_dim} action components, the space has {action_space.shape}")
        self.network_name, self.layout, self.network_kwargs = network, layout, dict(network_kwargs or {})
        self.shared_critic = shared_critic
        kwargs.setdefault("features_extractor_class", GraphObservation)
        kwargs.setdefault("ortho_init", False)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        build = NETWORKS[self.network_name]
        network = build(self.layout, **self.network_kwargs)
        critic = None if self.shared_critic else build(self.layout, **self.network_kwargs)
        self.mlp_extractor = _Extractor(network, self.layout.action_dim, critic)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()
        # The optimizer was built over the replaced head's parameters too; rebuild it over the current ones.
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            network=self.network_name,
            layout=self.layout,
            network_kwargs=self.network_kwargs,
            shared_critic=self.shared_critic,
        )
        return data
