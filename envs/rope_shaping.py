"""Rope shaping: two grippers at the ends of a long rope lay it out as a "W"."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from geomanip.envs.base import yaw_matrix
from geomanip.envs.deformable import resample_polyline
from geomanip.envs.rope import RopeTaskEnv

W_ASPECT = 0.25
"""Height of the W (peak to valley) over its width."""


def w_curve(length: float, num: int) -> np.ndarray:
    """The target "W" as ``num`` points ``[num, 2]`` equally spaced by arc length, total length ``length``.

    Analytic: ``y = (h / 2) cos(4 pi x / w)`` for ``x`` in ``[-w/2, w/2]`` (two periods: high at both ends and
    the middle, low in between), ``h = W_ASPECT w``, scaled so that the curve is as long as the rope, then
    resampled by arc length. Centred on its centroid; its ends lie on the x axis.
    """
    x = np.linspace(-0.5, 0.5, 4001)
    pts = np.column_stack([x, 0.5 * W_ASPECT * np.cos(4 * math.pi * x)])
    arc = np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()
    pts = resample_polyline(pts * (length / arc), num)
    return pts - pts.mean(axis=0)


def shape_descriptors(points: np.ndarray, length: float) -> dict[str, np.ndarray]:
    """Descriptors of a planar curve ``[N, 2]`` that do not change when it is moved or turned in the plane.

    - ``turning``: the signed turning angle at each interior point (rad, ``N - 2``);
    - ``axis``: the angle of each segment to the end-to-end axis (rad, ``N - 1``);
    - ``distance``: each point's distance from the curve's centroid over the rope length (``N``).
    """
    seg = np.diff(points, axis=0)
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    chord = points[-1] - points[0]
    wrap = lambda a: (a + math.pi) % (2 * math.pi) - math.pi  # noqa: E731
    return {
        "turning": wrap(np.diff(heading)),
        "axis": wrap(heading - math.atan2(chord[1], chord[0])),
        "distance": np.linalg.norm(points - points.mean(axis=0), axis=1) / length,
    }


def shape_error(points: np.ndarray, target: np.ndarray, length: float) -> dict[str, float]:
    """Mean squared difference of each descriptor between ``points`` and ``target`` (``[N, 2]`` each)."""
    a, b = shape_descriptors(points, length), shape_descriptors(target, length)
    return {k: float(np.mean((a[k] - b[k]) ** 2)) for k in a}


class RopeShapingEnv(RopeTaskEnv):
    r"""Lay a rope out in the shape of a "W" by moving its two ends.

    The rope (80 links, 10 m, 2.5 cm radius, 0.1 kg/m, the benchmark's length) lies on the table; its ends are
    held by grippers moving in the plane 4.5 cm above it. The target is an analytic W (:func:`w_curve`: two
    periods of a cosine, height a quarter of its width) as long as the rope, resampled to 80 points that
    correspond to the 80 links in order. Only the shape counts: the reward compares descriptors that do not
    change when the rope is moved or turned (:func:`shape_descriptors`), so the W may be laid anywhere.
    Physics: 5 ms steps, an action every 4 (50 Hz, as the benchmark's 10 ms x 2), 200 steps (4 s).

    **Action** ``Box(-1, 1, (4,))``: planar velocities ``(vx0, vy0, vx1, vy1) * linear_scale`` (m/s, default
    scale 5) of gripper 0 and gripper 1; clipped to ``[-1, 1]`` (``info["action_clipped"]``).

    **Observation**: see :class:`~geomanip.envs.rope.RopeTaskEnv`; 80 target nodes at the W's points (laid around the
    rope's start centre, turned by the episode's target yaw), ``target_dir`` the W's unit tangent there.

    **Reward** (``E = E_turning + E_axis + E_distance``, the mean squared descriptor differences between the
    links and the W, reported in ``info["error_*"]``; ``k = final_weight`` in the last ``final_steps`` steps
    and ``running_weight`` before; ``Δa``: action change):

    - ``shape``: ``-shape_weight k E``;
    - ``progress``: ``progress_weight (E_{t-1} - E_t)``, how much closer to the W this step brought the rope;
    - ``action_rate``: ``-action_rate_weight |Δa|^2``.

    Why the shape error counts in the final steps and by its change before (``running_weight=0``; with
    ``running_weight=1, progress_weight=0`` the reward is the first version's ``-E`` at every step): the
    straight start is closer to the W than most of the way to it. Bending an end back, which every way to a
    W starts with, raises ``E`` well above the start's and keeps it there for most of the episode (so does
    the scripted controller, before its ``E`` falls below the success threshold), so a per-step ``-E`` ranks
    lying still above making the W (tested). ``progress`` is potential-based: over an episode it
    sums to ``progress_weight (E_0 - E_T)``, the same for every path to the same end shape (``E_0`` is the
    straight start's, the same in every episode), and it credits each step's improvement at once. Undiscounted,
    that is; a learner that discounts by 0.99 weighs the early rise in ``E`` above the later fall, and ranks
    lying still above the scripted controller, so the task's RL settings discount by 0.999.

    **Start** (the benchmark's sampling): a straight rope centred at the origin at an angle drawn from
    ``[-pi/2, -pi/4] ∪ [pi/4, pi/2]``; target yaw ``U(-pi/2, pi/2)``.

    **Success** (``info["is_success"]``): ``E < success_error``, default 0.35. For scale: the straight start
    has ``E`` = 0.71, the best rope made of straight pieces with two bends 0.39 (so success needs a third bend),
    an ideal zigzag of four straight quarters 0.08 and the W itself 0. The scripted controller
    (:func:`geomanip.envs.scripted_deformable.rope_shaping_action`) succeeds on only some seeds (BENCHMARKS.md): an
    inextensible chain without bending stiffness, moved only at its ends on a frictional table, is hard to
    shape, and the middle bend is where it fails.

    **Episode end**: the time limit; an unstable physics step ends it early (``info["unstable"]``).

    **Deviations from the benchmark**: as :class:`~geomanip.envs.rope_closing.RopeClosingEnv`, with 20 N servos (the
    rope is twice as long and heavy); the W's analytic form and so the reward are ours (the benchmark's curve
    is not published).

    **Version history**: v0, first version; before any learning result, ``-E`` at every step became
    ``progress`` (see the reward).
    """

    num_links = 80
    rope_length = 10.0
    num_targets = 80
    targets_along_rope = True
    gripper_force = 20.0  # measured: 10 N grippers swing the 10 m rope too slowly to shape it in 4 s

    def __init__(
        self,
        horizon: int = 200,
        linear_scale: float = 5.0,
        shape_weight: float = 1.0,
        final_weight: float = 5.0,
        final_steps: int = 10,
        running_weight: float = 0.0,
        progress_weight: float = 50.0,
        action_rate_weight: float = 1e-4,
        success_error: float = 0.35,
        **kwargs: Any,
    ) -> None:
        super().__init__(horizon=horizon, linear_scale=linear_scale, **kwargs)
        self.shape_weight, self.final_weight, self.final_steps = shape_weight, final_weight, final_steps
        self.running_weight, self.progress_weight = running_weight, progress_weight
        self.action_rate_weight, self.success_error = action_rate_weight, success_error
        self.w_local = w_curve(self.rope_length, self.num_links)
        self.target_yaw = 0.0
        self._errors: dict[str, float] = {}

    def _task_xml(self, variant: Any) -> str:
        bodies, flex = self.rope_xml()
        # A marker body for the camera to aim at (the origin, where the rope starts), and the W drawn as
        # visual-only sites on a kinematic body that the episode turns by its target yaw.
        sites = "".join(
            f'<site pos="{x:.5g} {y:.5g} 0.002" size="0.03" rgba="0.2 0.8 0.3 0.6"/>' for x, y in self.w_local
        )
        marker = f'<body name="hanger" pos="0 0 0"/>\n<body name="goal" mocap="true">{sites}</body>'
        return self.scene_xml("rope_shaping", marker + "\n" + bodies, flex, camera="0 -7 10")

    def _task_reset(self, options: dict[str, Any]) -> None:
        rng = self.np_random
        angle = rng.uniform(math.pi / 4, math.pi / 2) * (1 if rng.uniform() < 0.5 else -1)
        self.set_vertices(self.straight_rope(np.zeros(2), angle))
        self.target_yaw = rng.uniform(-math.pi / 2, math.pi / 2)
        self.data.mocap_quat[0] = [math.cos(self.target_yaw / 2), 0.0, 0.0, math.sin(self.target_yaw / 2)]
        R = yaw_matrix(self.target_yaw)[:2, :2]
        pts = self.w_local @ R.T
        self.target_pos = np.column_stack([pts, np.full(len(pts), self.rope_radius)])
        tangent = np.gradient(pts, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        self.target_dir = np.column_stack([tangent, np.zeros(len(pts))])

    def _compute_errors(self) -> None:
        # The error before this step, for the progress term (at reset: the last episode's, never used).
        self._shape_before = self._errors.get("shape", 0.0)
        e = shape_error(self.link_pos[:, :2], self.target_pos[:, :2], self.rope_length)
        e["shape"] = e["turning"] + e["axis"] + e["distance"]
        self._errors = e

    def _task_reward_terms(self, action: np.ndarray, prev_action: np.ndarray) -> dict[str, float]:
        k = self.final_weight if self._final_steps(self.final_steps) else self.running_weight
        return {
            "shape": -self.shape_weight * k * self._errors["shape"],
            "progress": self.progress_weight * (self._shape_before - self._errors["shape"]),
            "action_rate": -self.action_rate_weight * self._action_rate(action, prev_action),
        }

    def _task_success(self) -> bool:
        return self._errors["shape"] < self.success_error
