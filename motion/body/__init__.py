"""Body models for ArtEq: SMPL-format files through ``smplx``, and data generated from them.

:func:`load_body_model` loads an SMPL-format pickle through ``smplx.SMPL``: the user's licensed SMPL file
(``path=`` or ``$GEOMANIP_SMPL``) or, by default, the free model shipped in ``assets/body``.
"""

from motion.body.model import (
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
