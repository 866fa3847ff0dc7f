import math

import pytest
import torch

from geomanip.kernels import (
    circle_grid,
    fibonacci_sphere,
    lift_scalars,
    lift_vectors,
    orientation_invariants,
    polynomial_features,
    polynomial_rows_,
    readout_scalars,
    readout_vectors,
    spatial_invariants,
)
from geomanip.kernels.fiber_geometry import num_polynomial_features
from tests.geometry import assert_close, random_orthogonal


def test_grids_are_unit_vectors_spread_over_the_sphere():
    g = fibonacci_sphere(64, dtype=torch.float64)
    assert g.shape == (64, 3)
    assert_close(g.norm(dim=-1), torch.ones(64, dtype=torch.float64))
    assert g.mean(0).norm() < 0.05  # balanced
    c = circle_grid(16, dtype=torch.float64)
    assert_close(c[4], torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert_close(c.sum(0), torch.zeros(2, dtype=torch.float64))


def test_polynomial_features_order_and_count():
    x = torch.tensor([[2.0, 3.0]])
    assert polynomial_features(x, 2).tolist() == [[2.0, 3.0, 4.0, 6.0, 9.0]]
    assert polynomial_features(x, 3).shape[-1] == num_polynomial_features(2, 3) == 9
    assert polynomial_features(torch.randn(4, 5, 1), 3).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="degree"):
        polynomial_features(x, 0)


@pytest.mark.parametrize("num_inputs", [1, 2, 3, 4])
@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_polynomial_rows_are_the_features_one_per_row(num_inputs, degree):
    x = torch.randn(5, 7, num_inputs, dtype=torch.float64)
    P = num_polynomial_features(num_inputs, degree)
    rows = torch.full((P + 1, 5, 7), 2.0, dtype=torch.float64)
    rows[:num_inputs] = x.permute(2, 0, 1)
    assert polynomial_rows_(rows, num_inputs, degree) is rows
    assert_close(rows[:P], polynomial_features(x, degree).permute(2, 0, 1), rtol=1e-14)
    assert (rows[P] == 2.0).all()  # rows past the monomials are left alone
    if P > num_inputs:
        with pytest.raises(ValueError, match="must have at least"):
            polynomial_rows_(rows[: P - 1], num_inputs, degree)


def test_lifting_and_readout():
    grid = circle_grid(16, dtype=torch.float64)
    v = torch.randn(5, 2, 2, dtype=torch.float64)
    f = lift_vectors(v, grid)
    assert f.shape == (5, 16, 2)
    # On a circle grid, sum_o n_o n_o^T / O = I / 2, so lifting then reading out halves a vector.
    assert_close(readout_vectors(f, grid), v / 2)
    s = torch.randn(5, 3, dtype=torch.float64)
    assert_close(readout_scalars(lift_scalars(s, 16)), s)


def test_invariants_values():
    grid = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    pos = torch.tensor([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]], dtype=torch.float64)
    inv = spatial_invariants(pos, pos, torch.tensor([[1], [0]]), grid)  # edge 1 -> 0, dx = (3, 4, 0)
    assert_close(inv[0], torch.tensor([[3.0, 4.0], [0.0, 5.0]], dtype=torch.float64))
    assert_close(orientation_invariants(grid)[..., 0], torch.eye(2, dtype=torch.float64))


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("reflect", [False, True])
def test_invariants_are_invariant_when_grid_and_positions_move_together(dim, reflect):
    grid = fibonacci_sphere(16, dtype=torch.float64) if dim == 3 else circle_grid(16, dtype=torch.float64)
    pos = torch.randn(10, dim, dtype=torch.float64)
    ei = torch.randint(0, 10, (2, 40))
    Q, t = random_orthogonal(dim, reflect), torch.randn(dim, dtype=torch.float64)
    a = spatial_invariants(pos, pos, ei, grid)
    b = spatial_invariants(pos @ Q.T + t, pos @ Q.T + t, ei, grid @ Q.T)
    assert_close(b, a)
    assert_close(orientation_invariants(grid @ Q.T), orientation_invariants(grid))
    v = torch.randn(10, 3, dim, dtype=torch.float64)
    assert_close(lift_vectors(v @ Q.T, grid @ Q.T), lift_vectors(v, grid))
    f = torch.randn(10, 16, 4, dtype=torch.float64)
    assert_close(readout_vectors(f, grid @ Q.T), readout_vectors(f, grid) @ Q.T)


def test_rotating_by_a_grid_step_permutes_directions_exactly():
    grid = circle_grid(16, dtype=torch.float64)
    k = 3
    R = torch.tensor(
        [
            [math.cos(2 * math.pi * k / 16), -math.sin(2 * math.pi * k / 16)],
            [math.sin(2 * math.pi * k / 16), math.cos(2 * math.pi * k / 16)],
        ],
        dtype=torch.float64,
    )
    pos = torch.randn(6, 2, dtype=torch.float64)
    ei = torch.randint(0, 6, (2, 20))
    a = spatial_invariants(pos, pos, ei, grid)
    b = spatial_invariants(pos @ R.T, pos @ R.T, ei, grid)
    assert_close(b.roll(-k, dims=1), a)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="grid must have shape"):
        lift_vectors(torch.randn(3, 1, 3), torch.randn(16, 4))
    with pytest.raises(ValueError, match=r"\[N, V, 3\]"):
        lift_vectors(torch.randn(3, 2), fibonacci_sphere(8))
    with pytest.raises(ValueError, match="to match the grid"):
        readout_vectors(torch.randn(3, 7, 2), fibonacci_sphere(8))
    with pytest.raises(ValueError, match="positive"):
        fibonacci_sphere(0)


def test_ring_grid_is_closed_under_its_rotations_about_z():
    from geomanip.kernels import ring_grid

    g = ring_grid(8, dtype=torch.float64)
    assert g.shape == (16, 3)
    assert_close(g.norm(dim=-1), torch.ones(16, dtype=torch.float64))
    a = 2 * math.pi * 3 / 8
    R = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=torch.float64)
    rotated = g @ R.T
    nearest = (rotated[:, None] - g[None]).norm(dim=-1).min(1).values
    assert nearest.max() < 1e-12
    # Readout of lifted vectors reproduces any 3-D vector up to a fixed positive scale per axis.
    v = torch.randn(4, 1, 3, dtype=torch.float64)
    back = readout_vectors(lift_vectors(v, g), g)
    ratio = back / v
    assert (ratio > 0).all() and torch.allclose(ratio[..., 0], ratio[..., 1])
