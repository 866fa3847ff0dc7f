"""The shipped SMPL-format body model: loading through smplx, rest pose, skinning, errors for bad files."""

import pickle

import numpy as np
import pytest
import smplx
import torch

from geomanip.kernels.rotation import axis_angle_to_matrix
from geomanip.motion.body import (
    JOINT_NAMES,
    NUM_JOINTS,
    NUM_PARTS,
    SHIPPED_MODEL,
    BodyModel,
    BodyModelError,
    load_body_model,
)


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def _identity(b=1):
    return torch.eye(3).expand(b, NUM_JOINTS, 3, 3).clone()


def test_shipped_file_is_small_and_loads_through_smplx_unaided():
    assert SHIPPED_MODEL.stat().st_size < 5e6
    # smplx's own code path: it unpickles the file; our only addition is vertex ids for its extra keypoints.
    with open(SHIPPED_MODEL, "rb") as fh:
        data = pickle.load(fh, encoding="latin1")
    model = smplx.SMPL(model_path=str(SHIPPED_MODEL), vertex_ids=data["vertex_ids"])
    out = model()
    assert out.vertices.shape == (1, len(data["v_template"]), 3)
    assert not data["posedirs"].any()  # no pose correctives (documented difference from SMPL)


def test_zero_pose_reproduces_the_template(body):
    verts, joints = body(_identity(), torch.zeros(1, 10))
    assert torch.allclose(verts[0], body.v_template, atol=1e-5)
    # Joints come from the regressor on the template, and sit inside the body's bounds.
    J = body.smpl.J_regressor @ body.v_template
    assert torch.allclose(joints[0], J, atol=1e-5)
    lo, hi = body.v_template.min(0).values, body.v_template.max(0).values
    assert ((joints[0] > lo) & (joints[0] < hi)).all()


def test_skeleton_is_anatomical(body):
    J = (body.smpl.J_regressor @ body.v_template).numpy()
    idx = {n: i for i, n in enumerate(JOINT_NAMES)}
    # y up, facing +z, the body's left at +x: heights ordered along each chain, left joints at +x.
    assert J[idx["head"], 1] > J[idx["neck"], 1] > J[idx["spine3"], 1] > J[idx["pelvis"], 1]
    assert J[idx["pelvis"], 1] > J[idx["left_knee"], 1] > J[idx["left_ankle"], 1]
    assert J[idx["left_shoulder"], 0] > 0.1 and J[idx["right_shoulder"], 0] < -0.1
    assert J[idx["left_foot"], 2] > J[idx["left_ankle"], 2]  # toes in front of the ankle
    height = body.v_template[:, 1].max() - body.v_template[:, 1].min()
    assert 1.5 < height < 1.9


def test_each_joint_moves_its_own_vertices(body):
    """Rotating one joint moves the vertices skinned to its subtree and leaves the rest in place."""
    children = {j: [c for c in range(NUM_JOINTS) if body.parents[c] == j] for j in range(NUM_JOINTS)}

    def subtree(j):
        out = {j}
        for c in children[j]:
            out |= subtree(c)
        return out

    rest, _ = body(_identity(), torch.zeros(1, 10))
    weights = body.weights
    for j in (1, 4, 12, 16, 18, 20):
        rot = _identity()
        rot[0, j] = axis_angle_to_matrix(torch.tensor([0.3, 0.5, 0.2]))
        posed, _ = body(rot, torch.zeros(1, 10))
        moved = (posed[0] - rest[0]).norm(dim=-1) > 1e-4
        in_subtree = weights[:, sorted(subtree(j))].sum(1)
        assert not moved[in_subtree == 0].any(), JOINT_NAMES[j]  # vertices with no weight there stay put
        assert (moved[in_subtree > 0.5]).all(), JOINT_NAMES[j]  # what is mostly skinned there moved
        # and the part labels agree: the vertices labelled with joint j moved.
        assert moved[body.part_of_vertex == min(j, NUM_PARTS - 1)].float().mean() > 0.99


def test_shape_space_changes_the_body_and_is_scaled(body):
    v0, _ = body(_identity(), torch.zeros(1, 10))
    for k in range(10):
        betas = torch.zeros(1, 10)
        betas[0, k] = 1.0
        v, _ = body(_identity(), betas)
        # One standard deviation: ~10 cm for the first (height) down to ~1 mm for the last: anny has only
        # six phenotype dials, so its shape variance concentrates in few components.
        assert 0.0005 < (v - v0).norm(dim=-1).mean() < 0.15, k


def test_parts_cover_the_body(body):
    counts = torch.bincount(body.part_of_vertex, minlength=NUM_PARTS)
    assert len(counts) == NUM_PARTS and (counts >= 10).all()  # the collars are the smallest parts


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(BodyModelError, match="does not exist"):
        load_body_model(tmp_path / "nope.pkl")


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "SMPL_NEUTRAL.pkl"
    bad.write_bytes(SHIPPED_MODEL.read_bytes()[:5000])
    with pytest.raises(BodyModelError, match="not a readable SMPL pickle"):
        BodyModel(bad)


def test_wrong_format_files_are_clear_errors(tmp_path):
    with open(SHIPPED_MODEL, "rb") as fh:
        data = pickle.load(fh)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(BodyModelError, match="expected a dict"):
        BodyModel(path)
    path.write_bytes(pickle.dumps({k: v for k, v in data.items() if k != "J_regressor"}))
    with pytest.raises(BodyModelError, match="missing keys.*J_regressor"):
        BodyModel(path)
    path.write_bytes(pickle.dumps({**data, "weights": np.zeros((10, 24))}))
    with pytest.raises(BodyModelError, match="weights must have shape"):
        BodyModel(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(BodyModelError, match="not a readable SMPL pickle"):
        BodyModel(path)


def test_env_var_and_folder(tmp_path, monkeypatch):
    folder = tmp_path / "smpl"
    folder.mkdir()
    (folder / "SMPL_NEUTRAL.pkl").write_bytes(SHIPPED_MODEL.read_bytes())
    monkeypatch.setenv("GEOMANIP_SMPL", str(folder))
    assert BodyModel().source == folder / "SMPL_NEUTRAL.pkl"
    monkeypatch.setenv("GEOMANIP_SMPL", str(tmp_path / "missing"))
    with pytest.raises(BodyModelError, match="GEOMANIP_SMPL"):
        BodyModel()
    # smplx.create finds a folder laid out like SMPL's downloads.
    with open(SHIPPED_MODEL, "rb") as fh:
        ids = pickle.load(fh)["vertex_ids"]
    model = smplx.create(str(tmp_path), model_type="smpl", gender="neutral", vertex_ids=ids)  # finds smpl/
    assert model().vertices.shape[0] == 1
