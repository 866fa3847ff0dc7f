import pytest
import torch
from torch_geometric.data import HeteroData

from geomanip.kernels import (
    EGNNConv,
    FiberConv,
    HeteroConv,
    PolynomialBasis,
    fibonacci_sphere,
    lift_vectors,
    orientation_invariants,
    spatial_invariants,
)
from tests.geometry import assert_close, permute_graph, random_orthogonal

F_, H_ = 5, 8
COUNTS = {"object": 9, "gripper": 3}
EDGE_TYPES = [("object", "internal", "object"), ("object", "task", "gripper"), ("gripper", "agent", "gripper")]


def _edges():
    out = {}
    for s, r, d in EDGE_TYPES:
        out[(s, r, d)] = torch.stack([torch.randint(0, COUNTS[s], (15,)), torch.randint(0, COUNTS[d], (15,))])
    return out


def _egnn_hetero():
    return HeteroConv({et: EGNNConv(F_, H_, vector_channels=2, residual=False) for et in EDGE_TYPES}).double()


def _nodes():
    return {
        t: {"h": torch.randn(n, F_, dtype=torch.float64), "x": torch.randn(n, 2, 3, dtype=torch.float64)}
        for t, n in COUNTS.items()
    }


def test_sums_one_convolution_per_edge_type():
    conv, nodes, edges = _egnn_hetero(), _nodes(), _edges()
    out = conv(nodes, edges)
    assert set(out) == {"object", "gripper"}
    expected = {}
    for (s, r, d), ei in edges.items():
        layer = conv.convs[f"{s}__{r}__{d}"]
        h, x = layer((nodes[s]["h"], nodes[d]["h"]), (nodes[s]["x"], nodes[d]["x"]), ei)
        expected[d] = (h, x) if d not in expected else (expected[d][0] + h, expected[d][1] + x)
    for t in out:
        assert_close(out[t][0], expected[t][0])
        assert_close(out[t][1], expected[t][1])


def test_edge_types_have_their_own_weights():
    conv = _egnn_hetero()
    w = [conv.convs[f"{s}__{r}__{d}"].edge_lin1.weight for s, r, d in EDGE_TYPES]
    assert w[0].data_ptr() != w[1].data_ptr() and not torch.equal(w[0], w[1])


def test_egnn_hetero_is_equivariant_and_permutation_equivariant_per_type():
    conv, nodes, edges = _egnn_hetero(), _nodes(), _edges()
    Q = random_orthogonal(3, reflect=True)
    out1 = conv(nodes, edges)
    rotated = {t: {"h": v["h"], "x": v["x"] @ Q.T + 1.5} for t, v in nodes.items()}
    out2 = conv(rotated, edges)
    for t in out1:
        assert_close(out2[t][0], out1[t][0])
        assert_close(out2[t][1], out1[t][1] @ Q.T)  # displacements: rotate, do not translate
    perm = {t: torch.randperm(n) for t, n in COUNTS.items()}
    permuted_nodes = {t: {k: v[perm[t]] for k, v in nodes[t].items()} for t in nodes}
    permuted_edges = {}
    for (s, r, d), ei in edges.items():
        src = permute_graph(perm[s], ei[:1].expand(2, -1))[0]
        dst = permute_graph(perm[d], ei[1:].expand(2, -1))[0]
        permuted_edges[(s, r, d)] = torch.stack([src, dst])
    out3 = conv(permuted_nodes, permuted_edges)
    for t in out1:
        assert_close(out3[t][0], out1[t][0][perm[t]])


def test_fiber_hetero_with_per_type_bases_and_pyg_heterodata():
    grid = fibonacci_sphere(8, dtype=torch.float64)
    data = HeteroData()
    for t, n in COUNTS.items():
        data[t].pos = torch.randn(n, 3, dtype=torch.float64)
        data[t].vec = torch.randn(n, 4, 3, dtype=torch.float64)
    for et, ei in _edges().items():
        data[et].edge_index = ei
    spatial, fiber = PolynomialBasis(2, 6).double(), PolynomialBasis(1, 6).double()
    conv = HeteroConv({et: FiberConv(4, 4, 6) for et in EDGE_TYPES}).double()

    def run(pos, vec, grid):
        bases = {
            (s, r, d): {"spatial_basis": spatial(spatial_invariants(pos[s], pos[d], ei, grid))}
            for (s, r, d), ei in data.edge_index_dict.items()
        }
        nodes = {t: {"f": lift_vectors(vec[t], grid)} for t in COUNTS}
        return conv(nodes, data.edge_index_dict, bases, fiber_basis=fiber(orientation_invariants(grid)))

    out1 = run(data.pos_dict, data.vec_dict, grid)
    Q = random_orthogonal(3)
    out2 = run(
        {t: p @ Q.T - 2.0 for t, p in data.pos_dict.items()}, {t: v @ Q.T for t, v in data.vec_dict.items()}, grid @ Q.T
    )
    assert out1["object"].shape == (9, 8, 4) and out1["gripper"].shape == (3, 8, 4)
    for t in out1:
        assert_close(out2[t], out1[t])


def test_errors_name_the_problem():
    conv, nodes, edges = _egnn_hetero(), _nodes(), _edges()
    with pytest.raises(ValueError, match="lacks edge type"):
        conv(nodes, {k: v for k, v in edges.items() if k[1] != "agent"})
    with pytest.raises(ValueError, match="without a convolution"):
        conv(nodes, {**edges, ("gripper", "new", "object"): edges[EDGE_TYPES[0]]})
    with pytest.raises(ValueError, match="lacks node type 'gripper'"):
        conv({"object": nodes["object"]}, edges)
    with pytest.raises(ValueError, match="string triples"):
        HeteroConv({("a", "b"): EGNNConv(2, 2)})
    with pytest.raises(ValueError, match="at least one"):
        HeteroConv({})
