"""Cloth hanging: four corner grippers put a cloth's hole over a horizontal hanger peg."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from geomanip.envs.base import GraphSpec, full_edges, vec_box, yaw_matrix
from geomanip.envs.deformable import DeformableTaskEnv

GRID = 15
"""Vertices per side of the cloth grid."""

CLOTH_SIZE = 1.0
"""Side of the square cloth (m)."""

SPACING = CLOTH_SIZE / (GRID - 1)

PEG_RADIUS = 0.03
PEG_HALF_LENGTH = 0.15
"""The hanger peg runs along the world y axis from its tip at ``-PEG_HALF_LENGTH`` to its base at
``+PEG_HALF_LENGTH`` (relative to the hanger position), where a vertical post carries it."""


def _hole_positions() -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """20 training and 20 held-out hole centres (grid indices), a fixed draw from the interior of the cloth.

    Candidates keep the hole's ring of vertices at least one cell from the border (indices 2 to 12), so every
    hole is a closed loop of cloth.
    """
    candidates = [(i, j) for j in range(2, GRID - 2) for i in range(2, GRID - 2)]
    order = np.random.default_rng(2025).permutation(len(candidates))
    picked = [candidates[k] for k in order[:40]]
    return tuple(picked[:20]), tuple(picked[20:])


TRAIN_HOLES, HELD_OUT_HOLES = _hole_positions()
ALL_HOLES = TRAIN_HOLES + HELD_OUT_HOLES
CORNERS = ((0, 0), (GRID - 1, 0), (GRID - 1, GRID - 1), (0, GRID - 1))
"""Grid indices of the corners held by grippers 0 to 3."""


def resolve_holes(holes: str | tuple[int, int] | list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """The hole positions named by ``holes``: ``"train"``, ``"held_out"``, ``"all"``, one ``(i, j)`` or a list."""
    if isinstance(holes, str):
        table = {"train": TRAIN_HOLES, "held_out": HELD_OUT_HOLES, "all": ALL_HOLES}
        if holes not in table:
            raise ValueError(f"holes must be 'train', 'held_out', 'all' or (i, j) positions, got {holes!r}")
        return table[holes]
    items = [tuple(holes)] if len(holes) == 2 and all(isinstance(v, int | np.integer) for v in holes) else holes
    out = []
    for h in items:
        h = tuple(int(v) for v in h)
        if h not in ALL_HOLES:
            raise ValueError(f"hole {h} is not one of the 40 hole positions (envs.cloth_hanging.ALL_HOLES)")
        out.append(h)
    if not out:
        raise ValueError("holes must name at least one hole position")
    return tuple(out)


def grid_uv(i: int, j: int) -> np.ndarray:
    """Flat cloth coordinates (m) of grid vertex ``(i, j)``, centred on the cloth."""
    return np.array([i * SPACING - CLOTH_SIZE / 2, j * SPACING - CLOTH_SIZE / 2])


class ClothMesh:
    """The cloth's vertices (the grid minus the hole's centre vertex), triangles, edges and hole ring.

    With ``hole=None``, the full grid (225 vertices), whose edges are the static particle graph.
    """

    def __init__(self, hole: tuple[int, int] | None) -> None:
        self.hole = hole
        self.ij = [(i, j) for j in range(GRID) for i in range(GRID) if (i, j) != hole]
        index = {v: k for k, v in enumerate(self.ij)}
        self.uv = np.array([grid_uv(i, j) for i, j in self.ij])
        self.names = [f"gripper{CORNERS.index(v)}" if v in CORNERS else f"p{v[0]}_{v[1]}" for v in self.ij]
        tris = []
        for j in range(GRID - 1):
            for i in range(GRID - 1):
                a, b, c, d = (i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)
                # Alternate the diagonal so the mesh has no preferred shear direction.
                pair = ((a, b, c), (a, c, d)) if (i + j) % 2 == 0 else ((a, b, d), (b, c, d))
                tris.extend(t for t in pair if hole not in t)
        self.triangles = np.array([[index[v] for v in t] for t in tris])
        edges = {tuple(sorted((t[k], t[(k + 1) % 3]))) for t in self.triangles.tolist() for k in range(3)}
        self.edges = np.array(sorted(edges))
        self.rest = np.linalg.norm(self.uv[self.edges[:, 0]] - self.uv[self.edges[:, 1]], axis=1)
        self.corners = np.array([index[c] for c in CORNERS])
        if hole is None:
            return
        hi, hj = hole
        ring = [(hi - 1, hj - 1), (hi, hj - 1), (hi + 1, hj - 1), (hi + 1, hj), (hi + 1, hj + 1), (hi, hj + 1)]
        ring += [(hi - 1, hj + 1), (hi - 1, hj)]
        self.ring = np.array([index[v] for v in ring])  # counter-clockwise in (u, v)
        self.hole_uv = grid_uv(*hole)
        # Grid index (i + GRID j) -> vertex index; the hole's own entry points at vertex 0 (overwritten by the
        # ring's mean wherever all grid nodes are observed).
        self.grid_to_vertex = np.array([index.get((k % GRID, k // GRID), 0) for k in range(GRID * GRID)])
        self.hole_grid_index = hi + GRID * hj


FULL_GRID = ClothMesh(None)


class ClothHangingEnv(DeformableTaskEnv):
    r"""Hang a cloth with a hole on a horizontal peg: move the hole over the peg's tip and onto it.

    The cloth is a 15 x 15-vertex grid, 1 m square, 0.2 kg, with one hole: the vertex at the hole's centre and
    its eight triangles are removed, leaving a square hole of 2 x 2 cells (14.3 cm side) bounded by a ring of
    eight vertices; 224 vertices remain. It is an inextensible sheet (edge-length constraints, no bending
    stiffness, no self-collision). Grippers are the four corner vertices, moved in 3-D by velocity servos and
    gravity-compensated. The hanger is a peg of radius 3 cm and length 30 cm along the world y axis, carried
    at its base by a vertical post. Physics: 5 ms steps, an action every 4 (50 Hz, as the benchmark's 10 ms x 2),
    100 steps (2 s).

    **Holes**: 40 positions of the hole's centre on the grid, a fixed draw from the interior (indices 2-12):
    ``holes="train"`` (20, default), ``"held_out"`` (20 others, for generalisation), ``"all"``, or explicit
    ``(i, j)`` positions from ``ALL_HOLES``. A hole is drawn per episode with the seeded generator, or set by
    ``reset(options={"hole": (i, j)})``.

    **Action** ``Box(-1, 1, (12,))``: 3-D velocities of grippers 0-3 ``* linear_scale`` (m/s, default 2),
    ``(vx0, vy0, vz0, vx1, ...)``; clipped to ``[-1, 1]`` (``info["action_clipped"]``). Gripper ``k`` holds
    corner ``CORNERS[k]``.

    **Observation** (``Dict`` of world-frame ``[nodes, 3]`` float32 arrays; layout in :attr:`graph_spec`):

    ==================  ========  ==================================================================
    key                 shape     meaning (unit)
    ==================  ========  ==================================================================
    ``hole_pos``        ``[8, 3]``  the vertices around the hole (m)
    ``hole_vel``        ``[8, 3]``  their velocities (m/s)
    ``gripper_pos``     ``[4, 3]``  gripper (= corner) positions (m)
    ``gripper_vel``     ``[4, 3]``  gripper velocities (m/s)
    ``target_pos``      ``[2, 3]``  the peg's tip and base on its axis (m)
    ``target_dir``      ``[2, 3]``  the peg's axis ``(0, 1, 0)`` at both
    ``particle_pos``    ``[225, 3]``  every grid node, ``i + 15 j`` (only with ``all_particles=True``)
    ``particle_vel``    ``[225, 3]``  their velocities (only with ``all_particles=True``)
    ==================  ========  ==================================================================

    Edges: ``(hole, internal, hole)`` complete (as the benchmark's cloth graph); ``(hole, task, gripper)`` and
    ``(target, task, gripper)`` complete and directed; ``(gripper, agent, gripper)`` complete without
    self-loops. With ``all_particles=True`` (the benchmark's critic view of all 225 particles):
    ``(particle, internal, particle)`` along every edge of the full grid mesh in both directions and
    ``(particle, task, gripper)`` complete. The node of the removed vertex stands for the hole (its ring's
    mean position and velocity), so the schema is the same for every hole. The benchmark uses the 10 vertices
    nearest the hole; our hole's boundary is its ring of 8.

    **Reward** (``c``: hole centre = mean of its ring, ``n``: hole normal, ``p``: peg midpoint, ``a``: peg
    axis, ``k = final_weight`` in the last ``final_steps`` steps and 1 before; ``Δa``: action change):

    - ``distance``: ``-distance_weight k |c - p|``;
    - ``alignment``: ``-distance_weight k alignment_weight (1 - |n . a|)``;
    - ``speed``: ``-speed_weight mean_i |v_i|`` over all cloth vertices;
    - ``stretch``: ``-stretch_weight mean_e |l_e / l0_e - 1|`` over mesh edges;
    - ``action_rate``: ``-action_rate_weight |Δa|^2``.

    **Start** (ours; the benchmark rotates its grippers about the hanger): hanger (peg midpoint) at
    ``(U(-0.5, 0.5), 0, 1.3 + U(-0.5, 0.5))``; the flat cloth held horizontally with its centre at
    ``(x_h + U(-0.3, 0.3), -1.1 + U(-0.15, 0.15), z_h + U(-0.2, 0.3))``, turned by yaw ``U(-pi, pi)`` and tilted
    by ``U(-pi/8, pi/8)`` about x, in front of the peg's tip.

    **Success** (``info["is_success"]``): the hole centre within ``success_radius`` (default 4 cm, the hole's
    half-width minus the peg's radius) of the peg's axis and between its tip and base along it, with the cloth
    facing along the peg (``|n . a| > cos 45°``): the peg then passes through the hole.

    **Episode end**: the time limit; an unstable physics step ends it early (``info["unstable"]``).

    **Version history**: v0, first version.
    """

    num_grippers = 4
    gripper_dofs = 3
    flex_name = "cloth"
    cloth_mass = 0.2
    cloth_radius = 0.01  # collision thickness of the sheet (m)
    edge_damping = 0.01

    def __init__(
        self,
        holes: str | tuple[int, int] | list[tuple[int, int]] = "train",
        all_particles: bool = False,
        horizon: int = 100,
        linear_scale: float = 2.0,
        distance_weight: float = 0.8,
        alignment_weight: float = 0.1,
        final_weight: float = 5.0,
        final_steps: int = 2,
        speed_weight: float = 0.2,
        stretch_weight: float = 1.0,
        action_rate_weight: float = 2e-3,
        success_radius: float = 0.04,
        **kwargs: Any,
    ) -> None:
        super().__init__(horizon=horizon, linear_scale=linear_scale, **kwargs)
        self.holes = resolve_holes(holes)
        self.all_particles = all_particles
        self.distance_weight, self.alignment_weight = distance_weight, alignment_weight
        self.final_weight, self.final_steps = final_weight, final_steps
        self.speed_weight, self.stretch_weight = speed_weight, stretch_weight
        self.action_rate_weight = action_rate_weight
        self.success_radius = success_radius
        self.mesh = ClothMesh(self.holes[0])
        keys = {
            "hole": ("hole_pos", "hole_vel"),
            "gripper": ("gripper_pos", "gripper_vel"),
            "target": ("target_pos", "target_dir"),
        }
        counts = {"hole": 8, "gripper": 4, "target": 2}
        edges = {
            ("hole", "internal", "hole"): full_edges(8, 8, exclude_self=True),
            ("hole", "task", "gripper"): full_edges(8, 4),
            ("target", "task", "gripper"): full_edges(2, 4),
            ("gripper", "agent", "gripper"): full_edges(4, 4, exclude_self=True),
        }
        if all_particles:
            # All 225 grid nodes, numbered i + 15 j, the same for every hole: the removed vertex's node stands
            # for the hole (the mean of its ring), so the schema does not change between episodes.
            keys["particle"] = ("particle_pos", "particle_vel")
            counts["particle"] = GRID * GRID
            e = FULL_GRID.edges.T
            edges[("particle", "internal", "particle")] = np.concatenate([e, e[::-1]], 1).astype(np.int64)
            edges[("particle", "task", "gripper")] = full_edges(GRID * GRID, 4)
        self.graph_spec = GraphSpec(counts, keys, edges)
        self.observation_space = gym.spaces.Dict({k: vec_box(counts[t]) for t, ks in keys.items() for k in ks})
        self.hanger_pos = np.zeros(3)
        self.axis = np.array([0.0, 1.0, 0.0])
        self.target_pos = np.zeros((2, 3))
        self.target_dir = np.tile(self.axis, (2, 1))

    # ------------------------------------------------------------------------------------------------
    def spans(self) -> list[tuple[int, int, float]]:
        # Corners no farther apart than on the flat cloth (sides and diagonals).
        uv = [grid_uv(*c) for c in CORNERS]
        return [(i, j, float(np.linalg.norm(uv[i] - uv[j]))) for i in range(4) for j in range(i + 1, 4)]

    def _task_xml(self, variant: tuple[int, int]) -> str:
        mesh = ClothMesh(variant)
        names = mesh.names
        bodies = []
        mass = self.cloth_mass / len(mesh.ij)
        for name, uv in zip(names, mesh.uv, strict=True):
            pos = np.array([uv[0], uv[1], 1.0])
            if name.startswith("gripper"):
                bodies.append(self.gripper_body_xml(int(name[-1]), pos, half=0.03))
            else:
                bodies.append(self.vertex_body_xml(name, pos, mass))
        verts = " ".join("0 0 0" for _ in names)
        elements = " ".join(str(v) for v in mesh.triangles.ravel())
        flex = (
            f'<flex name="cloth" dim="2" body="{" ".join(names)}" vertex="{verts}" element="{elements}" '
            f'radius="{self.cloth_radius}" rgba="0.3 0.65 0.55 1">'
            f'<edge damping="{self.edge_damping}"/>'
            f'<contact condim="3" selfcollide="none" friction="0.6"/></flex>'
        )
        post = 3.0
        hanger = f"""<body name="hanger" mocap="true">
      <geom name="peg" type="cylinder" size="{PEG_RADIUS} {PEG_HALF_LENGTH}" euler="{math.pi / 2} 0 0"
        rgba="0.55 0.6 0.7 1" friction="0.6 0.005 0.0001"/>
      <geom name="post" type="cylinder" size="0.04 {post / 2}" pos="0 {PEG_HALF_LENGTH + 0.04} {-post / 2 + 0.04}"
        rgba="0.45 0.5 0.6 1"/>
    </body>"""
        return self.scene_xml("cloth_hanging", hanger + "\n" + "\n".join(bodies), flex, camera="2.2 -2.6 2.4")

    def _task_variant(self, options: dict[str, Any]) -> tuple[int, int]:
        """The episode's hole: ``options["hole"]`` or a seeded draw among the environment's holes."""
        hole = options.get("hole")
        if hole is None:
            return self.holes[int(self.np_random.integers(len(self.holes)))]
        hole = tuple(int(v) for v in hole)
        if hole not in self.holes:
            raise ValueError(f"options['hole']={hole} is not among this environment's holes {self.holes}")
        return hole

    def _task_scene_loaded(self, variant: tuple[int, int]) -> None:
        self.mesh = ClothMesh(variant)
        self.vertex_names = self.mesh.names
        super()._task_scene_loaded(variant)

    def _task_reset(self, options: dict[str, Any]) -> None:
        rng = self.np_random
        self.hanger_pos = np.array([rng.uniform(-0.5, 0.5), 0.0, 1.3 + rng.uniform(-0.5, 0.5)])
        self.data.mocap_pos[0] = self.hanger_pos
        tip = self.hanger_pos - PEG_HALF_LENGTH * self.axis
        base = self.hanger_pos + PEG_HALF_LENGTH * self.axis
        self.target_pos = np.stack([tip, base])
        centre = self.hanger_pos + np.array([rng.uniform(-0.3, 0.3), 0.0, rng.uniform(-0.2, 0.3)])
        centre[1] = -1.1 + rng.uniform(-0.15, 0.15)
        tilt = rng.uniform(-math.pi / 8, math.pi / 8)
        c, s = math.cos(tilt), math.sin(tilt)
        rot = yaw_matrix(rng.uniform(-math.pi, math.pi)) @ np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
        self.set_vertices(self.place(rot, centre))

    def place(self, rot: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """World positions ``[V, 3]`` of the flat cloth turned by ``rot`` (cloth (u, v) -> rot's first two
        columns) with its centre at ``centre``."""
        return centre + self.mesh.uv @ rot[:, :2].T

    # ------------------------------------------------------------------------------------------------
    def _task_update(self) -> None:
        self._read_vertices()
        ring = self.vertex_pos[self.mesh.ring]
        self.hole_pos, self.hole_vel = ring, self.vertex_vel[self.mesh.ring]
        self.hole_centre = ring.mean(axis=0)
        # Normal from the ring's two diagonals (corner 0 -> 4 and 2 -> 6), counter-clockwise in (u, v).
        n = np.cross(ring[4] - ring[0], ring[6] - ring[2])
        self.hole_normal = n / max(np.linalg.norm(n), 1e-9)
        rel = self.hole_centre - self.hanger_pos
        axial = float(rel @ self.axis)
        e = self.mesh.edges
        lengths = np.linalg.norm(self.vertex_pos[e[:, 0]] - self.vertex_pos[e[:, 1]], axis=1)
        self._errors = {
            "distance": float(np.linalg.norm(rel)),
            "radial": float(np.linalg.norm(rel - axial * self.axis)),
            "axial": axial,
            "alignment": 1.0 - abs(float(self.hole_normal @ self.axis)),
            "stretch": float(np.abs(lengths / self.mesh.rest - 1.0).mean()),
        }

    def _task_observation(self) -> dict[str, np.ndarray]:
        obs = {
            "hole_pos": self.hole_pos,
            "hole_vel": self.hole_vel,
            "gripper_pos": self.gripper_pos,
            "gripper_vel": self.gripper_vel,
            "target_pos": self.target_pos,
            "target_dir": self.target_dir,
        }
        if self.all_particles:
            m = self.mesh
            pos, vel = self.vertex_pos[m.grid_to_vertex], self.vertex_vel[m.grid_to_vertex]
            pos[m.hole_grid_index], vel[m.hole_grid_index] = self.hole_centre, self.hole_vel.mean(axis=0)
            obs["particle_pos"], obs["particle_vel"] = pos, vel
        return {k: v.astype(np.float32) for k, v in obs.items()}

    def _task_errors(self) -> dict[str, float]:
        """Goal errors of the current step: hole centre to peg midpoint ``distance``, to the axis ``radial``
        (m), signed ``axial`` position along the peg (m, tip at -0.15), ``alignment`` ``1 - |n . a|`` and the
        mean relative edge ``stretch``."""
        return self._errors

    def _task_reward_terms(self, action: np.ndarray, prev_action: np.ndarray) -> dict[str, float]:
        e = self._errors
        k = self.final_weight if self._final_steps(self.final_steps) else 1.0
        return {
            "distance": -self.distance_weight * k * e["distance"],
            "alignment": -self.distance_weight * k * self.alignment_weight * e["alignment"],
            "speed": -self.speed_weight * float(np.linalg.norm(self.vertex_vel, axis=1).mean()),
            "stretch": -self.stretch_weight * e["stretch"],
            "action_rate": -self.action_rate_weight * self._action_rate(action, prev_action),
        }

    def _task_success(self) -> bool:
        e = self._errors
        on_peg = abs(e["axial"]) <= PEG_HALF_LENGTH
        return e["radial"] < self.success_radius and on_peg and e["alignment"] < 1.0 - math.cos(math.pi / 4)

    def _task_info(self) -> dict[str, Any]:
        return {"hole": self.mesh.hole}
