"""geomanip: geometric manipulation and motion on MuJoCo, as one installable namespace.

The subpackages are imported on demand, so ``import geomanip`` is cheap:

- :mod:`geomanip.kernels`: the message-passing kernels everything else shares.
- :mod:`geomanip.envs`: Gymnasium environments whose observations are heterogeneous graphs (``import
  geomanip.envs`` registers the ``geomanip/...`` task ids).
- :mod:`geomanip.policies`: equivariant graph policies and baselines, trained with Stable-Baselines3.
- :mod:`geomanip.motion`: equivariant trajectory models and SMPL body fitting.
- :mod:`geomanip.cli`: the ``geomanip`` command (``train``, ``evaluate``, ``motion``, ``body``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geomanip")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
