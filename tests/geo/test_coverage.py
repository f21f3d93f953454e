"""Snapping a coverage to the GeoJSON grid keeps it one (app.geo.coverage), and its text has six decimals
(app.geo.geojson)."""

import re

import numpy as np
import orjson
import pytest
import shapely
from shapely import MultiPolygon, Polygon, box

from app.geo.coverage import oriented, snap_coverage
from app.geo.geojson import DIGITS, texts

# A seam from (0.5, 0) to (0.6, 1), with a vertex of only the left polygon on it: snapped one by one, the vertex
# moves to the grid and the right polygon's edge stays straight, so a sliver opens between them.
LEFT = Polygon([(0, 0), (0, 1), (0.6, 1), (0.5 + 0.1 / 3, 1 / 3), (0.5, 0)])
RIGHT = Polygon([(0.5, 0), (0.6, 1), (1, 1), (1, 0)])
# A block of a city, at the grid the API stores: GEOS's own writer prints -71.091113 as -71.09111300000001.
CITY = box(-71.091113, 42.371143, -71.090113, 42.372143)
WITH_HOLE = Polygon([(0, 0), (0, 3), (3, 3), (3, 0)], [[(1, 1), (2, 1), (2, 2), (1, 2)]])
IN_HOLE = box(1, 1, 2, 2)


def rings(shape: Polygon | MultiPolygon) -> list[tuple[shapely.LinearRing, bool]]:
    """Each ring of the shape, and whether it is an exterior."""
    return [(ring, n == 0) for polygon in shapely.get_parts(shape)
            for n, ring in enumerate([polygon.exterior, *polygon.interiors])]


def overlaps(shapes: np.ndarray) -> float:
    left, right = shapely.STRtree(shapes).query(shapes, predicate="intersects")
    keep = left < right
    return float(shapely.area(shapely.intersection(shapes[left[keep]], shapes[right[keep]])).sum())


class TestSnapCoverage:
    @pytest.mark.parametrize(("shapes", "digits"), [
        ([LEFT, RIGHT], 1),
        ([shapely.affinity.scale(s, 0.001, 0.001, origin=(0, 0)) for s in (LEFT, RIGHT)], 4),
        ([WITH_HOLE, IN_HOLE], 0),
    ])
    def test_neighbours_stay_a_tiling(self, shapes, digits):
        snapped = snap_coverage(shapes, digits)
        assert overlaps(snapped) == 0
        # No gap either: the snapped polygons cover what the originals did, and no more than the grid moved.
        whole = shapely.union_all(shapes)
        assert abs(shapely.union_all(snapped).area - whole.area) < 1e-12
        assert float(shapely.area(snapped).sum()) == pytest.approx(whole.area, abs=1e-12)

    def test_one_by_one_they_would_not(self):
        alone = shapely.set_precision([LEFT, RIGHT], 0.1)
        assert float(shapely.area(alone).sum()) < shapely.union_all([LEFT, RIGHT]).area - 0.01

    def test_the_shared_vertex_is_in_both(self):
        a, b = snap_coverage([LEFT, RIGHT], 1)
        assert (0.5, 0.3) in a.exterior.coords[:] and (0.5, 0.3) in b.exterior.coords[:]

    def test_rings_wind_as_rfc_7946_says(self):
        clockwise = Polygon(WITH_HOLE.exterior.coords[::-1], [WITH_HOLE.interiors[0].coords[::-1]])
        for shape in snap_coverage([clockwise, IN_HOLE], 0):
            for ring, exterior in rings(shape):
                assert ring.is_ccw == exterior

    def test_overlaps_go_to_one_in_a_partition_and_stay_otherwise(self):
        a, b = box(0, 0, 2, 1), box(1, 0, 3, 1)
        assert overlaps(snap_coverage([a, b], 3)) == 0
        kept = snap_coverage([a, b], 3, partition=False)
        assert overlaps(kept) == pytest.approx(1.0) and kept[0].equals(a) and kept[1].equals(b)

    def test_a_gap_stays_a_gap(self):
        a, b = box(0, 0, 1, 1), box(1.5, 0, 3, 1)
        snapped = snap_coverage([a, b], 2)
        assert snapped[0].equals(a) and snapped[1].equals(b)

    def test_snapped_again_it_is_the_same_bytes(self):
        once = snap_coverage([CITY, shapely.affinity.translate(CITY, 0.001)], DIGITS)
        assert shapely.to_wkb(snap_coverage(once, DIGITS)).tolist() == shapely.to_wkb(once).tolist()

    def test_a_sliver_narrower_than_the_grid_is_gone(self):
        spike = Polygon([(0, 0), (0, 1), (1, 1), (1, 0.5), (3, 0.50000001), (1, 0.5000001), (1, 0)])
        (snapped,) = snap_coverage([spike], DIGITS)
        assert snapped.is_valid and snapped.bounds == (0, 0, 1, 1)

    def test_nothing_in_nothing_out(self):
        assert snap_coverage([], DIGITS).tolist() == []


class TestTexts:
    def test_six_decimals_as_written(self):
        (text,) = texts(snap_coverage([shapely.affinity.translate(CITY, 0.0000004, 0.0000004)], DIGITS))
        assert "-71.091113," in text
        numbers = re.findall(r"-?\d+\.\d+", text)
        assert numbers and all(len(n.split(".")[1]) <= DIGITS for n in numbers)
        # GEOS's own writer doesn't.
        assert re.search(r"\.\d{7,}", shapely.to_geojson(shapely.from_geojson(text)))

    def test_a_multipolygon_with_a_hole_keeps_its_winding(self):
        shape = oriented([MultiPolygon([WITH_HOLE, box(5, 5, 6, 6)])])[0]
        geometry = orjson.loads(texts([shape])[0])
        assert geometry["type"] == "MultiPolygon"
        back = shapely.geometry.shape(geometry)
        assert back.equals(shape)
        for ring, exterior in rings(back):
            assert ring.is_ccw == exterior
