"""Pure geometry: placing points in polygons, repairing polygons."""

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import MultiPolygon, Polygon

from app.geo.assign import assign_points, utm_crs
from app.geo.plan import StrayDoors, plan_precinct
from app.geo.repair import polygonal
from app.geo.shapes import Projection

# Two squares of about 830 m side near Cambridge, sharing an edge at lon -71.1.
WEST = shapely.box(-71.11, 42.37, -71.10, 42.3775)
EAST = shapely.box(-71.10, 42.37, -71.09, 42.3775)


class TestAssignPoints:
    def test_inside_edge_near_and_far(self):
        lon = np.array([-71.105, -71.10, -71.0895, -71.08, -71.095])
        lat = np.array([42.373, 42.373, 42.373, 42.373, 42.3775])
        index, distance = assign_points(lon, lat, [WEST, EAST], snap_m=50)
        # The shared edge goes to the lower index; 0.0005 degrees east of EAST is about 41 m.
        assert index.tolist() == [0, 0, 1, -1, 1]
        assert distance[0] == distance[1] == distance[4] == 0
        assert 40 < distance[2] < 42 and np.isnan(distance[3])

    def test_no_polygons_or_points(self):
        index, distance = assign_points(np.array([1.0]), np.array([1.0]), [], snap_m=50)
        assert index.tolist() == [-1] and np.isnan(distance).all()
        index, _ = assign_points(np.array([]), np.array([]), [WEST], snap_m=50)
        assert index.size == 0

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.tuples(st.floats(-71.115, -71.085), st.floats(42.365, 42.3825)), min_size=1, max_size=40))
    def test_every_point_inside_is_placed_in_a_polygon_holding_it(self, points):
        lon, lat = np.array(points).T
        index, distance = assign_points(lon, lat, [WEST, EAST], snap_m=0)
        holds = np.stack([shapely.intersects_xy(WEST, lon, lat), shapely.intersects_xy(EAST, lon, lat)])
        for i in range(len(points)):
            if holds[:, i].any():
                assert index[i] == int(np.argmax(holds[:, i])) and distance[i] == 0
            else:
                assert index[i] == -1

    def test_utm_zone_for_cambridge(self):
        assert utm_crs(np.array([-71.2, -71.0]), np.array([42.3, 42.4])).to_epsg() == 32619


class TestPolygonal:
    @pytest.mark.parametrize(("shape", "status"), [
        (WEST, "ok"),
        (MultiPolygon([WEST, shapely.box(0, 0, 1, 1)]), "ok"),
        (Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), "repaired"),
        (Polygon([(0, 0), (2, 0), (2, 2), (0, 2), (0, 0), (1, 1)]), "repaired"),
        (Polygon(), "empty"),
        (None, "empty"),
        (shapely.LineString([(0, 0), (1, 1)]), "not a polygon"),
        (Polygon([(0, 0), (1, 0), (2, 0), (0, 0)]), "no area after repair"),
    ])
    def test_status(self, shape, status):
        fixed, got = polygonal(shape)
        assert got == status
        assert (fixed is None) == (status not in ("ok", "repaired"))
        if fixed is not None:
            assert fixed.is_valid and fixed.geom_type in ("Polygon", "MultiPolygon")


def test_a_precinct_whose_free_doors_lie_outside_its_free_area_is_refused_by_name():
    """Doors standing where a drawn turf lies without taking them have no ground of their own to cut: the plan
    says which precinct and what to do, never an empty turf or a crash."""
    rng = np.random.default_rng(1)
    lon = np.r_[rng.uniform(-71.13, -71.12, 60), rng.uniform(-71.10, -71.095, 20)]
    lat = rng.uniform(42.37, 42.375, 80)
    projection = Projection(lon, lat)
    households = pd.DataFrame({"id": np.arange(80), "lon": lon, "lat": lat, "street_id": np.full(80, np.nan),
                               "unit": [""] * 80, "building_id": np.arange(80)})
    # The free area covers the first 60 doors only: the last 20 stand in a drawn turf's ground.
    free = projection.to_metres(shapely.box(-71.131, 42.369, -71.119, 42.376))
    with pytest.raises(StrayDoors, match="Precinct 1-1"):
        plan_precinct(1, "1-1", free, households, projection, target=20)
    whole = projection.to_metres(shapely.box(-71.131, 42.369, -71.094, 42.376))
    plan = plan_precinct(1, "1-1", whole, households, projection, target=20)
    assert sum(len(h) for h in plan.households) == 80 and not any(s.is_empty for s in plan.shapes)
