"""ArtEq: equivariance of its outputs, the group convolution, losses and a short training run."""

import math

import pytest
import torch

from geomanip.kernels import icosahedral_group, random_rotation
from geomanip.kernels.rotation import axis_angle_to_matrix
from geomanip.motion import ArtEq
from geomanip.motion.body import NUM_PARTS, BodyModel, load_body_model
from geomanip.motion.body.arteq import (
    GroupPointConv,
    QuadraticKernel,
    arteq_loss,
    local_from_global,
    mesh_centroid,
    monomials,
    subsample,
)
from geomanip.motion.body.baselines import PointNetRegressor, chamfer, fit_by_optimisation
from geomanip.motion.body.data import generate
from geomanip.motion.body.training import rotation_angle

# Tolerances. For the 60 rotations of the icosahedral group the network is exactly equivariant: the
# group axis of every feature is permuted, nothing is interpolated, so outputs agree up to round-off. The
# check runs in float64 (TOL 1e-6 on rotation matrices and betas; labels identical) because an untrained
# network's attention is nearly uniform over the 60 anchors, whose weighted sum is then small, and its SVD
# amplifies float32 round-off to ~1e-3. For rotations
# outside the group nothing is exact: features are sampled on 60 frames whose nearest neighbours are
# 44 degrees apart, so an untrained network's outputs may differ by much more; that case is measured on a
# trained model in the benchmark (test_orient), not asserted here.
TOL = 1e-6


@pytest.fixture(scope="module")
def body():
    return load_body_model()


@pytest.fixture(scope="module")
def data(body):
    return generate(body, 3, "train", seed=5, num_points=1000)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = ArtEq(BodyModel(dtype=torch.float64)).double().eval()
    with torch.no_grad():  # the refinement starts as the identity; make it act, so the tests check it too
        torch.nn.init.normal_(model.refine_head[-1].weight, std=0.3)
    return model


@pytest.fixture(scope="module")
def data64(data):
    return {k: v.double() if v.is_floating_point() else v for k, v in data.items()}


def test_default_construction_and_outputs(body, data):
    model = ArtEq()
    out = model.fit(data["points"])
    B = len(data["points"])
    assert out["global_orient"].shape == (B, 3, 3) and out["rotations"].shape == (B, 24, 3, 3)
    assert out["betas"].shape == (B, 10)
    assert out["vertices"].shape == (B, body.num_vertices, 3) and out["joints"].shape == (B, 24, 3)
    R = out["rotations"]
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(B, 24), atol=1e-5)
    # The mesh is placed on the cloud (translation comes from the centroids, not regressed).
    assert torch.allclose(mesh_centroid(out["vertices"], body.faces), data["points"].mean(1), atol=1e-4)
    with pytest.raises(ValueError, match=r"\[B, P, 3\]"):
        model(data["points"][0])


@pytest.mark.parametrize("g", [7, 59])
def test_group_rotation_rotates_orientation_and_keeps_shape_labels_and_local_pose(model, data64, g):
    h = icosahedral_group(torch.float64)[g]
    out = model.fit(data64["points"])
    rot = model.fit(data64["points"] @ h.T)
    assert torch.allclose(rot["global_orient"], h @ out["global_orient"], atol=TOL)
    assert torch.allclose(rot["part_rotations"], h @ out["part_rotations"], atol=TOL)
    assert torch.allclose(rot["rotations"][:, 1:], out["rotations"][:, 1:], atol=TOL)  # local pose
    assert torch.allclose(rot["betas"], out["betas"], atol=TOL)
    assert torch.equal(rot["part_logits"].argmax(-1), out["part_logits"].argmax(-1))
    assert torch.allclose(rot["vertices"], out["vertices"] @ h.T, atol=1e-6)


def test_refinement_is_active_in_the_equivariance_tests(model, data64):
    x = data64["points"] - data64["points"].mean(1, keepdim=True)
    plain = ArtEq(model.body, refine=False).double().eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    angle = rotation_angle(model.fit(x)["part_rotations"], plain.fit(x)["part_rotations"])
    assert angle.min() > 1e-3  # radians: every part's rotation is corrected


def test_translation_invariance(model, data64):
    shift = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    out, moved = model.fit(data64["points"]), model.fit(data64["points"] + shift)
    assert torch.allclose(moved["rotations"], out["rotations"], atol=TOL)
    assert torch.allclose(moved["vertices"], out["vertices"] + shift, atol=1e-6)


def test_group_conv_permutes_the_group_axis():
    """One layer on its own: rotating input positions by a group element permutes the rotation axis."""
    torch.manual_seed(1)
    G = icosahedral_group(torch.float32)
    table = torch.stack([((G[g] @ G).unsqueeze(1) - G.unsqueeze(0)).abs().amax((-1, -2)).argmin(1) for g in range(60)])
    g = 11
    perm = table[g]  # G[g] @ G[i] == G[perm[i]]
    conv = GroupPointConv(4, 5, 6)
    f = torch.randn(1, 7, 60, 4)
    nbr = torch.randint(0, 7, (1, 7, 3))
    rel = torch.randn(1, 7, 3, 3)
    fb = torch.einsum("pab,oac->pobc", G, G).reshape(60, 60, 9)[..., :6]
    out = conv(f, nbr, monomials(rel), G, fb)
    # Rotated input: positions by G[g], features permuted the same way.
    f_rot = torch.empty_like(f)
    f_rot[:, :, perm] = f
    out_rot = conv(f_rot, nbr, monomials(rel @ G[g].T), G, fb)
    assert torch.allclose(out_rot[:, :, perm], out, atol=1e-5)


def test_quadratic_kernel_coefficients_evaluate_the_kernel_in_every_frame():
    """``monomials(r) @ coefficients`` equals ``a + b . y + y^T A y`` at ``y = G_g^T r`` for every frame."""
    torch.manual_seed(2)
    G = icosahedral_group(torch.float64)
    kern = QuadraticKernel(3).double()
    r = torch.randn(5, 3, dtype=torch.float64)
    got = torch.einsum("nm,gmc->ngc", monomials(r), kern(G))
    y = torch.einsum("gab,na->ngb", G, r)  # G_g^T r
    want = kern.a + torch.einsum("ngi,ci->ngc", y, kern.b) + torch.einsum("ngi,cij,ngj->ngc", y, kern.A, y)
    assert torch.allclose(got, want, atol=1e-10)


def test_features_see_the_whole_cloud(data64):
    """Global context: a point's features change when a point far outside its neighbourhoods moves.

    With local convolutions only (k = 8, a few layers on ~10 cm neighbourhoods) a hand and a foot, or the left
    and the right side, look alike; the global-context layer is what lets segmentation tell them apart.
    """
    torch.manual_seed(0)
    model = ArtEq(BodyModel(dtype=torch.float64), num_points=64, layers=1).double().eval()
    x = data64["points"][:1, :64] - data64["points"][:1, :64].mean(1, keepdim=True)
    far = (x[0] - x[0, 0]).norm(dim=-1).argmax()
    moved = x.clone()
    moved[0, far] += torch.tensor([0.0, 0.0, 0.02], dtype=torch.float64)
    with torch.no_grad():
        f, f_moved = model.features(x), model.features(moved)
    assert (f_moved[0, 0] - f[0, 0]).abs().max() > 1e-6
    # Without the context layer the far point is out of reach: nothing changes.
    for p in model.context[-1].parameters():
        p.data.zero_()
    with torch.no_grad():
        assert torch.equal(model.features(x)[0, 0], model.features(moved)[0, 0])


def test_local_from_global_inverts_the_kinematic_chain(body):
    rot = random_rotation(2, 24)
    rot[:, 22:] = torch.eye(3)
    glob = body.global_rotations(rot)
    assert torch.allclose(local_from_global(glob[:, :NUM_PARTS]), rot, atol=1e-5)


def test_subsample_ignores_coordinates():
    x = torch.randn(2, 100, 3)
    assert torch.equal(subsample(x, 10), subsample(x @ random_rotation().T, 10))
    assert subsample(x, 500).shape == (2, 100)


def test_short_training_lowers_the_loss(body):
    torch.manual_seed(0)
    model = ArtEq(body, num_points=48, neighbours=6, channels=8, layers=1)
    batch = generate(body, 2, "train", seed=3, num_points=500)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss, _ = arteq_loss(model(batch["points"]), batch, body)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.7 * losses[0], losses


def test_baselines_run_on_the_same_data(body, data):
    pointnet = PointNetRegressor(body, num_points=256, width=32)
    out = pointnet.fit(data["points"])
    loss, terms = arteq_loss(out, data, body)
    assert torch.isfinite(loss) and set(terms) == {"rot", "betas", "joints", "vertices", "seg"}
    # Optimisation fitting from the mean body lowers the vertex error of the mean body itself.
    fitted = fit_by_optimisation(body, data["points"][:1], iters=15, num_points=256)
    start = fit_by_optimisation(body, data["points"][:1], iters=0, num_points=256)
    err = (fitted["vertices"] - data["vertices"][:1]).norm(dim=-1).mean()
    err0 = (start["vertices"] - data["vertices"][:1]).norm(dim=-1).mean()
    assert err < err0


def test_chamfer_matches_the_dense_definition_and_its_gradient():
    # chamfer() finds nearest neighbours without gradient and recomputes their distances; value and gradient
    # must equal those of the textbook cdist(...).min(...) form (float64: ties have probability zero).
    torch.manual_seed(0)
    a = torch.randn(2, 50, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 30, 3, dtype=torch.float64, requires_grad=True)
    d = torch.cdist(a, b)
    dense = d.min(2).values.mean(1) + d.min(1).values.mean(1)
    fast = chamfer(a, b)
    torch.testing.assert_close(fast, dense, rtol=0, atol=1e-12)
    w = torch.tensor([0.3, 1.7], dtype=torch.float64)
    grads_fast = torch.autograd.grad((w * fast).sum(), (a, b))
    grads_dense = torch.autograd.grad((w * dense).sum(), (a, b))
    for g_fast, g_dense in zip(grads_fast, grads_dense, strict=True):
        torch.testing.assert_close(g_fast, g_dense, rtol=0, atol=1e-12)


def test_optimisation_yaw_starts_recover_a_body_facing_away(body):
    # A mean body turned 180 degrees about the vertical: the single start (heading 0) faces away from it; with
    # two starts the second begins at the right heading and its lower Chamfer distance selects it.
    turned = torch.zeros(1, 24, 3)
    turned[0, 0, 1] = torch.pi
    rotations = axis_angle_to_matrix(turned)
    verts, _ = body(rotations, torch.zeros(1, 10))
    one = fit_by_optimisation(body, verts, iters=10, num_points=256)
    two = fit_by_optimisation(body, verts, iters=10, num_points=256, yaw_starts=2)
    assert rotation_angle(one["global_orient"], rotations[:, 0]).item() > math.pi / 2
    assert rotation_angle(two["global_orient"], rotations[:, 0]).item() < math.radians(10)
    assert chamfer(two["vertices"], verts) < chamfer(one["vertices"], verts)
    with pytest.raises(ValueError, match="yaw_starts"):
        fit_by_optimisation(body, verts, iters=1, yaw_starts=0)


def test_optimisation_refines_a_given_fit(body, data):
    # Start from the true parameters with every joint turned by ~0.15 rad and the betas off: a few Adam steps
    # on the Chamfer loss bring the vertices back towards the truth; zero steps return the start unchanged.
    torch.manual_seed(1)
    truth = {k: data[k][:2] for k in ("rotations", "betas", "vertices", "points")}
    noise = axis_angle_to_matrix(0.15 * torch.nn.functional.normalize(torch.randn(2, 24, 3), dim=-1))
    start = {"rotations": truth["rotations"] @ noise, "betas": truth["betas"] + 0.5, "transl": torch.zeros(2, 3)}
    same = fit_by_optimisation(body, truth["points"], iters=0, init=start)
    torch.testing.assert_close(same["vertices"], body(start["rotations"], start["betas"])[0])
    refined = fit_by_optimisation(body, truth["points"], iters=15, lr=0.01, num_points=512, init=start)
    err = (refined["vertices"] - truth["vertices"]).norm(dim=-1).mean()
    err0 = (same["vertices"] - truth["vertices"]).norm(dim=-1).mean()
    assert err < 0.7 * err0, (err, err0)
    with pytest.raises(ValueError, match="single start"):
        fit_by_optimisation(body, truth["points"], iters=1, init=start, yaw_starts=2)
