"""Equivariant motion models, in two parts: trajectory prediction and body fitting.

Trajectory prediction (the modules of this package outside ``body``):

- :class:`EqMotion`: multi-agent trajectory prediction (:mod:`~geomanip.motion.eqmotion`).
- :class:`GeoTDM`: trajectory diffusion with an equivariant denoiser (:mod:`~geomanip.motion.geotdm`; generation
  scores in :mod:`~geomanip.motion.generation_metrics`).
- Their data (:mod:`~geomanip.motion.data`: N-body simulators, the ETH/UCY loader, rope rollouts, torch datasets),
  metrics and the training loop behind ``geomanip motion`` (:mod:`~geomanip.motion.training`).

Body fitting (:mod:`geomanip.motion.body`): :class:`ArtEq`, SMPL body fitting from point clouds, its baselines,
the body models and data it trains on, and ``geomanip body`` (:mod:`~geomanip.motion.body.training`).
The trajectory modules never import the body-fitting ones, nor the other way round.

The networks are built from the shared layers of :mod:`geomanip.kernels`. ``motion`` never imports ``envs``;
rope rollouts reach it as files.
"""

from geomanip.motion.body import ArtEq
from geomanip.motion.eqmotion import EqMotion
from geomanip.motion.geotdm import GeoTDM

__all__ = ["ArtEq", "EqMotion", "GeoTDM"]
