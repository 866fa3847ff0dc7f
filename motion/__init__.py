"""Equivariant trajectory models: EqMotion, GeoTDM and ArtEq.

This package will hold multi-agent trajectory prediction (EqMotion), geometric trajectory diffusion
(GeoTDM), SMPL body fitting from point clouds (ArtEq, through ``smplx``) and their datasets. The networks are
built from the shared layers of ``kernels``. ``motion`` never imports ``envs``; rope rollouts reach it as
files on disk. Nothing is implemented here yet: the motion issues build it.
"""
