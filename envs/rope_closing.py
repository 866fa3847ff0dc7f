"""Rope closing: two grippers lay a rope around a cylindrical hanger and bring its ends together."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from geomanip.envs.deformable import winding_number
from geomanip.envs.rope import RopeTaskEnv

HANGER_RADIUS = 0.1
HANGER_HEIGHT = 0.3


class RopeClosingEnv(RopeTaskEnv):
    r"""Close a rope around a vertical cylinder ("hanger") so that its two ends meet on the far side.

    The rope (40 links, 5 m, 2.5 cm radius, 0.1 kg/m: the benchmark's length, in metres as the rigid tasks keep
    the benchmark's metres) lies on the table; its two ends are held by grippers moving in the plane 4.5 cm
    above it. The hanger is a fixed cylinder of radius 10 cm and height 30 cm. Physics: 5 ms steps, an action
    every 4 (50 Hz, as the benchmark's 10 ms x 2), 200 steps (4 s).

    **Action** ``Box(-1, 1, (4,))``: planar velocities ``(vx0, vy0, vx1, vy1) * linear_scale`` (m/s, default
    scale 5) of gripper 0 and gripper 1; clipped to ``[-1, 1]`` (``info["action_clipped"]``).

    **Observation**: see :class:`~geomanip.envs.rope.RopeTaskEnv`; one target node at the hanger's axis at rope height,
    ``target_dir`` its axis ``(0, 0, 1)``.

    **Reward** (``g0, g1``: gripper positions, ``c``: hanger axis, ``l_k``: link midpoints, all in the plane;
    ``Δa``: action change), one ``info["reward_<term>"]`` per term:

    - ``ends``: ``-ends_weight |g0 - g1|`` in the last ``final_steps`` steps, 0 before;
    - ``closing``: ``closing_weight (|g0 - g1|_{t-1} - |g0 - g1|_t)``, how much the ends came together in this
      step (ours, see the deviations);
    - ``centre``: ``-centre_weight |c - mean_k l_k|``;
    - ``speed``: ``-speed_weight mean_k |dl_k/dt|``;
    - ``action_rate``: ``-action_rate_weight |Δa|^2``.

    **Start** (the benchmark's sampling): hanger at ``U(-0.5, 0.5)^2``; the straight rope's centre 1 m from
    the hanger in a direction ``U(-pi, pi)``, the rope across that direction turned by ``U(-pi/4, pi/4)``.

    **Success** (``info["is_success"]``): the ends within ``success_distance`` (default 10 cm, 2% of the
    rope) of each other in the plane, and the hanger inside the loop they close: the winding number of the
    rope's vertices (closed by the gap between the ends) about the hanger's axis is at least 0.5 in magnitude.

    **Episode end**: the time limit; an unstable physics step ends it early (``info["unstable"]``).

    **Deviations from the benchmark**: the rope is an inextensible chain (no bending stiffness); grippers are
    the rope's end vertices (1 kg each), driven by velocity servos limited to 10 N, and a tendon keeps them
    no farther apart than the rope is long (see :mod:`geomanip.envs.deformable`): MuJoCo's soft edge constraints on
    light vertices would otherwise let a hard pull stretch the rope.

    The ``closing`` term is ours. Without it, how far apart the ends are counts only in the last 20 of 200
    steps: an action early in the episode that brings the ends together is credited only through the critic,
    which cannot tell those final steps from the others (time is not observed) and, with the discount of 0.99,
    weighs them by about 0.99^180 from the start. ``closing`` gives that credit at once. It is a potential-based
    term (the change of ``-closing_weight |g0 - g1|``), so it adds no optimum of its own: over an episode it
    sums to ``closing_weight (rope_length - |g0 - g1|_T)`` (the straight start's ends are a rope length apart),
    it never pays for moving the ends apart and together again, and ``closing_weight=0`` restores the
    benchmark's reward.

    **Version history**: v0, first version; ``closing`` added before any learning result.
    """

    num_links = 40
    rope_length = 5.0
    num_targets = 1

    def __init__(
        self,
        horizon: int = 200,
        linear_scale: float = 5.0,
        ends_weight: float = 2.0,
        final_steps: int = 20,
        closing_weight: float = 10.0,
        centre_weight: float = 0.8,
        speed_weight: float = 0.01,
        action_rate_weight: float = 1e-3,
        success_distance: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(horizon=horizon, linear_scale=linear_scale, **kwargs)
        self.ends_weight, self.final_steps, self.closing_weight = ends_weight, final_steps, closing_weight
        self.centre_weight, self.speed_weight, self.action_rate_weight = centre_weight, speed_weight, action_rate_weight
        self.success_distance = success_distance
        self.hanger_pos = np.zeros(3)
        self._errors: dict[str, float] = {}

    def _task_xml(self, variant: Any) -> str:
        bodies, flex = self.rope_xml()
        hanger = (
            f'<body name="hanger" mocap="true"><geom type="cylinder" size="{HANGER_RADIUS} {HANGER_HEIGHT / 2}" '
            f'pos="0 0 {HANGER_HEIGHT / 2}" rgba="0.55 0.6 0.7 1" friction="0.3 0.005 0.0001"/></body>'
        )
        return self.scene_xml("rope_closing", hanger + "\n" + bodies, flex, camera="0 -3 3.6")

    def _task_reset(self, options: dict[str, Any]) -> None:
        rng = self.np_random
        self.hanger_pos = np.array([*rng.uniform(-0.5, 0.5, size=2), 0.0])
        self.data.mocap_pos[0] = self.hanger_pos
        side = rng.uniform(-math.pi, math.pi)
        centre = self.hanger_pos[:2] + 1.0 * np.array([math.cos(side), math.sin(side)])
        angle = side + math.pi / 2 + rng.uniform(-math.pi / 4, math.pi / 4)
        self.set_vertices(self.straight_rope(centre, angle))
        self.target_pos = np.array([[self.hanger_pos[0], self.hanger_pos[1], self.rope_radius]])

    def _compute_errors(self) -> None:
        # The ends' distance before this step, for the closing term (at reset: the last episode's, never used).
        self._ends_before = self._errors.get("ends", 0.0)
        g = self.gripper_pos[:, :2]
        c = self.hanger_pos[:2]
        self._errors = {
            "ends": float(np.linalg.norm(g[0] - g[1])),
            "centre": float(np.linalg.norm(c - self.link_pos[:, :2].mean(axis=0))),
            "winding": winding_number(self.vertex_pos[:, :2], c),
        }

    def _task_reward_terms(self, action: np.ndarray, prev_action: np.ndarray) -> dict[str, float]:
        e = self._errors
        final = self._final_steps(self.final_steps)
        return {
            "ends": -self.ends_weight * e["ends"] if final else 0.0,
            "closing": self.closing_weight * (self._ends_before - e["ends"]),
            "centre": -self.centre_weight * e["centre"],
            "speed": -self.speed_weight * float(np.linalg.norm(self.link_vel[:, :2], axis=1).mean()),
            "action_rate": -self.action_rate_weight * self._action_rate(action, prev_action),
        }

    def _task_success(self) -> bool:
        e = self._errors
        return e["ends"] < self.success_distance and abs(e["winding"]) >= 0.5
