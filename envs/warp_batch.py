"""The physics of a batch of rigid environments on MuJoCo Warp, on a GPU or on Warp's CPU device.

:class:`WarpBatch` implements the batch-physics interface of :mod:`geomanip.envs.mujoco_batch` with MuJoCo
Warp (``pip install "geomanip[warp]"``): many worlds stepped by one set of kernel launches, their state kept on
the device and handed to the task logic as torch tensors (zero-copy views of Warp's arrays).

**Many shapes in one batch: world groups.** A Warp model holds one scene, and each shape is its own scene (the
object's meshes, and the hole's). The batch therefore keeps one Warp model and data per run of consecutive
environments that share a scene: a *world group*. Each environment keeps the shape it was built with
(:class:`~geomanip.envs.vector.RigidVectorEnv` gives them out in contiguous blocks, ``fixed_shapes=True``), as
Isaac Lab's multi-asset scenes do; everything else of an episode (start, goal) is drawn at every reset as on
the CPU. One model holding every shape, with the unused ones switched off per world, would step all the shapes'
geometry in every world; groups step only their own.

**Resets** are sampled by the sub-environments' own code on the CPU (the same seeded draws as the C MuJoCo
environments) and written into the resetting worlds with one indexed copy per state field.

**Precision**: MuJoCo Warp simulates in float32; the batch hands ``qpos`` and ``qvel`` to the task logic as
float64, as the C path does, so that the two differ only by the simulation's rounding.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import torch

from geomanip.envs.base import stable_rows, state_slices
from geomanip.envs.rigid import RigidEpisode

__all__ = ["WarpBatch", "warp_available"]

# Overflows that mean lost contacts or constraints (MuJoCo Warp's OverflowType NEFC, NJMAX_NNZ, BROADPHASE,
# NARROWPHASE, CCD, NVMAX); not the solver's iteration limits, which C MuJoCo meets the same way.
_CAPACITY_OVERFLOWS = 0b10011111

# Fields of a reset state copied from the episode's MjData into its world (everything the next step reads).
_RESET_FIELDS = ("qpos", "qvel", "act", "ctrl", "mocap_pos", "mocap_quat", "qacc_warmstart", "time")


def warp_available() -> str | None:
    """``None`` when MuJoCo Warp can be imported, else the reason it cannot."""
    try:
        import mujoco_warp  # noqa: F401
        import warp  # noqa: F401
    except ImportError as e:
        return f"MuJoCo Warp is not installed ({e}); install it with: pip install 'geomanip[warp]'"
    return None


def _devices(device: str) -> tuple[str, torch.device]:
    """The Warp and torch names of ``device`` (``"cpu"``, ``"cuda"`` or ``"cuda:N"``), checked."""
    import warp as wp

    if device == "cpu":
        return "cpu", torch.device("cpu")
    if device != "cuda" and not device.startswith("cuda:"):
        raise ValueError(f"WarpBatch: device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available() or not wp.is_cuda_available():
        raise ValueError(
            f"WarpBatch: device={device!r} but no CUDA device is available (torch sees "
            f"{torch.cuda.device_count()}, Warp {wp.get_cuda_device_count()}); use device='cpu'"
        )
    torch_device = torch.device(device)
    index = torch_device.index if torch_device.index is not None else torch.cuda.current_device()
    return f"cuda:{index}", torch.device("cuda", index)


@dataclass
class _Group:
    """One world group: a Warp model and data for environments ``lo .. hi - 1``, which share ``model``."""

    model: mujoco.MjModel  # the C model (the sub-environments'), to recognise the group's episodes
    lo: int
    hi: int
    warp_model: Any
    warp_data: Any
    views: dict[str, torch.Tensor]  # zero-copy torch views of the data's state fields, [worlds, ...]
    warm: bool = False  # whether a step has run (and compiled the kernels)
    graph: Any = None  # the captured control step (CUDA only)


class WarpBatch:
    """MuJoCo Warp physics of ``num_envs`` environments, grouped by scene (see the module docstring).

    Args:
        num_envs: number of environments (worlds).
        device: ``"cpu"`` (Warp's CPU device: slow, for tests and debugging), ``"cuda"`` or ``"cuda:N"``.
        nconmax, njmax: contacts allocated per world (pooled over all worlds of a group) and constraint rows per
            world (MuJoCo Warp's own defaults are sized for simple scenes; a step that needs more raises an error
            rather than dropping contacts).

    ``qpos`` and ``qvel`` are float64 torch tensors on ``device``.
    """

    def __init__(self, num_envs: int, device: str = "cpu", nconmax: int = 96, njmax: int = 384) -> None:
        reason = warp_available()
        if reason is not None:
            raise ImportError(f"backend='warp': {reason}")
        import warp as wp

        # Warp reports every kernel module it loads (hundreds for MuJoCo Warp); keep its warnings only.
        wp.config.quiet = True
        if hasattr(wp, "LOG_WARNING"):
            wp.config.log_level = wp.LOG_WARNING
        self.num_envs, self.nconmax, self.njmax = num_envs, nconmax, njmax
        self.warp_device, self.device = _devices(device)
        self.groups: list[_Group] = []
        self.qpos = self.qvel = torch.zeros(0)

    # ------------------------------------------------------------------------------------------------
    def load(self, indices: Sequence[int], episodes: Sequence[RigidEpisode]) -> None:
        if not self.groups:
            if sorted(indices) != list(range(self.num_envs)):
                raise RuntimeError("WarpBatch: the first load must start every environment's episode")
            self._build_groups(indices, episodes)
        by_group: dict[int, list[tuple[int, RigidEpisode]]] = {}
        for i, episode in zip(indices, episodes, strict=True):
            g = self._group_of[i]
            if episode.model is not self.groups[g].model:
                raise ValueError(
                    f"WarpBatch: environment {i} began an episode in another scene ({episode.shape!r}, or another "
                    "hole); on MuJoCo Warp each environment keeps the scene it was built with"
                )
            by_group.setdefault(g, []).append((i, episode))
        for g, items in by_group.items():
            group = self.groups[g]
            worlds = torch.as_tensor([i - group.lo for i, _ in items], device=self.device)
            for name, view in group.views.items():
                values = np.stack([np.asarray(getattr(e.data, name)) for _, e in items])
                view[worlds] = torch.as_tensor(values.reshape(len(items), *view.shape[1:]), device=self.device).to(
                    view.dtype
                )
        # The task logic reads the reset states exactly as C MuJoCo has them (float64), not their float32 copies.
        idx = self.index(indices)
        qpos, qvel = state_slices(episodes[0].model)
        states = torch.as_tensor(np.stack([e.state for e in episodes]), device=self.device)
        self.qpos[idx], self.qvel[idx] = states[:, qpos], states[:, qvel]

    def _build_groups(self, indices: Sequence[int], episodes: Sequence[RigidEpisode]) -> None:
        import mujoco_warp as mjw
        import warp as wp

        order = sorted(zip(indices, episodes, strict=True), key=lambda item: item[0])
        self._group_of = [0] * self.num_envs
        runs: list[tuple[int, int, RigidEpisode]] = []
        for i, episode in order:
            if runs and runs[-1][2].model is episode.model:
                runs[-1] = (runs[-1][0], i + 1, runs[-1][2])
            else:
                runs.append((i, i + 1, episode))
        with wp.ScopedDevice(self.warp_device):
            for lo, hi, episode in runs:
                model = copy.copy(episode.model)
                # MuJoCo Warp has no auto-reset and refuses the flag; divergence is the batch's own check.
                model.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_AUTORESET)
                warp_model = mjw.put_model(model)
                if self.device.type == "cuda":  # the solver's loop in a captured graph needs conditional nodes
                    warp_model.opt.graph_conditional = wp.is_conditional_graph_supported()
                warp_data = mjw.put_data(model, episode.data, nworld=hi - lo, nconmax=self.nconmax, njmax=self.njmax)
                views = {name: wp.to_torch(getattr(warp_data, name)) for name in _RESET_FIELDS}
                self._group_of[lo:hi] = [len(self.groups)] * (hi - lo)
                self.groups.append(_Group(episode.model, lo, hi, warp_model, warp_data, views))
        nq, nv = episodes[0].model.nq, episodes[0].model.nv
        self.qpos = torch.zeros((self.num_envs, nq), dtype=torch.float64, device=self.device)
        self.qvel = torch.zeros((self.num_envs, nv), dtype=torch.float64, device=self.device)

    # ------------------------------------------------------------------------------------------------
    def asarray(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, device=self.device)

    def index(self, indices: Sequence[int]) -> torch.Tensor:
        return torch.as_tensor(list(indices), dtype=torch.int64, device=self.device)

    def step(self, ctrl: torch.Tensor, frame_skip: int, max_speed: float) -> torch.Tensor:
        """Advance every world ``frame_skip`` physics steps with controls ``ctrl`` ``[B, nu]``; returns which
        stayed stable ``[B]`` (an unstable world's ``qpos``/``qvel`` keep their values from before the step, as
        :func:`~geomanip.envs.base.step_physics` restores them; its episode ends and is reset)."""
        import mujoco_warp as mjw
        import warp as wp

        qpos, qvel = [], []
        for group in self.groups:
            group.views["ctrl"].copy_(ctrl[group.lo : group.hi])
        if self.device.type == "cuda":  # Warp launches on its own stream: let torch's writes (controls, resets) land
            torch.cuda.current_stream(self.device).synchronize()
        with wp.ScopedDevice(self.warp_device):
            for group in self.groups:
                if group.graph is not None:
                    wp.capture_launch(group.graph)
                elif self.device.type == "cuda" and group.warm:
                    with wp.ScopedCapture(force_module_load=False) as capture:  # the warm step loaded them
                        for _ in range(frame_skip):
                            mjw.step(group.warp_model, group.warp_data)
                    group.graph = capture.graph
                    wp.capture_launch(group.graph)
                else:  # the first step compiles the kernels, which a capture cannot do
                    for _ in range(frame_skip):
                        mjw.step(group.warp_model, group.warp_data)
                    group.warm = True
                qpos.append(group.views["qpos"])
                qvel.append(group.views["qvel"])
            wp.synchronize_device(self.warp_device)
        self._check_overflow()
        new_qpos, new_qvel = torch.cat(qpos).double(), torch.cat(qvel).double()
        stable = stable_rows(new_qpos, new_qvel, max_speed)
        self.qpos = torch.where(stable[:, None], new_qpos, self.qpos)
        self.qvel = torch.where(stable[:, None], new_qvel, self.qvel)
        return stable

    def _check_overflow(self) -> None:
        """Raise if any world ran out of room for contacts or constraint rows in any substep (MuJoCo Warp then
        drops them; its per-world overflow flags record it)."""
        import mujoco_warp as mjw
        import warp as wp

        flags = torch.cat([wp.to_torch(g.warp_data.overflow) for g in self.groups]) & _CAPACITY_OVERFLOWS
        if bool(flags.any()):
            world = int(torch.nonzero(flags)[0])
            names = [f.name for f in mjw.OverflowType if f.value & _CAPACITY_OVERFLOWS & int(flags[world])]
            raise RuntimeError(
                f"WarpBatch: world {world} overflowed ({', '.join(names)}): a step needed more contacts or constraint "
                f"rows than allocated (nconmax={self.nconmax} per world on average, njmax={self.njmax} per world); "
                "build the environment with larger warp_options"
            )

    def write_back(self, i: int, data: mujoco.MjData) -> None:
        """Copy world ``i``'s ``qpos``, ``qvel`` and mocap poses into ``data`` (then ``mj_kinematics`` it to draw)."""
        group = self.groups[self._group_of[i]]
        w = i - group.lo
        for name in ("qpos", "qvel", "mocap_pos", "mocap_quat"):
            getattr(data, name)[:] = group.views[name][w].cpu().numpy().reshape(getattr(data, name).shape)

    def close(self) -> None:
        self.groups = []
