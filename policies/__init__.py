"""Graph policies for the manipulation benchmark, trained with Stable-Baselines3 PPO.

- ``hepi``: :class:`~geomanip.policies.hepi.HEPiNetwork`, heterogeneous equivariant convolutions on position-orientation
  space with per-edge-type weights and a two-step message schedule.
- ``empn``: the same backbone on the homogeneous graph with shared weights.
- ``transformer``: a Transformer over node tokens.
- ``mlp``: SB3's ``MultiInputPolicy`` on the flattened observation.

:func:`make_policy` returns the SB3 policy class and its ``policy_kwargs`` for an environment. The networks
are built from the shared layers of ``kernels``.
"""

from __future__ import annotations

from typing import Any

from geomanip.policies.graph_obs import GraphLayout
from geomanip.policies.hepi import HEPiNetwork
from geomanip.policies.sb3 import NETWORKS, GraphActorCriticPolicy
from geomanip.policies.transformer import TransformerNetwork

POLICIES = ("hepi", "empn", "transformer", "mlp")


def make_policy(name: str, env, **network_kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """``(policy, policy_kwargs)`` for ``stable_baselines3.PPO(policy, env, policy_kwargs=...)``."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; available: {', '.join(POLICIES)}")
    if name == "mlp":
        return "MultiInputPolicy", {"net_arch": dict(pi=[256, 256], vf=[256, 256]), **network_kwargs}
    layout = GraphLayout.from_env(env)
    return GraphActorCriticPolicy, {"network": name, "layout": layout, "network_kwargs": network_kwargs}


__all__ = [
    "POLICIES",
    "GraphActorCriticPolicy",
    "GraphLayout",
    "HEPiNetwork",
    "NETWORKS",
    "TransformerNetwork",
    "make_policy",
]
