"""Observations as PyTorch Geometric graphs: one observation to a ``HeteroData``, a batch to a ``Batch``.

The environments' observations are dicts of world-frame ``[nodes, 3]`` vectors whose graph layout is the
environment's :class:`~geomanip.envs.base.GraphSpec` (``env.unwrapped.graph_spec``). :func:`to_hetero_data`
turns them into :class:`torch_geometric.data.HeteroData`, for policies and models written against PyTorch
Geometric. Layout of each node type ``t`` (its observation keys ``graph_spec.node_keys[t]``, in that order):

- ``data[t].x``: ``[nodes, k, 3]``, the type's ``k`` vectors stacked on dim 1 (``x[:, j]`` is the key
  ``node_keys[t][j]``); kept as vectors, not flattened, so that a rotation of the scene acts on the last dim;
- ``data[t].pos``: ``[nodes, 3]``, the type's position key (its first key, ``<type>_pos`` in every task);
- ``data[t][key]``: ``[nodes, 3]`` for every key, by name (for example ``data["object"].object_vel``);
- ``data[t].scalars``: ``[nodes, k]``, the type's fixed node scalars, for the types that have them
  (``graph_spec.node_scalars``: a rope link's place along the rope), in the observation's dtype.

Edges: ``data[src, rel, dst].edge_index`` ``[2, E]`` int64 for every edge type of the spec, row 0 indexing
source nodes and row 1 destination nodes (the spec's convention). A batched observation (every entry with a
leading batch dimension) gives a :class:`torch_geometric.data.Batch` of one graph per element, whose edge
indices PyTorch Geometric offsets per node type.

Values keep the observation's dtype (float32 from the environments) and device. The graph owns its tensors:
``x`` is a new stacked tensor, ``pos`` and the named keys are views of it, the edge indices are copies of the
spec's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from geomanip.envs.base import GraphSpec

if TYPE_CHECKING:
    import torch
    from torch_geometric.data import Batch, HeteroData

__all__ = ["to_hetero_data"]


def _check(obs: Mapping[str, Any], spec: GraphSpec) -> bool:
    """Validate ``obs`` against ``spec``; return whether it is batched (entries ``[B, nodes, 3]``)."""
    batched = None
    for node_type, keys in spec.node_keys.items():
        n = spec.node_counts[node_type]
        for key in keys:
            if key not in obs:
                raise KeyError(f"to_hetero_data: observation lacks {key!r} (node type {node_type!r})")
            shape = tuple(obs[key].shape)
            if len(shape) not in (2, 3) or shape[-2:] != (n, 3):
                raise ValueError(
                    f"to_hetero_data: {key!r} must have shape [{n}, 3] or [batch, {n}, 3], got {list(shape)}"
                )
            this = len(shape) == 3
            if batched is not None and this != batched:
                raise ValueError("to_hetero_data: some observation entries are batched and some are not")
            batched = this
    return bool(batched)


def _graph(values: dict[str, torch.Tensor], spec: GraphSpec, edges: dict[Any, torch.Tensor]) -> HeteroData:
    import torch
    from torch_geometric.data import HeteroData

    data = HeteroData()
    for node_type, keys in spec.node_keys.items():
        store = data[node_type]
        store.x = torch.stack([values[k] for k in keys], dim=1)
        # Views of x: the graph never aliases the caller's observation arrays.
        store.pos = store.x[:, 0]
        for j, key in enumerate(keys):
            store[key] = store.x[:, j]
        if node_type in spec.node_scalars:
            store.scalars = torch.as_tensor(spec.node_scalars[node_type], dtype=store.x.dtype, device=store.x.device)
    for edge_type, index in edges.items():
        data[edge_type].edge_index = index
    return data


def to_hetero_data(obs: Mapping[str, np.ndarray | torch.Tensor], graph_spec: GraphSpec) -> HeteroData | Batch:
    """The heterogeneous graph of an observation (``HeteroData``), or of a batch of them (``Batch``).

    Args:
        obs: an observation of an environment with ``graph_spec``: a dict of ``[nodes, 3]`` arrays, or of
            ``[batch, nodes, 3]`` arrays for a batch (as vector environments return them). NumPy arrays or
            tensors; keys outside the spec are ignored.
        graph_spec: the environment's schema, ``env.unwrapped.graph_spec``.

    Returns:
        a :class:`~torch_geometric.data.HeteroData` for one observation, a
        :class:`~torch_geometric.data.Batch` of ``batch`` of them for a batched one (layout in the module
        docstring).

    Raises:
        KeyError: if a key of the spec is missing. ValueError: if an entry's shape does not match the spec.
    """
    # PyTorch Geometric takes seconds to import: only callers of this function pay for it, not every
    # process that imports the environments (SubprocVecEnv workers, benchmarks).
    import torch
    from torch_geometric.data import Batch

    batched = _check(obs, graph_spec)
    keys = [k for ks in graph_spec.node_keys.values() for k in ks]
    values = {k: torch.as_tensor(obs[k]) for k in keys}
    device = next(iter(values.values())).device
    edges = {
        et: torch.tensor(np.asarray(ei), dtype=torch.long, device=device) for et, ei in graph_spec.edge_index.items()
    }
    if not batched:
        return _graph(values, graph_spec, edges)
    size = {len(v) for v in values.values()}
    if len(size) != 1:
        raise ValueError(f"to_hetero_data: entries have different batch sizes {sorted(size)}")
    graphs = [_graph({k: v[b] for k, v in values.items()}, graph_spec, edges) for b in range(size.pop())]
    return Batch.from_data_list(graphs)
