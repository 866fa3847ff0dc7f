import math

import pytest
import torch

from geomanip.kernels import (
    axis_angle_to_matrix,
    chordal_mean,
    icosahedral_group,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_matrix,
    random_rotation,
    rotation_2d,
)
from tests.geometry import assert_close

I3 = torch.eye(3, dtype=torch.float64)


def _is_rotation(R):
    assert_close(R @ R.transpose(-1, -2), I3.expand_as(R))
    assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype))


def test_random_rotations_are_rotations_and_reproducible():
    g = torch.Generator().manual_seed(3)
    R = random_rotation(4, 5, generator=g, dtype=torch.float64)
    assert R.shape == (4, 5, 3, 3)
    _is_rotation(R)
    torch.testing.assert_close(
        R, random_rotation(4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    )


def test_random_rotations_are_uniform():
    # Under the Haar measure the rotated z axis is uniform on the sphere: its z component is U(-1, 1).
    z = random_rotation(20000, dtype=torch.float64)[:, 2, 2]
    assert abs(z.mean()) < 0.02 and abs((z * z).mean() - 1 / 3) < 0.02


def test_quaternion_round_trip_including_half_turns():
    R = torch.cat([random_rotation(200, dtype=torch.float64), icosahedral_group()])
    q = matrix_to_quaternion(R)
    assert (q[:, 0] >= 0).all()
    assert_close(q.norm(dim=-1), torch.ones(len(q), dtype=torch.float64))
    assert_close(quaternion_to_matrix(q), R)


def test_quaternion_convention_is_scalar_first():
    q = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)], dtype=torch.float64)  # 90 deg about z
    assert_close(
        quaternion_to_matrix(q) @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
        torch.tensor([0.0, 1, 0], dtype=torch.float64),
    )


def test_axis_angle_round_trip_and_small_angles():
    v = torch.randn(300, 3, dtype=torch.float64)
    v = v / v.norm(dim=-1, keepdim=True) * torch.rand(300, 1, dtype=torch.float64) * (math.pi - 1e-6)
    v = torch.cat([v, torch.zeros(1, 3, dtype=torch.float64), torch.full((1, 3), 1e-9, dtype=torch.float64)])
    R = axis_angle_to_matrix(v)
    _is_rotation(R)
    assert_close(matrix_to_axis_angle(R), v)


def test_axis_angle_matches_rodrigues():
    v = torch.tensor([0.3, -1.2, 0.5], dtype=torch.float64)
    t, k = v.norm(), v / v.norm()
    K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float64)
    assert_close(axis_angle_to_matrix(v), I3 + t.sin() * K + (1 - t.cos()) * K @ K)


def test_axis_angle_gradient_is_finite_at_zero():
    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(v).sum().backward()
    assert torch.isfinite(v.grad).all()


def test_rotation_2d():
    R = rotation_2d(torch.tensor(math.pi / 2, dtype=torch.float64))
    assert_close(R @ torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_icosahedral_group_is_a_group_of_60_rotations():
    G = icosahedral_group()
    assert G.shape == (60, 3, 3)
    assert_close(G[0], I3)
    _is_rotation(G)
    distinct = (G[:, None] - G[None]).flatten(2).abs().amax(-1) > 1e-6
    assert distinct.sum() == 60 * 59
    products = (G[:, None] @ G[None]).reshape(-1, 3, 3)
    nearest = (products[:, None] - G[None]).flatten(2).abs().amax(-1).amin(-1)
    assert nearest.max() < 1e-9  # closed under composition
    # Rotation angles of the icosahedral group: 1 identity, 15 half turns, 20 third turns, 24 fifth turns.
    angles = matrix_to_axis_angle(G).norm(dim=-1)
    counts = {
        k: int(((angles - a).abs() < 1e-6).sum())
        for k, a in {
            "0": 0,
            "pi": math.pi,
            "2pi/3": 2 * math.pi / 3,
            "2pi/5": 2 * math.pi / 5,
            "4pi/5": 4 * math.pi / 5,
        }.items()
    }
    assert counts == {"0": 1, "pi": 15, "2pi/3": 20, "2pi/5": 12, "4pi/5": 12}


def test_chordal_mean_of_identical_rotations_and_equivariance():
    R0 = random_rotation(dtype=torch.float64)
    assert_close(chordal_mean(R0.expand(5, 3, 3)), R0)
    Rs = random_rotation(7, dtype=torch.float64)
    w = torch.rand(7, dtype=torch.float64)
    mean = chordal_mean(Rs, w)
    _is_rotation(mean)
    Q = random_rotation(dtype=torch.float64)
    assert_close(chordal_mean(Q @ Rs @ Q.T, w), Q @ mean @ Q.T)
    assert_close(chordal_mean(Q @ Rs, w), Q @ mean)


def test_chordal_mean_of_two_rotations_is_the_midpoint():
    a = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    R = axis_angle_to_matrix(torch.stack([0.2 * a, 1.0 * a]))
    assert_close(chordal_mean(R), axis_angle_to_matrix(0.6 * a))
    # A dominant weight pulls the mean to its rotation.
    assert_close(chordal_mean(R, torch.tensor([1.0, 0.0], dtype=torch.float64)), R[0])


def test_chordal_mean_batched_and_differentiable():
    Rs = random_rotation(4, 6, dtype=torch.float64)
    w = torch.rand(4, 6, dtype=torch.float64, requires_grad=True)
    out = chordal_mean(Rs, w)
    assert out.shape == (4, 3, 3)
    out.sum().backward()
    assert torch.isfinite(w.grad).all()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: quaternion_to_matrix(torch.ones(3)), r"\[\.\.\., 4\]"),
        (lambda: matrix_to_quaternion(torch.ones(3, 2)), r"\[\.\.\., 3, 3\]"),
        (lambda: axis_angle_to_matrix(torch.ones(4)), r"\[\.\.\., 3\]"),
        (lambda: chordal_mean(torch.eye(3)), r"\[\.\.\., K, 3, 3\]"),
        (lambda: chordal_mean(torch.eye(3).expand(4, 3, 3), torch.ones(3)), "weights must have shape"),
    ],
)
def test_bad_shapes_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
