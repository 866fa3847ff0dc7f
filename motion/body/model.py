"""SMPL-format body models through ``smplx``: where the file comes from, checks, and a thin wrapper.

Which file (first found wins): the ``path`` argument; the environment variable ``GEOMANIP_SMPL`` (a
``SMPL_NEUTRAL.pkl``-style file, or a folder holding ``SMPL_NEUTRAL.pkl``); the free model shipped in
``assets/body/ANNY_SMPL_NEUTRAL.pkl``. Every file goes through ``smplx.SMPL``'s own loading code (it
unpickles the file); official SMPL pickles also need ``chumpy`` installed to unpickle.

Conventions: SMPL's 24 joints (:data:`JOINT_NAMES`, parents :data:`PARENTS`); rotations as matrices
``[..., 3, 3]`` acting on column vectors (:mod:`geomanip.kernels.rotation`); y up, bodies facing +z; metres.
Parts: :data:`NUM_PARTS` = 22 body parts, SMPL joints 0-21, each vertex labelled with the joint of its
largest skinning weight, hand vertices (joints 22, 23) merged into the wrists (as in ArtEq).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "JOINT_NAMES",
    "PARENTS",
    "NUM_JOINTS",
    "NUM_PARTS",
    "NUM_BETAS",
    "SHIPPED_MODEL",
    "ENV_VAR",
    "BodyModel",
    "BodyModelError",
    "resolve_model_path",
    "load_body_model",
]

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
    "right_hand",
)  # fmt: skip
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
NUM_JOINTS = 24
NUM_PARTS = 22
NUM_BETAS = 10
SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "assets" / "body" / "ANNY_SMPL_NEUTRAL.pkl"
ENV_VAR = "GEOMANIP_SMPL"
_REQUIRED = {
    "v_template": 2,
    "shapedirs": 3,
    "posedirs": 3,
    "J_regressor": 2,
    "weights": 2,
    "kintree_table": 2,
    "f": 2,
}


class BodyModelError(ValueError):
    """A body-model file that is missing, unreadable, or not in SMPL's format."""


def resolve_model_path(path: str | os.PathLike | None = None) -> Path:
    """The body-model file to load (see the module docstring for the order); raises if it does not exist."""
    if path is None:
        path = os.environ.get(ENV_VAR) or SHIPPED_MODEL
        origin = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the shipped model"
    else:
        origin = "the given path"
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "SMPL_NEUTRAL.pkl"
    if not p.is_file():
        hint = (
            "rebuild the shipped model with `python scripts/build_body_model.py` (needs the body-build extra)"
            if p == SHIPPED_MODEL
            else f"pass an SMPL-format .pkl file or a folder with SMPL_NEUTRAL.pkl, or unset ${ENV_VAR}"
        )
        raise BodyModelError(f"body model file {p} (from {origin}) does not exist; {hint}")
    return p


def _read(path: Path) -> dict:
    """Unpickle and check an SMPL-format file, with errors that say what is wrong."""
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh, encoding="latin1")
    except ModuleNotFoundError as exc:
        raise BodyModelError(
            f"{path} needs the module {exc.name!r} to unpickle (official SMPL files need `pip install chumpy`)"
        ) from exc
    except Exception as exc:  # any unpickling failure means a damaged or non-pickle file
        raise BodyModelError(f"{path} is not a readable SMPL pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise BodyModelError(f"{path} holds a {type(data).__name__}, expected a dict of SMPL arrays")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise BodyModelError(f"{path} is not an SMPL-format model: missing keys {missing}")
    arrays = {k: np.asarray(data[k]) for k in _REQUIRED}
    for k, nd in _REQUIRED.items():
        if arrays[k].ndim != nd:
            raise BodyModelError(f"{path}: {k} must have {nd} dimensions, got shape {arrays[k].shape}")
    V = arrays["v_template"].shape[0]
    expect = {
        "v_template": (V, 3),
        "weights": (V, NUM_JOINTS),
        "J_regressor": (NUM_JOINTS, V),
        "kintree_table": (2, NUM_JOINTS),
    }
    for k, shape in expect.items():
        if arrays[k].shape != shape:
            raise BodyModelError(f"{path}: {k} must have shape {shape} for {V} vertices, got {arrays[k].shape}")
    if arrays["shapedirs"].shape[:2] != (V, 3) or arrays["shapedirs"].shape[2] < NUM_BETAS:
        raise BodyModelError(
            f"{path}: shapedirs must have shape ({V}, 3, >={NUM_BETAS}), got {arrays['shapedirs'].shape}"
        )
    if arrays["posedirs"].shape != (V, 3, 9 * (NUM_JOINTS - 1)):
        raise BodyModelError(f"{path}: posedirs must have shape ({V}, 3, 207), got {arrays['posedirs'].shape}")
    if arrays["f"].shape[1] != 3 or arrays["f"].max() >= V:
        raise BodyModelError(f"{path}: f must be triangles [F, 3] indexing {V} vertices")
    if not all(np.isfinite(arrays[k].astype(np.float64)).all() for k in ("v_template", "shapedirs", "weights")):
        raise BodyModelError(f"{path}: v_template, shapedirs or weights hold NaN or inf")
    return data


def _default_vertex_ids(num_vertices: int) -> dict[str, int] | None:
    from smplx.vertex_ids import vertex_ids

    ids = vertex_ids["smplh"]
    return ids if num_vertices == 6890 else None


class BodyModel(nn.Module):
    """An SMPL-format body model (``smplx.SMPL`` inside) posed with rotation matrices.

    Attributes (buffers): ``faces [F, 3]``, ``parents [24]``, ``part_of_vertex [V]`` (0-21), ``weights
    [V, 24]``. ``source`` says which file was loaded and ``info`` carries its metadata (the shipped model's
    ``source`` text, vertex ids of smplx's extra keypoints).

    Call: ``rotations [B, 24, 3, 3]`` (global rotation of the root first, then each joint's rotation relative
    to its parent), ``betas [B, 10]``, ``transl [B, 3]`` (optional) -> ``(vertices [B, V, 3],
    joints [B, 24, 3])``.
    """

    def __init__(self, path: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        import smplx

        self.source = resolve_model_path(path)
        data = _read(self.source)
        V = int(np.asarray(data["v_template"]).shape[0])
        vertex_ids = data.get("vertex_ids") or _default_vertex_ids(V)
        if vertex_ids is None:
            raise BodyModelError(
                f"{self.source}: a {V}-vertex model needs a 'vertex_ids' entry (smplx's extra keypoints); "
                "smplx's defaults index SMPL's 6890-vertex mesh"
            )
        self.smpl = smplx.SMPL(
            model_path=str(self.source),
            data_struct=_Struct(data),
            vertex_ids=vertex_ids,
            num_betas=NUM_BETAS,
            dtype=dtype,
            # Parameters are always passed in; smplx would otherwise add trainable betas/pose to any model
            # that holds this one.
            create_betas=False,
            create_global_orient=False,
            create_body_pose=False,
            create_transl=False,
        )
        # The model's arrays come from the file, so they stay out of the state_dict of networks that hold it
        # (posedirs alone is 17 MB).
        for m in self.smpl.modules():
            m._non_persistent_buffers_set.update(m._buffers.keys())
        self.info = {k: v for k, v in data.items() if k not in _REQUIRED}
        weights = torch.as_tensor(np.asarray(data["weights"]), dtype=dtype)
        part = weights.argmax(1)
        part = torch.where(part == 22, torch.full_like(part, 20), part)
        part = torch.where(part == 23, torch.full_like(part, 21), part)
        self.register_buffer("faces", self.smpl.faces_tensor.clone(), persistent=False)
        self.register_buffer("parents", torch.tensor(PARENTS), persistent=False)
        self.register_buffer("part_of_vertex", part, persistent=False)
        self.register_buffer("weights", weights, persistent=False)

    @property
    def num_vertices(self) -> int:
        return int(self.smpl.v_template.shape[0])

    @property
    def v_template(self) -> Tensor:
        return self.smpl.v_template

    def forward(self, rotations: Tensor, betas: Tensor, transl: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if rotations.dim() != 4 or rotations.shape[1:] != (NUM_JOINTS, 3, 3):
            raise ValueError(f"BodyModel: rotations must have shape [B, 24, 3, 3], got {list(rotations.shape)}")
        if betas.dim() != 2 or betas.shape != (rotations.shape[0], NUM_BETAS):
            raise ValueError(f"BodyModel: betas must have shape [{rotations.shape[0]}, 10], got {list(betas.shape)}")
        B = rotations.shape[0]
        out = self.smpl(
            betas=betas,
            global_orient=rotations[:, :1],
            body_pose=rotations[:, 1:],
            transl=torch.zeros(B, 3, dtype=betas.dtype, device=betas.device) if transl is None else transl,
            pose2rot=False,
        )
        return out.vertices, out.joints[:, :NUM_JOINTS]

    def global_rotations(self, rotations: Tensor) -> Tensor:
        """Global rotation of every joint from local ones: ``G_j = G_parent(j) @ R_j``, ``[B, 24, 3, 3]``."""
        out = [rotations[:, 0]]
        for j in range(1, NUM_JOINTS):
            out.append(out[PARENTS[j]] @ rotations[:, j])
        return torch.stack(out, 1)


class _Struct:
    """What ``smplx.SMPL`` expects as ``data_struct``: the file's dict as attributes (its own ``Struct``)."""

    def __init__(self, data: dict) -> None:
        self.__dict__.update(data)


_CACHE: dict[tuple[str, torch.dtype], BodyModel] = {}


def load_body_model(path: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32) -> BodyModel:
    """The :class:`BodyModel` at ``path`` (default: see the module docstring), cached per file and dtype.

    Raises :class:`BodyModelError` (a ``ValueError``) for a missing, unreadable or wrong-format file.
    """
    key = (str(resolve_model_path(path)), dtype)
    if key not in _CACHE:
        _CACHE[key] = BodyModel(path, dtype)
    return _CACHE[key]
