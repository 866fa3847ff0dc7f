"""Body fitting: SMPL shape and pose from point clouds, apart from the trajectory models of :mod:`geomanip.motion`.

- :class:`ArtEq` (:mod:`~geomanip.motion.body.arteq`): the articulated SE(3)-equivariant network and its loss.
- Baselines (:mod:`~geomanip.motion.body.baselines`): a PointNet regressor and fitting by optimisation.
- Body models (:mod:`~geomanip.motion.body.model`) and the training and test bodies generated from them
  (:mod:`~geomanip.motion.body.data`).
- Training, evaluation and fitting files, ``geomanip body`` (:mod:`~geomanip.motion.body.training`).

Body models: :func:`load_body_model` loads an SMPL-format pickle through ``smplx.SMPL``: the user's licensed SMPL file
(``path=``, or ``$GEOMANIP_SMPL`` set to the file or to a folder holding ``SMPL_NEUTRAL.pkl``; official
files also need ``chumpy`` to unpickle) or, by default, the free model shipped in
``assets/body/ANNY_SMPL_NEUTRAL.pkl``. :mod:`geomanip.motion.body.data` generates training and test bodies.

The shipped model is built by ``scripts/build_body_model.py`` (:mod:`geomanip.motion.body.build`) from anny
(Apache-2.0 code, CC0 MakeHuman-derived mesh). It is not SMPL; what differs:

- Mesh: 6,890 vertices and 13,776 triangles, the same counts as SMPL by choice of the decimation target,
  but a different mesh: vertex ``i`` is not SMPL's vertex ``i``, so SMPL correspondences, UVs and smplx's
  default ``vertex_ids`` do not apply. The file carries its own ``vertex_ids`` (nose, eyes, ears, toes,
  heels, finger tips), which :class:`BodyModel` passes to smplx; pass them yourself to ``smplx.SMPL``.
- Rest pose: anny's A-pose (arms about 45 degrees down), not SMPL's T-pose, so zero rotations give an
  A-pose and joint angles of the same posture differ from SMPL's at the shoulders.
- No pose correctives: ``posedirs`` is all zeros (plain linear blend skinning; elbows and knees crease).
- Shape space: 10 PCA components of the rest meshes of 1,000 anny phenotypes (gender, muscle, weight,
  height, proportions uniform in [0, 1]; age in [0.5, 1], adults), scaled so that betas ~ N(0, 1) spans
  them; they explain 99.98% of that variance. Anny has only six dials, so the last components are tiny (about
  1 mm per standard deviation against about 10 cm for the first, height), unlike SMPL's scan-based space.
- Skeleton: SMPL's 24-joint tree, each anny bone's skinning weight summed onto the SMPL joint whose segment
  it spans (``BONE_TO_JOINT`` in the build); the joint regressor (sum-to-one, signed weights over the 128
  vertices nearest each joint) reproduces anny's bone heads across shapes to 1.6 mm on average (SMPL's
  regressor is non-negative). Fingers, toes and the face are not articulated separately.
- One neutral model: gender is one of the shape dials.
"""

from geomanip.motion.body.arteq import ArtEq
from geomanip.motion.body.model import (
    ENV_VAR,
    JOINT_NAMES,
    NUM_BETAS,
    NUM_JOINTS,
    NUM_PARTS,
    PARENTS,
    SHIPPED_MODEL,
    BodyModel,
    BodyModelError,
    load_body_model,
    resolve_model_path,
)

__all__ = [
    "ArtEq",
    "ENV_VAR",
    "JOINT_NAMES",
    "NUM_BETAS",
    "NUM_JOINTS",
    "NUM_PARTS",
    "PARENTS",
    "SHIPPED_MODEL",
    "BodyModel",
    "BodyModelError",
    "load_body_model",
    "resolve_model_path",
]
