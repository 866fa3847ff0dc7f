"""Scripted controllers that solve the deformable tasks from privileged state (true vertex positions).

Like :mod:`geomanip.envs.scripted` for the rigid tasks: they show that each task is solvable within its horizon, give
the tests physical checks and serve as demonstrators (``python -m geomanip.envs.rollouts``). Each takes the unwrapped
environment and returns an action in ``[-1, 1]``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "RopeShapingController",
    "cloth_hanging_action",
    "rope_closing_action",
    "rope_shaping_action",
    "scripted_deformable_controller",
]


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _towards(delta: np.ndarray, gain: float, top_speed: float, scale: float) -> np.ndarray:
    """A velocity command ``gain * delta`` capped at ``top_speed`` (m/s), in action units."""
    v = gain * delta
    n = np.linalg.norm(v)
    if n > top_speed:
        v *= top_speed / n
    return v / scale


def rope_closing_action(env) -> np.ndarray:
    """Carry both ends around the hanger on a circle, one each way, to meet on the far side.

    The circle's radius leaves the rope some slack (its circumference is 85% of the rope), so the ends can
    meet without pulling the rope tight against the hanger.
    """
    c = env.hanger_pos[:2]
    g = env.gripper_pos[:, :2]
    radius = 0.85 * env.rope_length / (2 * math.pi)
    middle = env.link_pos[env.num_links // 2, :2]
    far = math.atan2(*(c - middle)[::-1])  # the side of the hanger away from the rope's middle
    actions = []
    for i in range(2):
        rel = g[i] - c
        theta = math.atan2(rel[1], rel[0])
        to_go = _wrap(far - theta)
        other = _wrap(far - math.atan2(*(g[1 - i] - c)[::-1]))
        # Each end goes round on its own side; once past the far point it would come back the short way.
        if abs(to_go) < 0.35 and abs(other) < 0.35:
            # Both near the meeting point: close the gap directly.
            target = c + radius * np.array([math.cos(far), math.sin(far)])
            actions.append(_towards(target - g[i], 6.0, 2.0, env.linear_scale))
            continue
        step = float(np.clip(to_go, -0.5, 0.5))
        target_angle = theta + step
        target = c + radius * np.array([math.cos(target_angle), math.sin(target_angle)])
        actions.append(_towards(target - g[i], 6.0, 2.5, env.linear_scale))
    return np.clip(np.concatenate(actions), -1, 1)


def _cloth_frame(psi: float) -> np.ndarray:
    """Rotation taking cloth (u, v, normal) to a vertical sheet facing the peg: u, v turned by ``psi`` within
    the world x-z plane, the normal along -y (towards the peg's tip side)."""
    c, s = math.cos(psi), math.sin(psi)
    base = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # columns: e_x, e_z, -e_y
    return base @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def cloth_hanging_action(env) -> np.ndarray:
    """Hold the cloth flat in a vertical plane with its hole on the peg's axis in front of the tip, then slide
    it along the axis onto the peg.

    The in-plane turn of the sheet is picked (from 16) to keep the corners' travel short and above the floor.
    Feedback on the hole centre corrects the small sag of the sheet.
    """
    from geomanip.envs.cloth_hanging import PEG_HALF_LENGTH

    mesh = env.mesh
    corners_uv = mesh.uv[mesh.corners]
    g = env.gripper_pos
    e = env.errors()
    threading = e["axial"] > -PEG_HALF_LENGTH - 0.03 or e["radial"] < 0.025
    depth = 0.0 if threading else -PEG_HALF_LENGTH - 0.15
    goal = env.hanger_pos + depth * env.axis  # where the hole's centre should be
    best, best_cost = None, np.inf
    for psi in np.linspace(0, 2 * math.pi, 16, endpoint=False):
        R = _cloth_frame(psi)
        centre = goal - R[:, :2] @ mesh.hole_uv
        target = centre + corners_uv @ R[:, :2].T
        cost = float(((target - g) ** 2).sum()) + 100.0 * float(np.clip(0.05 - target[:, 2], 0, None).sum())
        if cost < best_cost:
            best, best_cost = target, cost
    # Shift the sheet by the hole's observed error across the axis (the sheet sags a little under gravity).
    err = goal - env.hole_centre
    err -= (err @ env.axis) * env.axis
    best = best + 1.2 * err
    return np.clip(np.concatenate([_towards(best[k] - g[k], 8.0, 1.8, env.linear_scale) for k in range(4)]), -1, 1)


def _heading(v: np.ndarray) -> float:
    return math.atan2(v[1], v[0])


def _about(g: np.ndarray, pivot: np.ndarray, radius: float, goal: float, max_step: float) -> np.ndarray:
    """A point on the circle of ``radius`` about ``pivot``, turned from ``g``'s bearing towards bearing ``goal``
    by at most ``max_step`` rad: the next waypoint for swinging a rope segment about ``pivot``."""
    bearing = _heading(g - pivot)
    step = float(np.clip(_wrap(goal - bearing), -max_step, max_step))
    return pivot + radius * np.array([math.cos(bearing + step), math.sin(bearing + step)])


def rope_shaping_action(env, phase: int) -> tuple[np.ndarray, int]:
    """Lay a right-angled zigzag (the W up to rounding) in three swings, keeping the first half's middle link
    segment as the reference:

    1. gripper 1 swings the last quarter about the three-quarter point until it is square to the third quarter;
    2. pulling on that square arm, it swings the second half about the middle by -90° (the W's middle peak),
       while gripper 0 swings the first quarter about the quarter point to +90° (the first valley);
    3. gripper 1 swings the last quarter back round the three-quarter point to +90° (the second valley).

    Swinging a short end segment about a point of the rope works on a frictional table (the rest holds the
    pivot); the middle bend is the hard one, and the result is rounder than the W on some starts (see the
    success rate in the task's docstring). ``phase`` is the swing (0, 1 or 2) the episode is on; returns the action
    and the phase for the next step. :class:`RopeShapingController` keeps the phase from step to step.
    """
    if phase not in (0, 1, 2):
        raise ValueError(f"rope_shaping_action: phase must be 0, 1 or 2, got {phase!r}")
    p = env.vertex_pos[:, :2]
    n = env.num_links
    a, b = p[0], p[-1]
    q1, mid, q3 = p[n // 4], p[n // 2], p[3 * n // 4]
    h2, h3 = _heading(mid - q1), _heading(q3 - mid)
    arm = 0.97 * env.rope_length / 4
    top = 4.0
    target_a = _about(a, q1, arm, h2 + math.pi / 2, 0.4)
    if phase == 0:
        target_b = _about(b, q3, arm, h3 - math.pi / 2, 0.4)
        if abs(_wrap(h3 - math.pi / 2 - _heading(b - q3))) < 0.1:
            phase = 1
    elif phase == 1:
        goal = h2 - math.pi / 2
        step = float(np.clip(_wrap(goal - h3), -0.3, 0.3))
        bearing = h3 + step - math.pi / 4
        target_b = mid + math.sqrt(2) * arm * np.array([math.cos(bearing), math.sin(bearing)])
        if abs(_wrap(goal - h3)) < 0.1:
            phase = 2
    else:
        target_b = _about(b, q3, arm, h3 + math.pi / 2, 0.4)
    scale = env.linear_scale
    actions = [_towards(target_a - a, 8.0, top, scale), _towards(target_b - b, 8.0, top, scale)]
    return np.clip(np.concatenate(actions), -1, 1), phase


class RopeShapingController:
    """:func:`rope_shaping_action` with its memory: ``action = controller(env)`` at every step of an episode.

    The one scripted controller with state (which swing the episode is on), so it is an object: one per
    environment, kept across that environment's episodes (the phase restarts at ``t = 0``). Called with a second
    environment in the middle of its episode it raises, rather than carry one rope's phase over to another.
    """

    def __init__(self) -> None:
        self.phase = 0
        self._env: weakref.ref | None = None

    def __call__(self, env) -> np.ndarray:
        if env.t == 0 or self._env is None:
            self.phase, self._env = 0, weakref.ref(env)
        elif self._env() is not env:
            raise ValueError(
                "RopeShapingController: called with a second environment in the middle of its episode; "
                "use one controller per environment (scripted_deformable_controller)"
            )
        action, self.phase = rope_shaping_action(env, self.phase)
        return action


# A fresh controller per task: a function for the stateless ones.
_CONTROLLERS: dict[str, Callable[[], Callable[[Any], np.ndarray]]] = {
    "RopeClosing-v0": lambda: rope_closing_action,
    "RopeShaping-v0": RopeShapingController,
    "ClothHanging-v0": lambda: cloth_hanging_action,
}


def scripted_deformable_controller(task: str) -> Callable[[Any], np.ndarray]:
    """A new scripted controller of a deformable task (a bare id): ``action = controller(env.unwrapped)`` at each
    step. Use one per environment: rope shaping's remembers its episode's phase (:class:`RopeShapingController`)."""
    if task not in _CONTROLLERS:
        raise ValueError(f"no scripted controller for {task!r}; deformable tasks: {', '.join(_CONTROLLERS)}")
    return _CONTROLLERS[task]()
