"""Small builders of MJCF text shared by the rigid tasks: prisms, fixtures, grippers, the scene frame."""

from __future__ import annotations

import numpy as np

from geomanip.envs.shapes import Shape

OBJECT_HEIGHT = 0.05
"""Extrusion height of every object (m)."""

HOLE_DEPTH = 0.04
"""Depth of insertion holes (m)."""

HOLE_CLEARANCE = 0.003
"""Gap between a peg's outline and its hole's outline (m), on every side."""

FIXTURE_HALF_WIDTH = 0.16
"""Half the side of the square fixture block (m)."""

FIXTURE_BASE = 0.01
"""Thickness of the plate that closes the bottom of a hole (m)."""

GRIPPER_HALF = 0.025
"""Half the side of a gripper's cube (m)."""


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.6g}" for v in np.asarray(values).ravel())


def prism_meshes(prefix: str, pieces: tuple[np.ndarray, ...], z0: float, z1: float) -> tuple[str, list[str]]:
    """``<mesh>`` assets of the convex pieces extruded from ``z0`` to ``z1``; returns (xml, mesh names)."""
    xml, names = [], []
    for i, piece in enumerate(pieces):
        bottom = np.column_stack([piece, np.full(len(piece), z0)])
        top = np.column_stack([piece, np.full(len(piece), z1)])
        name = f"{prefix}{i}"
        xml.append(f'<mesh name="{name}" vertex="{_fmt(np.vstack([bottom, top]))}"/>')
        names.append(name)
    return "\n".join(xml), names


def mesh_geoms(names: list[str], cls: str, extra: str = "") -> str:
    return "\n".join(f'<geom type="mesh" mesh="{n}" class="{cls}" {extra}/>' for n in names)


def object_assets(shape: Shape) -> tuple[str, list[str]]:
    """Mesh assets of an object prism (object frame: bottom face at z = 0, top at ``OBJECT_HEIGHT``)."""
    return prism_meshes(f"obj_{shape.name}_", shape.pieces, 0.0, OBJECT_HEIGHT)


def fixture_assets(shape: Shape) -> tuple[str, list[str]]:
    """Mesh assets of the block around the hole (fixture frame: hole bottom at z = 0, top at ``HOLE_DEPTH``)."""
    return prism_meshes(f"hole_{shape.name}_", shape.hole_pieces(HOLE_CLEARANCE, FIXTURE_HALF_WIDTH), 0.0, HOLE_DEPTH)


def fixture_body(mesh_names: list[str]) -> str:
    """A mocap (kinematic) body holding the hole block and the plate under it; its frame is the hole bottom."""
    plate = (
        f'<geom type="box" class="fixture" size="{FIXTURE_HALF_WIDTH} {FIXTURE_HALF_WIDTH} {FIXTURE_BASE / 2}" '
        f'pos="0 0 {-FIXTURE_BASE / 2}"/>'
    )
    return f'<body name="fixture" mocap="true">\n{mesh_geoms(mesh_names, "fixture")}\n{plate}\n</body>'


def ghost_body(mesh_names: list[str]) -> str:
    """A visual-only copy of the object at its goal pose (for rendering; it does not collide)."""
    return f'<body name="goal" mocap="true">\n{mesh_geoms(mesh_names, "ghost")}\n</body>'


def scene(
    model: str,
    assets: str,
    worldbody: str,
    actuators: str,
    floor: bool = True,
    extra: str = "",
    camera: str = "0.4 -0.9 0.9",
) -> str:
    """The full MJCF document: options, visual defaults, classes, lights, optional floor, and a camera at
    ``camera`` (world position) that keeps the body called ``object`` in view."""
    floor_xml = (
        '<geom name="floor" type="plane" size="3 3 0.05" material="grid" friction="0.5 0.005 0.0001"/>' if floor else ""
    )
    return f"""<mujoco model="{model}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.005" integrator="implicitfast" cone="elliptic"/>
  <visual><global offwidth="960" offheight="960"/><quality shadowsize="2048"/></visual>
  <default>
    <geom solref="0.004 1" solimp="0.95 0.99 0.001" friction="0.5 0.005 0.0001"/>
    <default class="object"><geom rgba="0.85 0.45 0.2 1" density="800"/></default>
    <default class="fixture"><geom rgba="0.55 0.6 0.7 1"/></default>
    <default class="gripper"><geom type="box" size="{GRIPPER_HALF} {GRIPPER_HALF} {GRIPPER_HALF}"
      rgba="0.2 0.35 0.75 1" mass="1"/></default>
    <default class="ghost"><geom rgba="0.2 0.8 0.3 0.3" contype="0" conaffinity="0" group="2"/></default>
  </default>
  <asset>
    <texture name="grid" type="2d" builtin="checker" width="256" height="256" rgb1="0.75 0.75 0.75"
      rgb2="0.62 0.62 0.62"/>
    <texture name="sky" type="skybox" builtin="gradient" width="256" height="256" rgb1="0.55 0.65 0.8"
      rgb2="0.15 0.15 0.2"/>
    <material name="grid" texture="grid" texrepeat="12 12"/>
{assets}
  </asset>
  <worldbody>
    <light pos="0 0 4" dir="0 0 -1" diffuse="0.5 0.5 0.5" specular="0.1 0.1 0.1"/>
    <light pos="2 -2 3" dir="-1 1 -1.5" diffuse="0.25 0.25 0.25" specular="0 0 0"/>
    <camera name="overview" mode="targetbody" target="object" pos="{camera}"/>
    {floor_xml}
{worldbody}
  </worldbody>
  <actuator>
{actuators}
  </actuator>
{extra}
</mujoco>"""


def velocity_actuators(joints: list[str], kv: list[float], force: list[float]) -> str:
    """Velocity servos (``force = kv (ctrl - qvel)``, clamped) on the named joints; ctrl is in joint units."""
    return "\n".join(
        f'<velocity name="{j}" joint="{j}" kv="{k}" forcerange="{-f} {f}"/>'
        for j, k, f in zip(joints, kv, force, strict=True)
    )
