"""Gymnasium environments on MuJoCo for the geometric manipulation benchmark.

A thin MuJoCo base (:mod:`geomanip.envs.base`) and one task per module, registered on import under the
``geomanip/`` namespace (``gym.make("geomanip/RigidInsertion-v0")``). Rigid tasks:

- ``geomanip/RigidSliding-v0``: a gripper fixed to an extruded object slides it to a goal pose.
- ``geomanip/RigidPushing-v0``: a free gripper pushes an object to a goal position.
- ``geomanip/RigidInsertion-v0``: a gripper holding a peg inserts it into the matching hole.
- ``geomanip/RigidInsertionTwoAgents-v0``: two grippers holding a peg insert it into a tilted hole.

Each takes ``shape=`` (a name, ``"train"``, ``"unseen"`` or a list; see :mod:`geomanip.envs.shapes`). Deformable tasks
(ropes and cloth as MuJoCo flexes whose end or corner vertices are the grippers, :mod:`geomanip.envs.deformable`):

- ``geomanip/RopeClosing-v0``: two grippers lay a 40-link rope around a cylindrical hanger and join its ends.
- ``geomanip/RopeShaping-v0``: two grippers lay an 80-link rope out as a "W".
- ``geomanip/ClothHanging-v0``: four corner grippers hang a cloth by its hole on a peg (``holes="train"`` or
  ``"held_out"``; ``all_particles=True`` adds every cloth particle for critics).

The bare ids (``"RigidInsertion-v0"``, ...) stay registered as aliases of the same environments;
:data:`RIGID_TASKS` and :data:`DEFORMABLE_TASKS` are keyed by them and :data:`TASK_IDS` maps each to its
namespaced id.

**Episode length.** Every environment has a ``horizon`` (constructor keyword): it truncates itself after that
many steps, and the reward's final-step terms fall on its last steps. The registered ``max_episode_steps`` is the
task's default horizon, so :class:`~gymnasium.wrappers.TimeLimit` and the environment agree. Gymnasium's
``make`` keeps ``max_episode_steps`` for its ``TimeLimit`` and does not hand it to the constructor:
``gym.make(id, max_episode_steps=N)`` truncates after ``N`` steps for ``N`` up to the horizon, with the
final-step terms still placed at the horizon, and a larger ``N`` has no effect. To change the episode length,
pass both: ``gym.make(id, horizon=N, max_episode_steps=N)`` (``horizon`` alone stays capped by the registered
limit). ``gym.make_vec`` of a rigid task does hand ``max_episode_steps`` to its vector entry point, which uses it
as the horizon unless ``horizon`` is given (:class:`~geomanip.envs.vector.GymRigidVectorEnv`).

**Vector environments.** The rigid tasks register a ``vector_entry_point``: ``gym.make_vec(id, num_envs=N)``
returns a :class:`~geomanip.envs.vector.GymRigidVectorEnv`, the batched
:class:`~geomanip.envs.vector.RigidVectorEnv` (SB3's ``VecEnv``, used for training) behind Gymnasium's
``VectorEnv`` interface with same-step autoreset. The deformable tasks vectorize with ``"sync"`` or ``"async"``.

**Observations** are ``Dict`` spaces of world-frame node vectors whose graph layout is ``env.unwrapped.graph_spec``;
:func:`to_hetero_data` makes a PyTorch Geometric ``HeteroData`` of one observation, or a ``Batch`` of a batched one
(:mod:`geomanip.envs.graph_data`). ``info["is_success"]`` and one ``info["reward_<term>"]`` per reward term come
with every step. :class:`gymnasium.wrappers.FlattenObservation` gives a flat vector for MLP baselines.
``metadata["render_fps"]`` is the control rate, ``1 / env.unwrapped.dt``.

**Rendering.** Importing this package on a headless Linux machine (no ``DISPLAY`` or ``WAYLAND_DISPLAY``) sets
``MUJOCO_GL=egl`` unless ``MUJOCO_GL`` is already set, so ``render_mode="rgb_array"`` works offscreen; on other
platforms MuJoCo's default backend is kept (EGL exists only on Linux).

``envs`` never imports ``motion``.
"""

import inspect
import os
import sys


def _headless_linux() -> bool:
    """Linux without a display server: MuJoCo's default GLFW backend would abort, EGL renders offscreen."""
    on_display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    return sys.platform.startswith("linux") and not on_display


if "MUJOCO_GL" not in os.environ and _headless_linux():
    # MuJoCo reads this when its GL module loads, hence before the imports below. MuJoCo accepts "egl" only
    # on Linux; macOS and Windows keep their default (CGL, WGL through GLFW).
    os.environ["MUJOCO_GL"] = "egl"

from gymnasium.envs.registration import register  # noqa: E402

from geomanip.envs.base import GraphSpec, MujocoGraphEnv  # noqa: E402
from geomanip.envs.cloth_hanging import ClothHangingEnv  # noqa: E402
from geomanip.envs.graph_data import to_hetero_data  # noqa: E402
from geomanip.envs.rigid_insertion import RigidInsertionEnv  # noqa: E402
from geomanip.envs.rigid_insertion_two_agents import RigidInsertionTwoAgentsEnv  # noqa: E402
from geomanip.envs.rigid_pushing import RigidPushingEnv  # noqa: E402
from geomanip.envs.rigid_sliding import RigidSlidingEnv  # noqa: E402
from geomanip.envs.rope_closing import RopeClosingEnv  # noqa: E402
from geomanip.envs.rope_shaping import RopeShapingEnv  # noqa: E402

NAMESPACE = "geomanip"
"""Gymnasium namespace of the task ids: ``geomanip/<Task>-v0``."""

RIGID_TASKS = {
    "RigidSliding-v0": "geomanip.envs.rigid_sliding:RigidSlidingEnv",
    "RigidPushing-v0": "geomanip.envs.rigid_pushing:RigidPushingEnv",
    "RigidInsertion-v0": "geomanip.envs.rigid_insertion:RigidInsertionEnv",
    "RigidInsertionTwoAgents-v0": "geomanip.envs.rigid_insertion_two_agents:RigidInsertionTwoAgentsEnv",
}
"""Rigid tasks: bare id to entry point."""

DEFORMABLE_TASKS = {
    "RopeClosing-v0": "geomanip.envs.rope_closing:RopeClosingEnv",
    "RopeShaping-v0": "geomanip.envs.rope_shaping:RopeShapingEnv",
    "ClothHanging-v0": "geomanip.envs.cloth_hanging:ClothHangingEnv",
}
"""Deformable tasks: bare id to entry point."""

TASK_IDS = {bare: f"{NAMESPACE}/{bare}" for bare in (*RIGID_TASKS, *DEFORMABLE_TASKS)}
"""Every task's bare id to its namespaced id (both are registered)."""

_CLASSES = {
    "RigidSliding-v0": RigidSlidingEnv,
    "RigidPushing-v0": RigidPushingEnv,
    "RigidInsertion-v0": RigidInsertionEnv,
    "RigidInsertionTwoAgents-v0": RigidInsertionTwoAgentsEnv,
    "RopeClosing-v0": RopeClosingEnv,
    "RopeShaping-v0": RopeShapingEnv,
    "ClothHanging-v0": ClothHangingEnv,
}

# Strings name the vector entry points: the module (SB3, hence PyTorch) loads only when make_vec needs it, and
# specs with callables cannot be written as JSON.
_VECTOR_ENTRY_POINTS = {
    "RigidSliding-v0": "geomanip.envs.vector:rigid_sliding_vector_env",
    "RigidPushing-v0": "geomanip.envs.vector:rigid_pushing_vector_env",
    "RigidInsertion-v0": "geomanip.envs.vector:rigid_insertion_vector_env",
    "RigidInsertionTwoAgents-v0": "geomanip.envs.vector:rigid_insertion_two_agents_vector_env",
}


def bare_id(task: str) -> str:
    """``RigidSliding-v0`` for ``geomanip/RigidSliding-v0`` and ``RigidSliding-v0`` alike."""
    return task.removeprefix(f"{NAMESPACE}/")


def default_horizon(task: str) -> int:
    """The default ``horizon`` of a task (bare or namespaced id), read from its constructor's signature: the
    registered ``max_episode_steps``."""
    bare = bare_id(task)
    if bare not in _CLASSES:
        raise KeyError(f"unknown task {task!r}; tasks: {', '.join(TASK_IDS.values())}")
    return inspect.signature(_CLASSES[bare]).parameters["horizon"].default


for _bare, _entry in {**RIGID_TASKS, **DEFORMABLE_TASKS}.items():
    for _id in (TASK_IDS[_bare], _bare):
        register(
            id=_id,
            entry_point=_entry,
            max_episode_steps=default_horizon(_bare),
            vector_entry_point=_VECTOR_ENTRY_POINTS.get(_bare),
        )

__all__ = [
    "ClothHangingEnv",
    "DEFORMABLE_TASKS",
    "GraphSpec",
    "MujocoGraphEnv",
    "NAMESPACE",
    "RigidInsertionEnv",
    "RigidInsertionTwoAgentsEnv",
    "RigidPushingEnv",
    "RigidSlidingEnv",
    "RIGID_TASKS",
    "RopeClosingEnv",
    "RopeShapingEnv",
    "TASK_IDS",
    "bare_id",
    "default_horizon",
    "to_hetero_data",
]
