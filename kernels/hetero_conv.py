"""Heterogeneous wrapper: one convolution per edge type, summed per destination node type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

__all__ = ["EdgeType", "HeteroConv"]

EdgeType = tuple[str, str, str]
"""An edge type ``(source node type, relation, destination node type)``, as in PyG's ``HeteroData``."""


def _key(edge_type: EdgeType) -> str:
    return "__".join(edge_type)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, tuple):
        return tuple(x + y for x, y in zip(a, b, strict=True))
    return a + b


class HeteroConv(nn.Module):
    r"""Runs one convolution per edge type and sums their outputs at each destination node type.

    .. math::
        \mathrm{out}_t = \sum_{(s, r, t)} \mathrm{conv}_{(s, r, t)}\big(\mathrm{in}_s, \mathrm{in}_t\big)

    Each edge type has its own weights. The typed graph is described by plain mappings, the ones a PyG
    ``HeteroData`` exposes: ``edge_index_dict`` maps edge types to ``[2, E]`` indices (source rows index
    nodes of the source type, destination rows nodes of the destination type).

    Calling convention: ``node_inputs[t]`` maps argument names to the tensors of node type ``t``; each
    named argument reaches the convolution of ``(s, r, t)`` as the pair ``(value of s, value of t)``, so
    any layer that accepts bipartite pairs works (:class:`~geomanip.kernels.EGNNConv` with ``h`` and ``x``,
    :class:`~geomanip.kernels.FiberConv` with ``f``). ``edge_inputs[(s, r, t)]`` holds per-edge-type keyword
    arguments (``edge_attr``, ``spatial_basis``, ...) and ``shared`` keyword arguments go to every
    convolution (``fiber_basis``). Outputs may be tensors or tuples of tensors; tuples are summed
    elementwise. Node types that receive no edge type have no output entry.

    Residual connections belong outside: build the per-type layers without them (``residual=False`` for
    :class:`~geomanip.kernels.EGNNConv`) and add the input once to the sum.

    Args:
        convs: mapping from edge type to its convolution.
    """

    def __init__(self, convs: Mapping[EdgeType, nn.Module]) -> None:
        super().__init__()
        if not convs:
            raise ValueError("HeteroConv needs at least one edge type")
        for et in convs:
            if not (isinstance(et, tuple) and len(et) == 3 and all(isinstance(p, str) for p in et)):
                raise ValueError(f"HeteroConv: edge types must be (src, relation, dst) string triples, got {et!r}")
            if any("__" in p for p in et):
                raise ValueError(f"HeteroConv: edge type names may not contain '__', got {et!r}")
        self.edge_types: list[EdgeType] = list(convs)
        self.convs = nn.ModuleDict({_key(et): conv for et, conv in convs.items()})

    def reset_parameters(self) -> None:
        for conv in self.convs.values():
            if hasattr(conv, "reset_parameters"):
                conv.reset_parameters()

    def forward(
        self,
        node_inputs: Mapping[str, Mapping[str, Tensor]],
        edge_index_dict: Mapping[EdgeType, Tensor],
        edge_inputs: Mapping[EdgeType, Mapping[str, Any]] | None = None,
        **shared: Any,
    ) -> dict[str, Any]:
        edge_inputs = edge_inputs or {}
        unknown = set(edge_index_dict) - set(self.edge_types)
        if unknown:
            raise ValueError(
                f"HeteroConv: edge_index_dict has edge types without a convolution: {sorted(unknown)}; "
                f"known: {self.edge_types}"
            )
        out: dict[str, Any] = {}
        for et in self.edge_types:
            src, _, dst = et
            if et not in edge_index_dict:
                raise ValueError(f"HeteroConv: edge_index_dict lacks edge type {et}")
            for t in (src, dst):
                if t not in node_inputs:
                    raise ValueError(f"HeteroConv: node_inputs lacks node type {t!r} needed by edge type {et}")
            names = node_inputs[src].keys()
            if names != node_inputs[dst].keys():
                raise ValueError(
                    f"HeteroConv: node types {src!r} and {dst!r} give different arguments "
                    f"({sorted(names)} vs {sorted(node_inputs[dst].keys())})"
                )
            pairs = {name: (node_inputs[src][name], node_inputs[dst][name]) for name in names}
            result = self.convs[_key(et)](**pairs, edge_index=edge_index_dict[et], **edge_inputs.get(et, {}), **shared)
            out[dst] = _add(out[dst], result) if dst in out else result
        return out

    def extra_repr(self) -> str:
        return "edge_types=" + ", ".join(str(et) for et in self.edge_types)
