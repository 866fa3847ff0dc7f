"""Generated body data: shapes, determinism, joint limits, orientation and pose splits, labels."""

import math

import pytest
import torch

from geomanip.motion.body import load_body_model
from geomanip.motion.body.data import JOINT_LIMITS, SPLITS, generate, sample_pose


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def _euler(R):
    """(x, y, z) of R = Rz(z) Ry(y) Rx(x) with |y| <= pi/2, and the other solution (|y| >= pi/2)."""
    x = torch.atan2(R[..., 2, 1], R[..., 2, 2])
    y = -torch.asin(R[..., 2, 0].clamp(-1, 1))
    z = torch.atan2(R[..., 1, 0], R[..., 0, 0])
    a = torch.stack([x, y, z], -1)
    b = torch.stack([x - x.sign() * math.pi, y.sign() * math.pi - y, z - z.sign() * math.pi], -1)
    return a, b


def _within(R, lo, hi, tol=1e-3):
    """Whether one of the two Euler solutions of each rotation lies in its box (the elbow bends past pi/2)."""
    return torch.stack([((e >= lo - tol) & (e <= hi + tol)).all(-1) for e in _euler(R)]).any(0)


def test_generate_shapes_and_determinism(body):
    a = generate(body, 3, "train", seed=1, num_points=500)
    b = generate(body, 3, "train", seed=1, num_points=500)
    c = generate(body, 3, "test", seed=1, num_points=500)
    assert a["points"].shape == (3, 500, 3) and a["labels"].shape == (3, 500)
    assert a["vertices"].shape == (3, body.num_vertices, 3) and a["joints"].shape == (3, 24, 3)
    assert a["rotations"].shape == (3, 24, 3, 3) and a["betas"].shape == (3, 10)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["betas"], c["betas"])  # splits draw from separate streams
    with pytest.raises(ValueError, match="unknown split"):
        generate(body, 1, "validation")


def test_points_lie_on_the_surface_with_their_part_labels(body):
    d = generate(body, 2, "train", seed=2, num_points=2000, noise=0.0)
    dist, nearest = torch.cdist(d["points"], d["vertices"]).min(-1)
    assert dist.max() < 0.05  # on a triangle: within an edge length of its corners
    agree = (body.part_of_vertex[nearest] == d["labels"]).float().mean()
    assert agree > 0.9  # the label is the part of the triangle's nearest corner
    noisy = generate(body, 2, "train", seed=2, num_points=2000, noise=0.005)
    assert (noisy["points"] - d["points"]).std() == pytest.approx(0.005, rel=0.1)


def test_joint_limits_and_pose_splits():
    gen = torch.Generator().manual_seed(0)
    train = sample_pose(400, SPLITS["train"], gen)[:, 1:]
    wide = sample_pose(400, SPLITS["test_pose"], gen)[:, 1:]
    lo, hi = JOINT_LIMITS[1:].unbind(-1)
    # Euler angles within the limits (half of them for training), up to round-off; hands stay unposed.
    assert _within(train, 0.5 * lo, 0.5 * hi).all()
    assert _within(wide, lo, hi).all()
    angle = lambda R: ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1).acos()  # noqa: E731
    assert angle(wide).mean() > 1.6 * angle(train).mean()


def test_orientation_splits():
    gen = torch.Generator().manual_seed(0)
    up_train = sample_pose(500, SPLITS["train"], gen)[:, 0, 1, 1]  # y component of the body's up axis
    up_orient = sample_pose(500, SPLITS["test_orient"], gen)[:, 0, 1, 1]
    assert (up_train > math.cos(0.2) - 1e-6).all()  # upright up to 0.2 rad of tilt
    assert (up_orient < 0).float().mean() == pytest.approx(0.5, abs=0.1)  # uniform: upside down half the time
