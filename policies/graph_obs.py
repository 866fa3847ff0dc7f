"""How a policy reads an environment's graph observation: node types, their vectors, typed edges, actions.

:class:`GraphLayout` is built once from an environment (``GraphLayout.from_env(env)``) and travels to the
policy as plain data in ``policy_kwargs``, so saved models reload without the environment object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["GraphLayout", "batch_edges", "node_scalar_tensors", "node_vectors"]


@dataclass(frozen=True)
class GraphLayout:
    """The observation's graph and the action's layout.

    Attributes:
        node_counts: nodes per type, e.g. ``{"object": 16, "gripper": 1}``.
        node_keys: observation keys of each type's ``[n, 3]`` vectors; ``<type>_pos`` holds positions.
        edges: ``(src, relation, dst) -> [2, E]`` index lists (row 0 source, row 1 destination).
        actuator: the node type that acts (``"gripper"``).
        linear_dims: per actuator node, how many linear-velocity components the action has (2 or 3).
        yaw: whether each actuator node also has a yaw-rate action component (last, per node).
        node_scalars: the fixed invariant per-node features of the types that have them, ``type -> n rows of
            k values`` (:attr:`~geomanip.envs.base.GraphSpec.node_scalars`: a rope link's place along the rope);
            ``None`` for none (and in layouts saved before they existed).
    """

    node_counts: dict[str, int]
    node_keys: dict[str, tuple[str, ...]]
    edges: dict[tuple[str, str, str], tuple[tuple[int, ...], tuple[int, ...]]]
    actuator: str = "gripper"
    linear_dims: int = 3
    yaw: bool = False
    node_scalars: dict[str, tuple[tuple[float, ...], ...]] | None = None

    @classmethod
    def from_env(cls, env) -> GraphLayout:
        """The layout of a graph environment (``env.unwrapped.graph_spec`` and its action space)."""
        u = env.unwrapped
        spec = u.graph_spec
        actuators = spec.node_counts["gripper"]
        per_node = int(np.prod(u.action_space.shape)) // actuators
        yaw = bool(getattr(u, "has_yaw", False))
        edges = {et: (tuple(int(i) for i in ei[0]), tuple(int(i) for i in ei[1])) for et, ei in spec.edge_index.items()}
        scalars = {t: tuple(map(tuple, np.asarray(v, dtype=float).tolist())) for t, v in spec.node_scalars.items()}
        return cls(
            dict(spec.node_counts),
            {t: tuple(k) for t, k in spec.node_keys.items()},
            edges,
            "gripper",
            per_node - int(yaw),
            yaw,
            scalars or None,
        )

    @property
    def action_dim(self) -> int:
        return self.node_counts[self.actuator] * (self.linear_dims + int(self.yaw))

    def vector_features(self, node_type: str) -> tuple[str, ...]:
        """Translation-invariant vector inputs of a type: every key but the position, targets as offsets."""
        return tuple(k for k in self.node_keys[node_type] if k != f"{node_type}_pos")


def node_scalar_tensors(layout: GraphLayout, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """The layout's node scalars as ``[n, k]`` tensors of ``dtype`` (default: the default dtype, as new parameters
    are), empty if it has none."""
    dtype = dtype or torch.get_default_dtype()
    return {t: torch.tensor(rows, dtype=dtype) for t, rows in (layout.node_scalars or {}).items()}


def node_vectors(obs: dict[str, Tensor], layout: GraphLayout, node_type: str) -> tuple[Tensor, Tensor]:
    """Positions ``[B * n, 3]`` and invariant-to-translation vectors ``[B * n, V, 3]`` of one node type.

    A ``*_target`` key enters as ``target - position``; velocities enter as they are.
    """
    pos = obs[f"{node_type}_pos"]
    vecs = []
    for key in layout.vector_features(node_type):
        v = obs[key]
        vecs.append(v - pos if key.endswith("_target") else v)
    B, n = pos.shape[:2]
    return pos.reshape(B * n, 3), torch.stack(vecs, 2).reshape(B * n, len(vecs), 3)


def batch_edges(
    index: tuple[tuple[int, ...], tuple[int, ...]], n_src: int, n_dst: int, batch: int, device: torch.device
) -> Tensor:
    """An edge list repeated for ``batch`` graphs stacked node-wise: ``[2, batch * E]``."""
    ei = torch.tensor(index, dtype=torch.long, device=device)
    offsets = torch.arange(batch, device=device).repeat_interleave(ei.shape[1])
    ei = ei.repeat(1, batch)
    return torch.stack([ei[0] + offsets * n_src, ei[1] + offsets * n_dst])
