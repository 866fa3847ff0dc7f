import pytest
import torch

from geomanip.kernels import EGNNConv
from geomanip.kernels.reference import EGNNReference
from tests.geometry import assert_close, permute_graph, random_orthogonal


def _graph(n=12, e=50, f=8, c=3, d=3, edge_dim=0, dtype=torch.float64):
    h = torch.randn(n, f, dtype=dtype)
    x = torch.randn(n, c, d, dtype=dtype)
    ei = torch.randint(0, n, (2, e))
    ea = torch.randn(e, edge_dim, dtype=dtype) if edge_dim else None
    return h, x, ei, ea


def _layer(dtype=torch.float64, **kw):
    layer = EGNNConv(8, 16, vector_channels=kw.pop("c", 3), **kw).to(dtype)
    # Default init makes coordinate steps tiny (gain 1e-3); make them large so the tests see them.
    torch.nn.init.normal_(layer.coord_lin2.weight) if layer.update_coords else None
    return layer


CONFIGS = [
    dict(c=1),
    dict(c=3),
    dict(c=3, attention="gate", edge_dim=2),
    dict(c=3, attention="softmax", coord_aggr="sum"),
    dict(c=2, norm_constant=None, tanh=True),
]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("dim,reflect", [(3, False), (3, True), (2, False)])
def test_e_n_equivariance(cfg, dim, reflect):
    cfg = dict(cfg)
    layer = _layer(**cfg)
    h, x, ei, ea = _graph(c=layer.vector_channels, d=dim, edge_dim=layer.edge_dim)
    Q, t = random_orthogonal(dim, reflect), torch.randn(dim, dtype=torch.float64)
    h1, x1 = layer(h, x, ei, ea)
    h2, x2 = layer(h, x @ Q.T + t, ei, ea)
    assert_close(h2, h1)
    assert_close(x2, x1 @ Q.T + t)
    assert (x1 - x).abs().max() > 1e-3  # the coordinates really moved


@pytest.mark.parametrize("cfg", CONFIGS)
def test_permutation_equivariance(cfg):
    layer = _layer(**dict(cfg))
    h, x, ei, ea = _graph(c=layer.vector_channels, edge_dim=layer.edge_dim)
    perm = torch.randperm(h.size(0))
    h1, x1 = layer(h, x, ei, ea)
    h2, x2 = layer(h[perm], x[perm], permute_graph(perm, ei), ea)
    assert_close(h2, h1[perm])
    assert_close(x2, x1[perm])


@pytest.mark.parametrize("cfg", CONFIGS)
def test_matches_pyg_reference_in_float32(cfg):
    layer = _layer(dtype=torch.float32, **dict(cfg))
    h, x, ei, ea = _graph(n=200, e=3000, c=layer.vector_channels, edge_dim=layer.edge_dim, dtype=torch.float32)
    h.requires_grad_()
    x.requires_grad_()
    ref = EGNNReference(layer)
    outs = layer(h, x, ei, ea)
    outs_ref = ref(h, x, ei, ea)
    for a, b in zip(outs, outs_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(sum((o * o).sum() for o in outs), [h, x, *layer.parameters()])
    grads_ref = torch.autograd.grad(sum((o * o).sum() for o in outs_ref), [h, x, *layer.parameters()])
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cfg", [dict(c=2), dict(c=2, attention="softmax", edge_dim=1)])
def test_gradcheck(cfg):
    layer = _layer(**dict(cfg))
    h, x, ei, ea = _graph(n=5, e=12, c=2, edge_dim=layer.edge_dim)
    h.requires_grad_()
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda h, x: layer(h, x, ei, ea), (h, x))


def test_bipartite_and_residual_off():
    layer = _layer(c=2, residual=False)
    h_s, x_s = torch.randn(7, 8, dtype=torch.float64), torch.randn(7, 2, 3, dtype=torch.float64)
    h_d, x_d = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 2, 3, dtype=torch.float64)
    ei = torch.stack([torch.randint(0, 7, (20,)), torch.randint(0, 4, (20,))])
    Q, t = random_orthogonal(3), torch.randn(3, dtype=torch.float64)
    h1, dx1 = layer((h_s, h_d), (x_s, x_d), ei)
    assert h1.shape == (4, 8) and dx1.shape == (4, 2, 3)
    h2, dx2 = layer((h_s, h_d), (x_s @ Q.T + t, x_d @ Q.T + t), ei)
    assert_close(h2, h1)
    assert_close(dx2, dx1 @ Q.T)  # without the residual the output is a translation-free displacement


def test_isolated_nodes_keep_their_coordinates_and_self_loops_have_finite_gradients():
    layer = _layer(c=1)
    h, x = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 1, 3, dtype=torch.float64, requires_grad=True)
    ei = torch.tensor([[0, 1, 1], [1, 0, 1]])  # node 1 has a self-loop, nodes 2 and 3 no edge
    _, x1 = layer(h, x, ei)
    assert_close(x1[2:], x[2:].detach())
    x1.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_invariant_mode_leaves_coordinates():
    layer = EGNNConv(8, 16, update_coords=False).double()
    h, x, ei, _ = _graph(c=1)
    _, x1 = layer(h, x, ei)
    assert x1 is x


@pytest.mark.parametrize(
    "args,match",
    [
        (dict(h=torch.randn(5, 7)), r"h \(source\) must have shape \[N, 8\]"),
        (dict(x=torch.randn(5, 2, 3)), r"x \(source\) must have shape \[N, 1, D\]"),
        (dict(x=torch.randn(6, 1, 3)), "same number of nodes"),
        (dict(edge_index=torch.tensor([[0, 5], [1, 1]])), "source index 5 out of range"),
        (dict(edge_attr=torch.randn(2, 3)), "edge_dim=0"),
    ],
)
def test_bad_inputs_raise(args, match):
    layer = EGNNConv(8, 16)
    kw = dict(h=torch.randn(5, 8), x=torch.randn(5, 1, 3), edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=None)
    kw.update(args)
    with pytest.raises(ValueError, match=match):
        layer(**kw)


def test_missing_edge_attr_and_bad_options_raise():
    with pytest.raises(ValueError, match=r"edge_attr must have shape \[E=2, 3\]"):
        EGNNConv(8, 16, edge_dim=3)(torch.randn(5, 8), torch.randn(5, 1, 3), torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(ValueError, match="attention"):
        EGNNConv(8, 16, attention="full")
