"""Equivariant trajectory models: EqMotion, GeoTDM and ArtEq.

- :class:`EqMotion`: multi-agent trajectory prediction (:mod:`~geomanip.motion.eqmotion`).
- :class:`GeoTDM`: trajectory diffusion with an equivariant denoiser (:mod:`~geomanip.motion.geotdm`; generation
  scores in :mod:`~geomanip.motion.generation_metrics`).
- Their data (:mod:`~geomanip.motion.data`: N-body simulators, the ETH/UCY loader, rope rollouts, torch datasets),
  metrics and the training loop behind ``geomanip motion`` (:mod:`~geomanip.motion.training`).
- :class:`ArtEq`: SMPL body fitting from point clouds (:mod:`~geomanip.motion.arteq`), on the body models of
  :mod:`~geomanip.motion.body`; ``geomanip body`` (:mod:`~geomanip.motion.body_training`).

The networks are built from the shared layers of :mod:`geomanip.kernels`. ``motion`` never imports ``envs``;
rope rollouts reach it as files.
"""

from geomanip.motion.arteq import ArtEq
from geomanip.motion.eqmotion import EqMotion
from geomanip.motion.geotdm import GeoTDM

__all__ = ["ArtEq", "EqMotion", "GeoTDM"]
