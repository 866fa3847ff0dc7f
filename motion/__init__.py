"""Equivariant trajectory models: EqMotion, GeoTDM and ArtEq.

Implemented: :class:`EqMotion` (multi-agent trajectory prediction, :mod:`motion.eqmotion`), its data
(:mod:`motion.data`: N-body simulators, the ETH/UCY loader, torch datasets), metrics and the training loop
behind ``python train.py motion`` (:mod:`motion.training`), and :class:`GeoTDM` (trajectory diffusion with an
equivariant denoiser, :mod:`motion.geotdm`; generation scores in :mod:`motion.generation_metrics`), and
:class:`ArtEq` (SMPL body fitting from point clouds, :mod:`motion.arteq`, on the body models of
:mod:`motion.body`; ``python train.py body``, :mod:`motion.body_training`). Still to come: datasets of rope
rollouts. The networks are built from the shared layers of ``kernels``. ``motion`` never imports ``envs``;
rope rollouts will reach it as files.
"""

from motion.arteq import ArtEq
from motion.eqmotion import EqMotion
from motion.geotdm import GeoTDM

__all__ = ["ArtEq", "EqMotion", "GeoTDM"]
