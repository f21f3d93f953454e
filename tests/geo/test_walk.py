"""Walking order: along streets, one side then the other, and never worse than nearest neighbour."""

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import LineString

from app.geo.walk import (
    CROSSING_M,
    DETOUR,
    Stops,
    distances,
    nearest_neighbour_lengths,
    path_length,
    plan_walk,
    street_network,
    walk_order,
)

# A street running east in two blocks, and a 100 m side street north from the corner between them.
WEST = LineString([(0, 0), (100, 0)])
EAST = LineString([(100, 0), (200, 0)])
SIDE = LineString([(100, 0), (100, 100)])
LINES = np.array([WEST, EAST, SIDE], dtype=object)


def street_stops(segment, side, pos) -> Stops:
    """Buildings 8 m off their block, left (+1) or right (-1) of it."""
    points = [shapely.line_interpolate_point(LINES[s], p) for s, p in zip(segment, pos, strict=True)]
    offset = [(0, 8 * d) if s < 2 else (-8 * d, 0) for s, d in zip(segment, side, strict=True)]
    x = np.array([p.x + o[0] for p, o in zip(points, offset, strict=True)])
    y = np.array([p.y + o[1] for p, o in zip(points, offset, strict=True)])
    return Stops(x, y, np.array(segment), np.array(side), np.array(pos, dtype=float))


points = st.lists(st.tuples(st.floats(0, 500), st.floats(0, 500)), min_size=0, max_size=40)


class TestOrder:
    def test_one_side_of_the_street_then_the_other(self):
        stops = street_stops([0] * 5, [1, -1, 1, -1, 1], [10, 20, 30, 40, 50])
        walk = plan_walk(street_network(LINES), stops)
        sides = stops.side[walk.order]
        # One crossing: the left side in order, then back along the right.
        assert int(np.sum(sides[1:] != sides[:-1])) == 1
        assert walk.length_m == 40 + 10 + CROSSING_M + 20

    def test_the_walk_turns_at_the_corner_into_the_side_street(self):
        stops = street_stops([0, 2, 1, 2], [1, 1, 1, -1], [90, 50, 50, 20])
        net = street_network(LINES)
        dist = distances(net, stops)
        # From 90 m along the west block to 50 m up the side street: 10 m to the corner, then 50 m.
        assert dist[0, 1] == 60 and dist[0, 2] == 60
        walk = plan_walk(net, stops)
        assert walk.route is not None and walk.route.length >= walk.length_m - 1
        assert sorted(walk.order.tolist()) == [0, 1, 2, 3]

    def test_doors_with_no_street_use_the_straight_line(self):
        stops = Stops(np.array([0.0, 30.0, 0.0]), np.array([0.0, 40.0, 10.0]), np.array([-1, -1, -1]),
                      np.zeros(3, int), np.zeros(3))
        dist = distances(None, stops)
        assert dist[0, 1] == 50 * DETOUR
        assert walk_order(dist).tolist() == [0, 2, 1]

    @settings(max_examples=60, deadline=None)
    @given(points)
    def test_any_points_give_an_order_of_all_of_them_no_longer_than_nearest_neighbour(self, xy):
        x = np.array([p[0] for p in xy])
        y = np.array([p[1] for p in xy])
        stops = Stops(x, y, np.full(len(xy), -1), np.zeros(len(xy), int), np.zeros(len(xy)))
        dist = distances(None, stops)
        order = walk_order(dist)
        assert sorted(order.tolist()) == list(range(len(xy)))
        if len(xy) > 1:
            assert path_length(dist, order) <= nearest_neighbour_lengths(dist).min() + 1e-6
        assert walk_order(dist).tolist() == order.tolist()

    def test_no_stops(self):
        walk = plan_walk(None, Stops(*(np.zeros(0),) * 2, np.zeros(0, int), np.zeros(0, int), np.zeros(0)))
        assert walk.order.tolist() == [] and walk.route is None and walk.length_m == 0
