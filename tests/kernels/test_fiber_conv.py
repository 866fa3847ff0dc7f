import math

import pytest
import torch

from geomanip.kernels import (
    FiberBlock,
    FiberConv,
    PolynomialBasis,
    circle_grid,
    fibonacci_sphere,
    lift_vectors,
    orientation_invariants,
    polynomial_features,
    readout_scalars,
    readout_vectors,
    rotation_2d,
    spatial_invariants,
)
from geomanip.kernels.fiber_message import fiber_message
from geomanip.kernels.reference import FiberBlockReference
from tests.geometry import assert_close, permute_graph, random_orthogonal

C, B = 6, 8


class Net(torch.nn.Module):
    """Lift vectors onto the grid, run two fiber blocks, read out scalars and vectors."""

    def __init__(self, aggr="sum"):
        super().__init__()
        self.spatial = PolynomialBasis(2, B, degree=2)
        self.fiber = PolynomialBasis(1, B, degree=2)
        self.blocks = torch.nn.ModuleList([FiberBlock(C, B, layer_scale=1.0, aggr=aggr) for _ in range(2)])

    def forward(self, v, pos, edge_index, grid):
        sb = self.spatial(spatial_invariants(pos, pos, edge_index, grid))
        fb = self.fiber(orientation_invariants(grid))
        f = lift_vectors(v, grid)
        for block in self.blocks:
            f = block(f, edge_index, sb, fb)
        return f, readout_scalars(f), readout_vectors(f, grid)


def _inputs(n=10, e=40, dim=3):
    return (
        torch.randn(n, C, dim, dtype=torch.float64),
        torch.randn(n, dim, dtype=torch.float64),
        torch.randint(0, n, (2, e)),
    )


@pytest.mark.parametrize("dim,reflect", [(3, False), (3, True), (2, False), (2, True)])
@pytest.mark.parametrize("aggr", ["sum", "mean"])
def test_equivariance_with_the_grid_moving_along(dim, reflect, aggr):
    net = Net(aggr).double()
    grid = fibonacci_sphere(12, dtype=torch.float64) if dim == 3 else circle_grid(8, dtype=torch.float64)
    v, pos, ei = _inputs(dim=dim)
    Q, t = random_orthogonal(dim, reflect), torch.randn(dim, dtype=torch.float64)
    f1, s1, v1 = net(v, pos, ei, grid)
    f2, s2, v2 = net(v @ Q.T, pos @ Q.T + t, ei, grid @ Q.T)
    assert_close(f2, f1)
    assert_close(s2, s1)
    assert_close(v2, v1 @ Q.T)
    assert v1.abs().max() > 1e-3


def test_planar_rotation_by_grid_steps_is_exact_on_a_fixed_grid():
    net = Net().double()
    grid = circle_grid(8, dtype=torch.float64)
    v, pos, ei = _inputs(dim=2)
    k = 3
    R = rotation_2d(torch.tensor(2 * math.pi * k / 8, dtype=torch.float64))
    f1, s1, v1 = net(v, pos, ei, grid)
    f2, s2, v2 = net(v @ R.T, pos @ R.T, ei, grid)
    assert_close(f2.roll(-k, dims=1), f1)
    assert_close(s2, s1)
    assert_close(v2, v1 @ R.T)


def test_permutation_equivariance():
    net = Net().double()
    grid = fibonacci_sphere(12, dtype=torch.float64)
    v, pos, ei = _inputs()
    perm = torch.randperm(v.size(0))
    f1, _, _ = net(v, pos, ei, grid)
    f2, _, _ = net(v[perm], pos[perm], permute_graph(perm, ei), grid)
    assert_close(f2, f1[perm])


@pytest.mark.parametrize("aggr", ["sum", "mean"])
def test_matches_pyg_reference_in_float32(aggr):
    n, e, O, H = 300, 4000, 16, 32
    block = FiberBlock(H, H, layer_scale=0.5, aggr=aggr)
    ei = torch.randint(0, n, (2, e))
    sb = torch.randn(e, O, H, requires_grad=True)
    fb = torch.randn(O, O, H, requires_grad=True)
    f = torch.randn(n, O, H, requires_grad=True)
    out, out_ref = block(f, ei, sb, fb), FiberBlockReference(block)(f, ei, sb, fb)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    inputs = [f, sb, fb, *block.parameters()]
    grads = torch.autograd.grad((out * out).sum(), inputs)
    grads_ref = torch.autograd.grad((out_ref * out_ref).sum(), inputs)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("aggr", ["sum", "mean"])
def test_calibration_restores_the_input_scale_once_and_is_saved(aggr):
    torch.manual_seed(0)
    n, e, O = 50, 400, 8
    f, ei = 0.2 * torch.randn(n, O, C), torch.randint(0, n, (2, e))
    sb, fb = 0.05 * torch.rand(e, O, B), 0.05 * torch.rand(O, O, B)  # small bases, as a fresh PolynomialBasis gives
    plain = FiberConv(C, C, B, aggr=aggr)
    conv = FiberConv(C, C, B, aggr=aggr, calibrate=True)
    conv.load_state_dict({**plain.state_dict(), "calibrated": torch.tensor(False)})
    assert plain(f, ei, sb, fb).std() < 1e-2 * f.std()  # what calibration is for
    first = conv(f, ei, sb, fb)
    assert conv.calibrated
    assert 0.2 * f.std() < first.std() < 5 * f.std()
    torch.testing.assert_close(conv(f, ei, sb, fb), first)  # the first call already used the final weights
    reloaded = FiberConv(C, C, B, aggr=aggr, calibrate=True)
    reloaded.load_state_dict(conv.state_dict())
    reloaded(torch.randn(n, O, C), ei, sb, fb)  # other data: a loaded, calibrated layer must not rescale
    for a, b in zip(reloaded.parameters(), conv.parameters(), strict=True):
        assert torch.equal(a, b)
    conv.reset_parameters()
    assert not conv.calibrated


@pytest.mark.parametrize("chunk_edges", [None, 1, 7])
def test_fused_message_gradcheck_for_any_chunking(chunk_edges):
    n, e, O = 6, 25, 4
    ei = torch.randint(0, n, (2, e))
    basis = torch.randn(e, O, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    f = torch.randn(n, O, 5, dtype=torch.float64, requires_grad=True)
    direct = torch.zeros(n, O, 5, dtype=torch.float64).index_add_(0, ei[1], (basis @ weight.T) * f[ei[0]])
    assert_close(fiber_message(basis, weight, f, ei, n, chunk_edges), direct)
    assert torch.autograd.gradcheck(lambda b, w, x: fiber_message(b, w, x, ei, n, chunk_edges), (basis, weight, f))


def test_fused_message_skips_gradients_nobody_needs():
    ei = torch.randint(0, 5, (2, 9))
    basis = torch.randn(9, 4, 3)
    weight = torch.randn(2, 3, requires_grad=True)
    f = torch.randn(5, 4, 2)
    fiber_message(basis, weight, f, ei, 5).sum().backward()
    assert weight.grad is not None and basis.grad is None


def test_full_block_gradcheck():
    block = FiberBlock(3, 4, layer_scale=1.0).double()
    ei = torch.randint(0, 5, (2, 12))
    f = torch.randn(5, 4, 3, dtype=torch.float64, requires_grad=True)
    sb = torch.randn(12, 4, 4, dtype=torch.float64, requires_grad=True)
    fb = torch.randn(4, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, sb, fb: block(f, ei, sb, fb), (f, sb, fb))


def test_bipartite_conv():
    conv = FiberConv(C, 5, B).double()
    f_src, f_dst = torch.randn(7, 4, C, dtype=torch.float64), torch.randn(3, 4, 2, dtype=torch.float64)
    ei = torch.stack([torch.randint(0, 7, (11,)), torch.randint(0, 3, (11,))])
    out = conv(
        (f_src, f_dst), ei, torch.randn(11, 4, B, dtype=torch.float64), torch.randn(4, 4, B, dtype=torch.float64)
    )
    assert out.shape == (3, 4, 5)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(f=torch.randn(5, 4, 3)), r"f must have shape \[N, O, 6\]"),
        (dict(spatial_basis=torch.randn(2, 4, B)), r"spatial_basis must have shape \[E=3, O=4, B=8\]"),
        (dict(fiber_basis=torch.randn(4, 3, B)), r"fiber_basis must have shape \[O=4, O=4, B=8\]"),
        (dict(edge_index=torch.tensor([[0, 1, 9], [1, 2, 0]])), "source index 9 out of range"),
    ],
)
def test_bad_inputs_raise(kw, match):
    conv = FiberConv(C, C, B)
    args = dict(
        f=torch.randn(5, 4, C),
        edge_index=torch.tensor([[0, 1, 2], [1, 2, 0]]),
        spatial_basis=torch.randn(3, 4, B),
        fiber_basis=torch.randn(4, 4, B),
    )
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        conv(**args)


def test_polynomial_basis_checks_its_input():
    with pytest.raises(ValueError, match="expected 2 invariants"):
        PolynomialBasis(2, 8)(torch.randn(3, 1))


def test_needs_calibration_follows_the_first_call_and_loading():
    conv = FiberConv(C, C, B, calibrate=True).double()
    assert conv.needs_calibration and not FiberConv(C, C, B).needs_calibration
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    conv(torch.randn(4, 4, C, dtype=torch.float64), ei, torch.rand(4, 4, B).double(), torch.rand(4, 4, B).double())
    assert not conv.needs_calibration
    fresh = FiberConv(C, C, B, calibrate=True).double()
    fresh.load_state_dict(conv.state_dict())
    assert not fresh.needs_calibration


def test_polynomial_basis_forward_rows_is_forward_transposed():
    torch.manual_seed(0)
    basis = PolynomialBasis(3, B, degree=3).double()
    x = torch.randn(5, 6, 3, dtype=torch.float64)
    features = polynomial_features(x, 3).permute(2, 0, 1).reshape(-1, 30)
    rows = torch.cat([features, torch.ones(1, 30, dtype=torch.float64)])
    assert_close(basis.forward_rows(rows), basis(x).permute(2, 0, 1).reshape(B, 30), rtol=1e-12)
    with pytest.raises(ValueError, match=r"expected \[20, N\] features"):
        basis.forward_rows(features)
