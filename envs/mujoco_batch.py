"""The physics of a batch of rigid environments on C MuJoCo: each environment's own model and data.

:class:`~geomanip.envs.vector.RigidVectorEnv` keeps its physics behind a small interface, which this class
and :class:`~geomanip.envs.warp_batch.WarpBatch` (MuJoCo Warp) implement:

- ``load(indices, episodes)``: take the start states of episodes that
  :meth:`~geomanip.envs.rigid.RigidTaskEnv.begin_episode` began;
- ``step(ctrl, frame_skip, max_speed) -> stable``: advance every environment one control step;
- ``qpos``, ``qvel``: the current generalised coordinates ``[B, nq]``, ``[B, nv]`` (float64), in the
  batch's array kind (``asarray`` turns NumPy input into it, ``index`` turns environment indices into an index);
- ``write_back(i, data)``: bring the ``MjData`` of environment ``i`` up to the batch's state (for rendering).
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from geomanip.envs.base import state_slices, step_physics
from geomanip.envs.rigid import RigidEpisode

__all__ = ["MujocoBatch"]


class MujocoBatch:
    """C MuJoCo physics of ``num_envs`` environments: one ``mj_step`` call per environment and control step
    (:func:`~geomanip.envs.base.step_physics`, which also restores an environment whose step diverged).

    The models and data are the sub-environments' own (from their episodes), so the batch steps them.
    Arrays are NumPy, on the CPU.
    """

    device = "cpu"

    def __init__(self, num_envs: int) -> None:
        self.models: list[mujoco.MjModel] = [None] * num_envs  # type: ignore[list-item]
        self.datas: list[mujoco.MjData] = [None] * num_envs  # type: ignore[list-item]
        self.states: np.ndarray | None = None  # [B, nstate] STATE_SPEC states, allocated at the first load

    def load(self, indices: Sequence[int], episodes: Sequence[RigidEpisode]) -> None:
        for i, episode in zip(indices, episodes, strict=True):
            if self.states is None:
                self.states = np.zeros((len(self.models), episode.state.size))
                self._qpos, self._qvel = state_slices(episode.model)
            self.states[i] = episode.state
            self.models[i], self.datas[i] = episode.model, episode.data

    @property
    def qpos(self) -> np.ndarray:
        return self.states[:, self._qpos]

    @property
    def qvel(self) -> np.ndarray:
        return self.states[:, self._qvel]

    def asarray(self, x: np.ndarray) -> np.ndarray:
        return x

    def index(self, indices: Sequence[int]) -> np.ndarray:
        return np.asarray(indices)

    def step(self, ctrl: np.ndarray, frame_skip: int, max_speed: float) -> np.ndarray:
        return step_physics(self.models, self.datas, ctrl, frame_skip, self.states, max_speed)

    def write_back(self, i: int, data: mujoco.MjData) -> None:
        """Nothing to do: the environments' data are the batch's."""

    def close(self) -> None:
        """Nothing to release: the sub-environments own the models and data."""
