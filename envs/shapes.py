"""Planar object shapes: outlines, convex decompositions, keypoints and insertion holes.

Every shape is a simple polygon in the object frame (metres, counter-clockwise, centroid at the origin),
extruded along z into a prism. Collision geometry is the polygon split into convex pieces (constrained
Delaunay triangulation merged greedily while the union stays convex), so a peg really has its shape. A hole
fixture is a square block minus the outline grown by the clearance, split the same way.

Shape sets: :data:`TRAIN_SHAPES` are the ten shapes of the HEPi benchmark, :data:`UNSEEN_SHAPES` are held
out for generalisation tests, :data:`INSERTION_SHAPES` drop A and E (as the benchmark's insertion tasks do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import shapely
from shapely.geometry import Polygon, box
from shapely.ops import orient

__all__ = [
    "TRAIN_SHAPES",
    "UNSEEN_SHAPES",
    "INSERTION_SHAPES",
    "ALL_SHAPES",
    "NUM_KEYPOINTS",
    "SHAPE_RADIUS",
    "Shape",
    "get_shape",
    "resolve_shapes",
]

TRAIN_SHAPES = ("plus", "pentagon", "star", "T", "A", "E", "diamond", "heart", "hexagon", "triangle")
UNSEEN_SHAPES = ("L", "M", "V", "rectangle")
INSERTION_SHAPES = tuple(s for s in TRAIN_SHAPES if s not in ("A", "E"))
ALL_SHAPES = TRAIN_SHAPES + UNSEEN_SHAPES

NUM_KEYPOINTS = 16
"""Keypoints per outline, the same for every shape so that node counts are fixed per task."""

SHAPE_RADIUS = 0.1
"""Every outline is scaled so that its farthest vertex is this far (m) from its centroid."""


def _regular(n: int, phase: float = math.pi / 2) -> list[tuple[float, float]]:
    return [(math.cos(phase + 2 * math.pi * k / n), math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]


def _star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    out = []
    for k in range(2 * points):
        r = 1.0 if k % 2 == 0 else inner
        a = math.pi / 2 + math.pi * k / points
        out.append((r * math.cos(a), r * math.sin(a)))
    return out


def _heart(n: int = 16) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return list(zip(x.tolist(), y.tolist(), strict=True))


# Unit-scale outlines; orientation, centring and scaling are normalised by _normalise.
_OUTLINES: dict[str, list[tuple[float, float]]] = {
    "plus": [
        (-1, -3),
        (1, -3),
        (1, -1),
        (3, -1),
        (3, 1),
        (1, 1),
        (1, 3),
        (-1, 3),
        (-1, 1),
        (-3, 1),
        (-3, -1),
        (-1, -1),
    ],
    "pentagon": _regular(5),
    "star": _star(),
    "T": [(-3, 2), (-1, 2), (-1, -4), (1, -4), (1, 2), (3, 2), (3, 4), (-3, 4)],
    "A": [(-5, -5), (-2.5, -5), (-1.5, -2), (1.5, -2), (2.5, -5), (5, -5), (1, 5), (-1, 5)],
    "E": [(-3, -4), (3, -4), (3, -2), (-1, -2), (-1, -1), (2, -1), (2, 1), (-1, 1), (-1, 2), (3, 2), (3, 4), (-3, 4)],
    "diamond": [(0, -1.5), (1, 0), (0, 1.5), (-1, 0)],
    "heart": _heart(),
    "hexagon": _regular(6, 0.0),
    "triangle": _regular(3),
    "L": [(-2, -3), (2, -3), (2, -1), (0, -1), (0, 3), (-2, 3)],
    "M": [
        (-3, -3),
        (-1.5, -3),
        (-1.5, 0.5),
        (0, -1.5),
        (1.5, 0.5),
        (1.5, -3),
        (3, -3),
        (3, 3),
        (1.5, 3),
        (0, 1),
        (-1.5, 3),
        (-3, 3),
    ],
    "V": [(-3, 3), (-1.5, 3), (0, -0.5), (1.5, 3), (3, 3), (0.8, -3), (-0.8, -3)],
    "rectangle": [(-2, -1), (2, -1), (2, 1), (-2, 1)],
}


@dataclass(frozen=True)
class Shape:
    """A planar shape ready for simulation (all lengths in metres, object frame).

    Attributes:
        name: the shape's name.
        outline: ``[V, 2]`` polygon vertices, counter-clockwise, centroid at the origin.
        pieces: convex pieces of the outline, each ``[k, 2]``, whose union is the outline.
        keypoints: ``[NUM_KEYPOINTS, 2]`` points on the outline: its vertices, then midpoints of the longest
            edges until there are ``NUM_KEYPOINTS``; ordered along the perimeter.
    """

    name: str
    outline: np.ndarray
    pieces: tuple[np.ndarray, ...]
    keypoints: np.ndarray

    @property
    def polygon(self) -> Polygon:
        return Polygon(self.outline)

    def hole_pieces(self, clearance: float, half_width: float) -> tuple[np.ndarray, ...]:
        """Convex pieces of the square ``[-half_width, half_width]^2`` minus this outline grown by ``clearance``."""
        grown = self.polygon.buffer(clearance, join_style="mitre", mitre_limit=4.0)
        block = box(-half_width, -half_width, half_width, half_width)
        return convex_decomposition(block.difference(grown))


def _normalise(points: list[tuple[float, float]]) -> np.ndarray:
    poly = orient(Polygon(points), sign=1.0)
    c = poly.centroid
    xy = np.asarray(poly.exterior.coords[:-1], dtype=np.float64) - [c.x, c.y]
    return xy * (SHAPE_RADIUS / np.linalg.norm(xy, axis=1).max())


def _is_convex(poly: Polygon, tol: float = 1e-9) -> bool:
    return poly.convex_hull.area - poly.area <= tol * max(poly.area, 1e-12)


def convex_decomposition(region: Polygon) -> tuple[np.ndarray, ...]:
    """Split a polygon (holes allowed) into convex pieces, ``[k, 2]`` counter-clockwise vertex arrays.

    Triangulates with a constrained Delaunay triangulation, then merges two pieces sharing an edge whenever
    their union is convex, until no merge applies (Hertel-Mehlhorn style; not minimal, but few pieces).
    """
    tris = [t for t in shapely.constrained_delaunay_triangles(region).geoms if t.area > 1e-12]
    pieces = list(tris)
    merged = True
    while merged:
        merged = False
        for i in range(len(pieces)):
            for j in range(i + 1, len(pieces)):
                shared = pieces[i].intersection(pieces[j])
                if shared.length <= 1e-9:
                    continue
                union = pieces[i].union(pieces[j])
                if isinstance(union, Polygon) and _is_convex(union):
                    pieces[i] = union.convex_hull
                    del pieces[j]
                    merged = True
                    break
            if merged:
                break
    out = []
    for p in pieces:
        p = orient(shapely.simplify(p, 1e-9), sign=1.0)
        out.append(np.asarray(p.exterior.coords[:-1], dtype=np.float64))
    return tuple(out)


def _keypoints(outline: np.ndarray, count: int) -> np.ndarray:
    pts = [tuple(p) for p in outline]
    if len(pts) > count:
        raise ValueError(f"outline has {len(pts)} vertices, more than the {count} keypoints")
    while len(pts) < count:
        lengths = [np.hypot(*np.subtract(pts[(i + 1) % len(pts)], pts[i])) for i in range(len(pts))]
        i = int(np.argmax(lengths))
        mid = tuple((np.asarray(pts[i]) + np.asarray(pts[(i + 1) % len(pts)])) / 2)
        pts.insert(i + 1, mid)
    return np.asarray(pts, dtype=np.float64)


@cache
def get_shape(name: str) -> Shape:
    """The :class:`Shape` called ``name`` (one of :data:`ALL_SHAPES`)."""
    if name not in _OUTLINES:
        raise ValueError(f"unknown shape {name!r}; known shapes: {', '.join(ALL_SHAPES)}")
    outline = _normalise(_OUTLINES[name])
    return Shape(name, outline, convex_decomposition(Polygon(outline)), _keypoints(outline, NUM_KEYPOINTS))


def resolve_shapes(spec: str | tuple[str, ...] | list[str], allowed: tuple[str, ...] = ALL_SHAPES) -> tuple[str, ...]:
    """Shape names from a keyword: one name, ``"train"``, ``"unseen"``, or a sequence of names.

    ``"train"`` and ``"unseen"`` are intersected with ``allowed`` (the shapes a task supports); a named
    shape outside ``allowed`` raises a ``ValueError``.
    """
    if isinstance(spec, str):
        if spec == "train":
            names = tuple(s for s in TRAIN_SHAPES if s in allowed)
        elif spec == "unseen":
            names = tuple(s for s in UNSEEN_SHAPES if s in allowed)
        else:
            names = (spec,)
    else:
        names = tuple(spec)
    if not names:
        raise ValueError("no shapes selected")
    for n in names:
        if n not in _OUTLINES:
            raise ValueError(f"unknown shape {n!r}; known shapes: {', '.join(ALL_SHAPES)} (or 'train', 'unseen')")
        if n not in allowed:
            raise ValueError(f"shape {n!r} is not available for this task; available: {', '.join(allowed)}")
    return names
