"""What the two rope tasks share: a rope lying on the table, held at both ends by planar grippers.

The rope is a 1-D MuJoCo flex of ``num_links`` inextensible edges (``num_links + 1`` vertices) whose first and
last vertices are the grippers. Observed rope nodes are the links' midpoints ("links" as in the benchmark's
chain of capsules), so a 40-link rope has 40 link nodes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from geomanip.envs.base import GraphSpec, full_edges, vec_box
from geomanip.envs.deformable import DeformableTaskEnv, path_edges

__all__ = ["RopeTaskEnv"]


class RopeTaskEnv(DeformableTaskEnv):
    """Base of the rope tasks: rope geometry, link nodes, the graph schema and start configurations.

    **Observation** (``Dict`` of world-frame ``[nodes, 3]`` float32 arrays; layout in :attr:`graph_spec`):

    ==================  ============================  =======================================================
    key                 shape                         meaning (unit)
    ==================  ============================  =======================================================
    ``link_pos``        ``[num_links, 3]``            midpoint of each rope link (m)
    ``link_vel``        ``[num_links, 3]``            velocity of each link midpoint (m/s)
    ``gripper_pos``     ``[2, 3]``                    gripper (= rope end) positions (m)
    ``gripper_vel``     ``[2, 3]``                    gripper velocities (m/s; z is always 0)
    ``target_pos``      ``[num_targets, 3]``          target geometry points (m), task-specific
    ``target_dir``      ``[num_targets, 3]``          unit direction at each target point, task-specific
    ==================  ============================  =======================================================

    Node scalars (:attr:`~geomanip.envs.base.GraphSpec.node_scalars`): each link's and each gripper's place along
    the rope, from -1 (the end held by gripper 0) to 1 (gripper 1), and each target point's on the target curve
    where the task's targets follow the rope (:attr:`targets_along_rope`). The vectors alone do not say which
    link is which, and a task that tells each end where to go needs it (a W has a first and a last stroke).

    Edges: ``(link, internal, link)`` joins each link to the links up to two places away along the rope (a
    static stand-in for the benchmark's k = 3 nearest neighbours); ``(link, task, gripper)`` and
    ``(target, task, gripper)`` are complete and directed; ``(gripper, agent, gripper)`` joins the two grippers.
    The benchmark gives its target nodes no edges; we connect them to the grippers, the only nodes that act,
    so that a message-passing actor can see the target at all.
    """

    num_grippers = 2
    gripper_dofs = 2
    flex_name = "rope"
    num_links = 40
    rope_length = 5.0
    rope_radius = 0.025
    rope_density = 0.1  # kg per metre
    rope_friction = 0.5
    edge_damping = 0.01  # damping of relative motion along the edges
    num_targets = 1
    targets_along_rope = False  # whether target i is the goal of the rope's i-th point, evenly spaced end to end

    def __init__(self, horizon: int = 200, linear_scale: float = 5.0, **kwargs: Any) -> None:
        super().__init__(horizon=horizon, linear_scale=linear_scale, **kwargs)
        n = self.num_links
        self.link_length = self.rope_length / n
        self.vertex_names = ["gripper0", *[f"v{i}" for i in range(1, n)], "gripper1"]
        keys = {
            "link": ("link_pos", "link_vel"),
            "gripper": ("gripper_pos", "gripper_vel"),
            "target": ("target_pos", "target_dir"),
        }
        edges = {
            ("link", "internal", "link"): path_edges(n, 2),
            ("link", "task", "gripper"): full_edges(n, 2),
            ("target", "task", "gripper"): full_edges(self.num_targets, 2),
            ("gripper", "agent", "gripper"): full_edges(2, 2, exclude_self=True),
        }
        counts = {"link": n, "gripper": 2, "target": self.num_targets}
        places = {"link": (np.arange(n) + 0.5) / n * 2 - 1, "gripper": np.array([-1.0, 1.0])}
        if self.targets_along_rope:
            places["target"] = np.linspace(-1.0, 1.0, self.num_targets)
        self.graph_spec = GraphSpec(counts, keys, edges, {t: p[:, None] for t, p in places.items()})
        self.observation_space = gym.spaces.Dict({k: vec_box(counts[t]) for t, ks in keys.items() for k in ks})
        self.target_pos = np.zeros((self.num_targets, 3))
        self.target_dir = np.tile([0.0, 0.0, 1.0], (self.num_targets, 1))

    @property
    def gripper_height(self) -> float:
        """Height of the grippers (the rope's ends): just clear of the floor, so the height-locked ends never
        touch it (a height-locked body in contact gets an undetermined normal force and friction)."""
        return self.rope_radius + 0.02

    def spans(self) -> list[tuple[int, int, float]]:
        # The ends can be no farther apart than the rope (measured along its centre line through the lifted ends).
        return [(0, 1, self.rope_length)]

    def rope_xml(self) -> tuple[str, str]:
        """(bodies, flex) MJCF of a straight rope along x centred at the origin."""
        n, h = self.num_links, self.link_length
        mass = self.rope_density * h
        bodies = []
        for i in range(n + 1):
            pos = np.array([i * h - self.rope_length / 2, 0.0, self.rope_radius])
            if i in (0, n):
                pos[2] = self.gripper_height
                bodies.append(self.gripper_body_xml(0 if i == 0 else 1, pos))
            else:
                bodies.append(self.vertex_body_xml(f"v{i}", pos, mass))
        verts = " ".join("0 0 0" for _ in range(n + 1))
        elements = " ".join(f"{i} {i + 1}" for i in range(n))
        flex = (
            f'<flex name="rope" dim="1" body="{" ".join(self.vertex_names)}" vertex="{verts}" element="{elements}" '
            f'radius="{self.rope_radius}" rgba="0.85 0.45 0.2 1">'
            f'<edge damping="{self.edge_damping}"/>'
            f'<contact condim="3" selfcollide="none" friction="{self.rope_friction}"/></flex>'
        )
        return "\n".join(bodies), flex

    def straight_rope(self, centre: np.ndarray, angle: float) -> np.ndarray:
        """Vertex positions ``[num_links + 1, 3]`` of a straight rope through ``centre`` (xy) at ``angle``."""
        s = np.linspace(-self.rope_length / 2, self.rope_length / 2, self.num_links + 1)
        pts = np.zeros((len(s), 3))
        pts[:, 0] = centre[0] + s * np.cos(angle)
        pts[:, 1] = centre[1] + s * np.sin(angle)
        pts[:, 2] = self.rope_radius
        pts[[0, -1], 2] = self.gripper_height
        return pts

    # ------------------------------------------------------------------------------------------------
    def _task_update(self) -> None:
        self._read_vertices()
        p, v = self.vertex_pos, self.vertex_vel
        self.link_pos = 0.5 * (p[1:] + p[:-1])
        self.link_vel = 0.5 * (v[1:] + v[:-1])
        self._compute_errors()

    def _compute_errors(self) -> None:
        """Task errors of the current step (into ``self._errors``, which :meth:`_task_errors` returns)."""
        raise NotImplementedError

    def rope_length_now(self) -> float:
        """Current length of the rope's centre line through its vertices (m)."""
        return float(np.linalg.norm(np.diff(self.vertex_pos, axis=0), axis=1).sum())

    def _task_observation(self) -> dict[str, np.ndarray]:
        obs = {
            "link_pos": self.link_pos,
            "link_vel": self.link_vel,
            "gripper_pos": self.gripper_pos,
            "gripper_vel": self.gripper_vel,
            "target_pos": self.target_pos,
            "target_dir": self.target_dir,
        }
        return {k: v.astype(np.float32) for k, v in obs.items()}

    def _task_errors(self) -> dict[str, float]:
        return self._errors
