"""Gymnasium environments on MuJoCo for the geometric manipulation benchmark.

A thin MuJoCo base (:mod:`geomanip.envs.base`) and one task per module. Rigid tasks (registered on import):

- ``RigidSliding-v0``: a gripper fixed to an extruded object slides it to a goal pose.
- ``RigidPushing-v0``: a free gripper pushes an object to a goal position.
- ``RigidInsertion-v0``: a gripper holding a peg inserts it into the matching hole.
- ``RigidInsertionTwoAgents-v0``: two grippers holding a peg insert it into a tilted hole.

Each takes ``shape=`` (a name, ``"train"``, ``"unseen"`` or a list; see :mod:`geomanip.envs.shapes`). Deformable tasks
(ropes and cloth as MuJoCo flexes whose end or corner vertices are the grippers, :mod:`geomanip.envs.deformable`):

- ``RopeClosing-v0``: two grippers lay a 40-link rope around a cylindrical hanger and join its ends.
- ``RopeShaping-v0``: two grippers lay an 80-link rope out as a "W".
- ``ClothHanging-v0``: four corner grippers hang a cloth by its hole on a peg (``holes="train"`` or
  ``"held_out"``; ``all_particles=True`` adds every cloth particle for critics).

Observations are ``Dict`` spaces of world-frame node vectors whose graph layout is ``env.unwrapped.graph_spec``;
``info["is_success"]`` and one ``info["reward_<term>"]`` per reward term come with every step.
:class:`gymnasium.wrappers.FlattenObservation` gives a flat vector for MLP baselines. ``envs`` never imports
``motion``.
"""

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    # Headless machines render offscreen through EGL; MuJoCo reads this when its GL module loads.
    os.environ["MUJOCO_GL"] = "egl"

from gymnasium.envs.registration import register

from geomanip.envs.base import GraphSpec, MujocoGraphEnv
from geomanip.envs.cloth_hanging import ClothHangingEnv
from geomanip.envs.rigid_insertion import RigidInsertionEnv
from geomanip.envs.rigid_insertion_two_agents import RigidInsertionTwoAgentsEnv
from geomanip.envs.rigid_pushing import RigidPushingEnv
from geomanip.envs.rigid_sliding import RigidSlidingEnv
from geomanip.envs.rope_closing import RopeClosingEnv
from geomanip.envs.rope_shaping import RopeShapingEnv

RIGID_TASKS = {
    "RigidSliding-v0": "geomanip.envs.rigid_sliding:RigidSlidingEnv",
    "RigidPushing-v0": "geomanip.envs.rigid_pushing:RigidPushingEnv",
    "RigidInsertion-v0": "geomanip.envs.rigid_insertion:RigidInsertionEnv",
    "RigidInsertionTwoAgents-v0": "geomanip.envs.rigid_insertion_two_agents:RigidInsertionTwoAgentsEnv",
}

DEFORMABLE_TASKS = {
    "RopeClosing-v0": "geomanip.envs.rope_closing:RopeClosingEnv",
    "RopeShaping-v0": "geomanip.envs.rope_shaping:RopeShapingEnv",
    "ClothHanging-v0": "geomanip.envs.cloth_hanging:ClothHangingEnv",
}

for _id, _entry in {**RIGID_TASKS, **DEFORMABLE_TASKS}.items():
    register(id=_id, entry_point=_entry)

__all__ = [
    "ClothHangingEnv",
    "DEFORMABLE_TASKS",
    "GraphSpec",
    "MujocoGraphEnv",
    "RigidInsertionEnv",
    "RigidInsertionTwoAgentsEnv",
    "RigidPushingEnv",
    "RigidSlidingEnv",
    "RIGID_TASKS",
    "RopeClosingEnv",
    "RopeShapingEnv",
]
