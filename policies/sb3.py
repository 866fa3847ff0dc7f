"""Stable-Baselines3 integration: an ``ActorCriticPolicy`` whose actor and critic are graph networks.

Uses SB3's extension points only: a features extractor that hands the observation dict through, a custom
``mlp_extractor`` (the graph network, returning the action mean and a critic latent), and an identity action
head so that the network's mean is the Gaussian's mean unchanged (a linear head would mix the components of
equivariant vectors). The standard deviation is SB3's learned, state-independent one (initial 1.0).
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from geomanip.policies.graph_obs import GraphLayout, node_scalar_tensors
from geomanip.policies.hepi import HEPiNetwork
from geomanip.policies.transformer import TransformerNetwork

__all__ = ["CRITICS", "Critic", "DeepSetsCritic", "GraphActorCriticPolicy", "GraphObservation", "NETWORKS"]

NETWORKS = {
    "hepi": lambda layout, **kw: HEPiNetwork(layout, heterogeneous=True, **kw),
    "empn": lambda layout, **kw: HEPiNetwork(layout, heterogeneous=False, **kw),
    "transformer": TransformerNetwork,
}

Critic = Literal["same", "deepsets", "shared"]
CRITICS = ("same", "deepsets", "shared")


class GraphObservation(BaseFeaturesExtractor):
    """Passes the observation dict through unchanged (the graph network reads it)."""

    def __init__(self, observation_space: gym.spaces.Dict) -> None:
        super().__init__(observation_space, features_dim=1)

    def forward(self, observations: dict[str, Tensor]) -> dict[str, Tensor]:  # type: ignore[override]
        return observations


class DeepSetsCritic(nn.Module):
    """A value latent from all nodes: a per-type MLP on each node, a mean per type, an MLP on the means.

    Not equivariant, like the original HEPi's critic: the value only weighs the actor's samples, so it need not
    share the actor's symmetry, and a network this size costs a small fraction of an equivariant one. Each node
    enters with its position relative to the actuators' centroid and its translation-invariant vectors (targets
    as offsets from the node, as the actor sees them), so the critic sees where things are with respect to the
    gripper, not where the scene happens to lie. Means rather than sums keep the pooled scale independent of
    the task's node counts (17 to 160 nodes across the benchmark); one mean per node type keeps a single
    gripper's features from being averaged away among its object's many nodes. Node types with fixed scalars
    (``layout.node_scalars``: a rope link's place along the rope) also enter with those.

    Shapes: ``forward_critic(obs)`` with ``obs[key] [B, n, 3]`` -> ``[B, hidden]``.
    """

    def __init__(self, layout: GraphLayout, hidden: int = 64) -> None:
        super().__init__()
        self.layout, self.hidden = layout, hidden
        types = list(layout.node_counts)
        scalars = node_scalar_tensors(layout)
        for t, v in scalars.items():
            self.register_buffer(f"scalars_{t}", v, persistent=False)
        width = {t: 3 * (1 + len(layout.vector_features(t))) for t in types}
        width.update({t: width[t] + v.shape[1] for t, v in scalars.items()})
        self.node = nn.ModuleDict(
            {
                t: nn.Sequential(
                    nn.Linear(width[t], hidden),
                    nn.SiLU(),
                    nn.Linear(hidden, hidden),
                    nn.SiLU(),
                )
                for t in types
            }
        )
        self.out = nn.Sequential(
            nn.Linear(len(types) * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )

    def forward_critic(self, obs: dict[str, Tensor]) -> Tensor:
        lay = self.layout
        centre = obs[f"{lay.actuator}_pos"].mean(1, keepdim=True)
        pooled = []
        for t in lay.node_counts:
            pos = obs[f"{t}_pos"]
            vectors = [obs[k] - pos if k.endswith("_target") else obs[k] for k in lay.vector_features(t)]
            if t in (lay.node_scalars or {}):
                vectors.append(getattr(self, f"scalars_{t}").expand(pos.shape[0], -1, -1))
            pooled.append(self.node[t](torch.cat([pos - centre, *vectors], -1)).mean(1))
        return self.out(torch.cat(pooled, -1))

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        return self.forward_critic(obs)


class _Extractor(nn.Module):
    """Actor mean and critic latent: from one shared network, or from the actor network and a critic network.

    ``forward_actor`` and ``forward_critic`` compute one head each (SB3 calls them for ``predict`` and for
    the values at the end of a rollout); ``forward`` (rollouts and updates) computes both.
    """

    def __init__(self, network: nn.Module, action_dim: int, critic: nn.Module | None = None) -> None:
        super().__init__()
        self.network = network
        self.critic = critic
        self.latent_dim_pi = action_dim
        self.latent_dim_vf = (network if critic is None else critic).hidden

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        if self.critic is None:
            return self.network(features)
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: dict[str, Tensor]) -> Tensor:
        return self.network.forward_actor(features)

    def forward_critic(self, features: dict[str, Tensor]) -> Tensor:
        return (self.network if self.critic is None else self.critic).forward_critic(features)


class GraphActorCriticPolicy(ActorCriticPolicy):
    """PPO/A2C policy over graph observations.

    Args (through ``policy_kwargs``):
        network: ``"hepi"``, ``"empn"`` or ``"transformer"``.
        layout: the environment's :class:`~geomanip.policies.graph_obs.GraphLayout` (``GraphLayout.from_env(env)``).
        network_kwargs: keyword arguments of the network (``hidden``, ``layers``, ...).
        critic: where the value comes from.

            - ``"same"`` (default): a second network of the actor's architecture, as in SB3's default MLP
              policy; each network computes its own head only. HEPi learned faster per environment step with
              it than with either alternative on ``RigidSliding-v0`` (BENCHMARKS.md).
            - ``"deepsets"``: a :class:`DeepSetsCritic` (``critic_kwargs``: ``hidden``), a small fraction of an
              equivariant network's cost, so a run takes markedly less time per step.
            - ``"shared"``: one network with both heads (the cheapest; the value loss then shares the trunk's
              gradients with the policy loss).
        critic_kwargs: keyword arguments of the DeepSets critic.
        shared_critic: the option's former spelling (``True``: ``"shared"``, ``False``: ``"same"``), read from
            checkpoints saved before ``critic`` existed.
        Other keyword arguments go to SB3's ``ActorCriticPolicy``. Adam runs fused unless ``optimizer_kwargs``
        chooses an implementation (``fused`` or ``foreach``): a graph network has many small parameter
        tensors, and Adam's default on the CPU updates them one at a time, several operations each.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        lr_schedule,
        network: str = "hepi",
        layout: GraphLayout | None = None,
        network_kwargs: dict[str, Any] | None = None,
        critic: Critic | None = None,
        critic_kwargs: dict[str, Any] | None = None,
        shared_critic: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if network not in NETWORKS:
            raise ValueError(f"unknown graph network {network!r}; available: {', '.join(NETWORKS)}")
        if layout is None:
            raise ValueError("GraphActorCriticPolicy needs policy_kwargs['layout'] (GraphLayout.from_env(env))")
        if layout.action_dim != action_space.shape[0]:
            raise ValueError(f"layout gives {layout.action_dim} action components, the space has {action_space.shape}")
        if shared_critic is not None:
            former = "shared" if shared_critic else "same"
            if critic is not None and critic != former:
                raise ValueError(f"critic={critic!r} contradicts shared_critic={shared_critic}; pass critic only")
            critic = former
        critic = "same" if critic is None else critic
        if critic not in CRITICS:
            raise ValueError(f"unknown critic {critic!r}; available: {', '.join(CRITICS)}")
        if critic_kwargs and critic != "deepsets":
            raise ValueError(f"critic_kwargs apply to the DeepSets critic only, not critic={critic!r}")
        self.network_name, self.layout, self.network_kwargs = network, layout, dict(network_kwargs or {})
        self.critic, self.critic_kwargs = critic, dict(critic_kwargs or {})
        kwargs.setdefault("features_extractor_class", GraphObservation)
        kwargs.setdefault("ortho_init", False)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        build = NETWORKS[self.network_name]
        network = build(self.layout, **self.network_kwargs)
        if self.critic == "deepsets":
            critic = DeepSetsCritic(self.layout, **self.critic_kwargs)
        else:
            critic = None if self.critic == "shared" else build(self.layout, **self.network_kwargs)
        self.mlp_extractor = _Extractor(network, self.layout.action_dim, critic)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()
        # The optimizer was built over the replaced head's parameters too; rebuild it over the current ones.
        options = dict(self.optimizer_kwargs)
        if self.optimizer_class in (torch.optim.Adam, torch.optim.AdamW) and not {"fused", "foreach"} & set(options):
            options["fused"] = True
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **options)
        # Networks that cache tensors derived from their parameters for gradient-free calls: a fused step writes
        # the parameters without bumping the version counters those caches check, so tell them after each step.
        cached = [m for m in self.modules() if m is not self and hasattr(m, "clear_cache")]
        if cached:
            self.optimizer.register_step_post_hook(lambda *_: [m.clear_cache() for m in cached])

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            network=self.network_name,
            layout=self.layout,
            network_kwargs=self.network_kwargs,
            critic=self.critic,
            critic_kwargs=self.critic_kwargs,
        )
        return data
