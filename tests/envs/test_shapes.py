import numpy as np
import pytest
from shapely.geometry import Polygon
from shapely.ops import unary_union

from geomanip.envs.mjcf import FIXTURE_HALF_WIDTH, HOLE_CLEARANCE
from geomanip.envs.shapes import (
    ALL_SHAPES,
    INSERTION_SHAPES,
    NUM_KEYPOINTS,
    SHAPE_RADIUS,
    TRAIN_SHAPES,
    UNSEEN_SHAPES,
    get_shape,
    resolve_shapes,
)


def test_shape_sets():
    assert len(TRAIN_SHAPES) == 10 and len(UNSEEN_SHAPES) >= 4
    assert not set(TRAIN_SHAPES) & set(UNSEEN_SHAPES)
    assert "A" not in INSERTION_SHAPES and "E" not in INSERTION_SHAPES and len(INSERTION_SHAPES) == 8


@pytest.mark.parametrize("name", ALL_SHAPES)
def test_convex_pieces_tile_the_outline(name):
    s = get_shape(name)
    outline = s.polygon
    assert outline.is_valid and outline.exterior.is_ccw
    assert np.isclose(np.linalg.norm(s.outline, axis=1).max(), SHAPE_RADIUS)
    assert np.allclose([outline.centroid.x, outline.centroid.y], 0, atol=1e-12)
    pieces = [Polygon(p) for p in s.pieces]
    for p in pieces:
        assert p.convex_hull.area - p.area < 1e-12  # convex
    assert unary_union(pieces).symmetric_difference(outline).area < 1e-10
    assert sum(p.area for p in pieces) == pytest.approx(outline.area, rel=1e-9)  # no overlaps


def test_non_convex_shapes_are_not_their_hull():
    for name in ("plus", "star", "T", "E", "heart", "L", "M", "V"):
        s = get_shape(name)
        assert len(s.pieces) > 1
        assert s.polygon.convex_hull.area > 1.05 * s.polygon.area


@pytest.mark.parametrize("name", ALL_SHAPES)
def test_hole_leaves_the_clearance_around_the_outline(name):
    s = get_shape(name)
    block = unary_union([Polygon(p) for p in s.hole_pieces(HOLE_CLEARANCE, FIXTURE_HALF_WIDTH)])
    assert block.distance(s.polygon) == pytest.approx(HOLE_CLEARANCE, rel=1e-6)
    # The block fills everything else: block + grown outline = the square.
    assert block.area + s.polygon.buffer(HOLE_CLEARANCE, join_style="mitre", mitre_limit=4.0).area == pytest.approx(
        (2 * FIXTURE_HALF_WIDTH) ** 2, rel=1e-9
    )


@pytest.mark.parametrize("name", ALL_SHAPES)
def test_keypoints_lie_on_the_outline_in_order(name):
    s = get_shape(name)
    assert s.keypoints.shape == (NUM_KEYPOINTS, 2)
    ring = s.polygon.exterior
    from shapely.geometry import Point

    positions = [ring.project(Point(p)) for p in s.keypoints]
    assert all(ring.distance(Point(p)) < 1e-9 for p in s.keypoints)
    steps = np.diff(positions + [positions[0] + ring.length])
    assert (np.mod(steps, ring.length) > 0).all()  # strictly advancing around the ring
    assert np.mod(steps, ring.length).sum() == pytest.approx(ring.length)


def test_resolve_shapes():
    assert resolve_shapes("train") == TRAIN_SHAPES
    assert resolve_shapes("train", INSERTION_SHAPES) == INSERTION_SHAPES
    assert resolve_shapes("unseen") == UNSEEN_SHAPES
    assert resolve_shapes(["star", "L"]) == ("star", "L")
    with pytest.raises(ValueError, match="unknown shape 'blob'"):
        resolve_shapes("blob")
    with pytest.raises(ValueError, match="not available for this task"):
        resolve_shapes("A", INSERTION_SHAPES)
    with pytest.raises(ValueError, match="unknown shape"):
        get_shape("blob")
