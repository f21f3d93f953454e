"""Walking order: the order a canvasser visits a turf's buildings, along the streets.

Distances are walked along street centrelines: a building is reached from the point of its block (segment)
it faces, and between blocks the walk goes through intersections. Crossing at an intersection is free
(there is a crossing there); crossing mid-block costs `CROSSING_M`, so one side of a street is worked
before the other unless crossing saves steps. With no street for a building, the straight line times
`DETOUR` stands in.

The order is an open path (a shift starts at one door and ends at another): nearest neighbour from every
start, then 2-opt and Or-opt moves to a local optimum. This is written here rather than handed to a
routing library because it runs for every turf of a city-wide cut (hundreds of turfs in seconds), must
give the same order for the same data, and on turfs of a few dozen stops reaches the length of OR-Tools'
guided local search given seconds (see bench/walks.py) in a few milliseconds.
"""

import itertools
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from shapely import LineString

__all__ = [
    "CROSSING_M",
    "DETOUR",
    "Stops",
    "StreetNetwork",
    "Walk",
    "distances",
    "nearest_neighbour_lengths",
    "path_length",
    "plan_walk",
    "street_network",
    "walk_order",
]

# What crossing a street mid-block costs, in metres of walking.
CROSSING_M = 15.0
# Walking distance over straight-line distance where no street is known.
DETOUR = 1.3
# Segment ends this close are one intersection.
NODE_SNAP_M = 1.0
# Intersections farther than this from a turf's own blocks are never on a walk between them.
SEARCH_M = 1500.0
_EPS = 1e-9


@dataclass(frozen=True)
class StreetNetwork:
    """Street segments (metric LineStrings) as a graph of intersections."""

    lines: NDArray[np.object_]
    length: NDArray[np.float64]
    start: NDArray[np.int64]  # node at each segment's first point
    end: NDArray[np.int64]  # node at its last point
    graph: coo_matrix
    # The shortest segment joining each pair of nodes, for drawing a route: {(u, v): segment}.
    edge: dict[tuple[int, int], int]
    # Each segment's vertices and the distance along it to each, for cutting pieces of it fast.
    coords: list[NDArray[np.float64]]
    along: list[NDArray[np.float64]]


def _as_line(shape: shapely.Geometry) -> LineString:
    """A LineString for a (possibly multi-part) centreline, its parts joined in order."""
    if shape.geom_type == "LineString":
        return shape
    return LineString(shapely.get_coordinates(shape))


def street_network(lines: NDArray[np.object_]) -> StreetNetwork:
    """The graph of metric centreline segments, their ends within `NODE_SNAP_M` joined into one node.

    Examples
    --------
    >>> net = street_network(np.array([LineString([(0, 0), (100, 0)]), LineString([(100, 0.4), (100, 80)])]))
    >>> net.start.tolist(), net.end.tolist(), net.length.tolist()
    ([0, 1], [1, 2], [100.0, 79.6])
    """
    lines = np.array([_as_line(line) for line in lines], dtype=object)
    n = len(lines)
    coords = [shapely.get_coordinates(line) for line in lines]
    ends = np.array([[c[0], c[-1]] for c in coords]).reshape(-1, 2) if n else np.zeros((0, 2))
    pairs = cKDTree(ends).query_pairs(NODE_SNAP_M, output_type="ndarray") if n else np.zeros((0, 2), int)
    joined = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(2 * n, 2 * n))
    _, node = connected_components(joined, directed=False)
    # Number nodes in order of first appearance, so the same file gives the same graph.
    _, first, inverse = np.unique(node, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    node = rank[inverse]
    start, end = node[0::2], node[1::2]
    length = shapely.length(lines) if n else np.zeros(0)
    edge: dict[tuple[int, int], int] = {}
    for i in np.argsort(length, kind="stable"):
        u, v = int(start[i]), int(end[i])
        if u != v:
            edge.setdefault((u, v), int(i))
            edge.setdefault((v, u), int(i))
    keys = np.array(list(edge), dtype=np.int64).reshape(-1, 2)
    weights = length[[edge[(int(u), int(v))] for u, v in keys]]
    nodes = int(node.max()) + 1 if n else 0
    graph = coo_matrix((np.maximum(weights, _EPS), (keys[:, 0], keys[:, 1])), shape=(nodes, nodes))
    along = [np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(c, axis=0).T))]) for c in coords]
    return StreetNetwork(lines, length, start.astype(np.int64), end.astype(np.int64), graph, edge, coords, along)


@dataclass(frozen=True)
class Stops:
    """The buildings to visit, in metres: their points and the segment, side and position each faces."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    segment: NDArray[np.int64]  # index into the network's segments, -1 for none
    side: NDArray[np.int64]  # +1 left, -1 right, 0 unknown
    pos: NDArray[np.float64]  # metres from the segment's start


@dataclass(frozen=True)
class _Paths:
    """Shortest walks between the ends of the stops' segments."""

    dist: NDArray[np.float64]  # stop x stop
    sources: NDArray[np.int64]  # network nodes dijkstra started from
    to_node: NDArray[np.float64]  # source x network node
    previous: NDArray[np.int64]  # dijkstra's predecessors, source x network node
    ends: NDArray[np.int64]  # stop x 2: index into sources of its segment's start and end, -1 for none
    offsets: NDArray[np.float64]  # stop x 2: metres from the stop to its segment's start and end


def _paths(net: StreetNetwork | None, stops: Stops) -> _Paths:
    n = len(stops.x)
    straight = np.hypot(stops.x[:, None] - stops.x[None, :], stops.y[:, None] - stops.y[None, :]) * DETOUR
    on_street = (stops.segment >= 0) if net is not None else np.zeros(n, dtype=bool)
    if net is None or not on_street.any():
        empty = np.zeros((0, 0))
        return _Paths(straight, np.zeros(0, np.int64), empty, empty.astype(np.int64),
                      np.full((n, 2), -1, np.int64), np.zeros((n, 2)))
    seg = np.where(on_street, stops.segment, 0)
    pos = np.clip(stops.pos, 0.0, net.length[seg])
    offsets = np.column_stack([pos, net.length[seg] - pos])
    node_ends = np.column_stack([net.start[seg], net.end[seg]])
    sources, index = np.unique(node_ends[on_street], return_inverse=True)
    ends = np.full((n, 2), -1, np.int64)
    ends[on_street] = index.reshape(-1, 2)
    to_node, previous = dijkstra(net.graph, directed=False, indices=sources, return_predecessors=True,
                                 limit=SEARCH_M)
    between = to_node[:, sources]
    dist = np.full((n, n), np.inf)
    street = np.flatnonzero(on_street)
    for a in (0, 1):
        for b in (0, 1):
            via = (offsets[street, a][:, None] + between[np.ix_(ends[street, a], ends[street, b])]
                   + offsets[street, b][None, :])
            dist[np.ix_(street, street)] = np.minimum(dist[np.ix_(street, street)], via)
    # Along one block: straight down the sidewalk, crossing once if the other building is across the street.
    same = (seg[:, None] == seg[None, :]) & on_street[:, None] & on_street[None, :]
    across = (stops.side[:, None] * stops.side[None, :]) < 0
    direct = np.abs(pos[:, None] - pos[None, :]) + CROSSING_M * across
    dist = np.where(same, np.minimum(dist, direct), dist)
    dist = np.where(np.isfinite(dist), dist, straight)
    np.fill_diagonal(dist, 0.0)
    return _Paths(dist, sources, to_node, previous, ends, offsets)


def distances(net: StreetNetwork | None, stops: Stops) -> NDArray[np.float64]:
    """Walking distance in metres between every pair of stops (symmetric, zero on the diagonal).

    Examples
    --------
    >>> net = street_network(np.array([LineString([(0, 0), (100, 0)]), LineString([(100, 0), (100, 100)])]))
    >>> stops = Stops(np.array([10.0, 90.0, 110.0]), np.array([5.0, -5.0, 90.0]), np.array([0, 0, 1]),
    ...               np.array([1, -1, -1]), np.array([10.0, 90.0, 90.0]))
    >>> distances(net, stops).round(1).tolist()
    [[0.0, 95.0, 180.0], [95.0, 0.0, 100.0], [180.0, 100.0, 0.0]]
    """
    return _paths(net, stops).dist


def path_length(dist: NDArray[np.float64], order: NDArray[np.int64]) -> float:
    """The length of an open path visiting stops in `order`."""
    return float(dist[order[:-1], order[1:]].sum()) if len(order) > 1 else 0.0


def _nearest_neighbour_all(dist: NDArray[np.float64]) -> NDArray[np.int64]:
    """A nearest-neighbour path from every start at once: row s starts at stop s; ties go to the lower index."""
    n = len(dist)
    paths = np.zeros((n, n), np.int64)
    paths[:, 0] = np.arange(n)
    seen = np.eye(n, dtype=bool)
    rows = np.arange(n)
    for step in range(1, n):
        here = paths[:, step - 1]
        nxt = np.argmin(np.where(seen, np.inf, dist[here]), axis=1)
        paths[:, step] = nxt
        seen[rows, nxt] = True
    return paths


def nearest_neighbour_lengths(dist: NDArray[np.float64]) -> NDArray[np.float64]:
    """The length of the nearest-neighbour path from each start."""
    if len(dist) < 2:
        return np.zeros(len(dist))
    paths = _nearest_neighbour_all(dist)
    return dist[paths[:, :-1], paths[:, 1:]].sum(axis=1)


def _best_two_opt(d: NDArray[np.float64], tour: NDArray[np.int64]) -> tuple[float, int, int]:
    """The best 2-opt move on a closed tour: (gain, i, k) reversing tour[i + 1:k + 1], all pairs at once."""
    m = len(tour)
    nxt = np.roll(tour, -1)
    edge = d[tour, nxt]
    delta = d[tour[:, None], tour[None, :]] + d[nxt[:, None], nxt[None, :]] - edge[:, None] - edge[None, :]
    # Only k >= i + 2, and not the pair of edges meeting at the tour's start.
    delta[np.tril_indices(m, 1)] = np.inf
    delta[0, m - 1] = np.inf
    i, k = np.unravel_index(int(np.argmin(delta)), delta.shape)
    return float(delta[i, k]), int(i), int(k)


def _best_or_opt(d: NDArray[np.float64], tour: NDArray[np.int64]) -> tuple[float, int, int, int, bool]:
    """The best Or-opt move on a closed tour: (gain, start, size, edge, reversed) moving a run of 1-3 stops
    from `start` to between tour[edge] and the stop after it, every run and place at once."""
    m = len(tour)
    nxt = np.roll(tour, -1)
    best: tuple[float, int, int, int, bool] = (np.inf, 0, 0, 0, False)
    positions = np.arange(m)
    for size in (1, 2, 3):
        if m < size + 3:
            break
        a, b = tour, tour[(positions + size - 1) % m]
        p, q = tour[(positions - 1) % m], tour[(positions + size) % m]
        removed = d[p, a] + d[b, q] - d[p, q]
        forward = d[tour[None, :], a[:, None]] + d[b[:, None], nxt[None, :]] - d[tour, nxt][None, :]
        backward = d[tour[None, :], b[:, None]] + d[a[:, None], nxt[None, :]] - d[tour, nxt][None, :]
        cost = np.minimum(forward, backward) - removed[:, None]
        # A run can't go next to itself: the edges from its predecessor to its last stop.
        touching = (positions[:, None] - 1 + np.arange(size + 1)[None, :]) % m
        np.put_along_axis(cost, touching, np.inf, axis=1)
        i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
        if cost[i, j] < best[0]:
            best = (float(cost[i, j]), int(i), size, int(j), bool(backward[i, j] < forward[i, j]))
    return best


def _move(tour: NDArray[np.int64], start: int, size: int, edge: int, backwards: bool) -> NDArray[np.int64]:
    m = len(tour)
    run = (start + np.arange(size)) % m
    piece = tour[run][::-1] if backwards else tour[run]
    after = tour[edge]
    rest = np.delete(tour, run)
    at = int(np.flatnonzero(rest == after)[0]) + 1
    return np.concatenate([rest[:at], piece, rest[at:]])


def walk_order(dist: NDArray[np.float64]) -> NDArray[np.int64]:
    """A short open path through every stop: the best nearest-neighbour path, improved by 2-opt and Or-opt
    moves.

    Never longer than the nearest-neighbour path from any start.

    Examples
    --------
    >>> x = np.array([0.0, 30.0, 10.0, 20.0])
    >>> walk_order(np.abs(x[:, None] - x[None, :])).tolist()
    [0, 2, 3, 1]
    """
    n = len(dist)
    if n < 3:
        return np.arange(n, dtype=np.int64)
    paths = _nearest_neighbour_all(dist)
    lengths = dist[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    best = paths[int(np.argmin(lengths))]
    # A dummy stop at distance 0 from every stop turns the open path into a closed tour.
    d = np.zeros((n + 1, n + 1))
    d[:n, :n] = dist
    tour = np.concatenate([[n], best]).astype(np.int64)
    # Best improvement: each step evaluates every 2-opt and Or-opt move at once (a few array operations, fast
    # for the dozens of stops of a turf) and makes the best, until none shortens the walk.
    for _ in range(50 * n):
        gain, i, k = _best_two_opt(d, tour)
        moved = _best_or_opt(d, tour)
        if min(gain, moved[0]) >= -_EPS:
            break
        if gain <= moved[0]:
            tour[i + 1:k + 1] = tour[i + 1:k + 1][::-1].copy()
        else:
            tour = _move(tour, *moved[1:])
    start = int(np.flatnonzero(tour == n)[0])
    path = np.roll(tour, -start)[1:]
    # Walks start from the lower-numbered end, so the same turf always reads the same way round.
    return path if path[0] <= path[-1] else path[::-1].copy()


@dataclass(frozen=True)
class Walk:
    order: NDArray[np.int64]
    length_m: float
    route: LineString | None  # metric; None for fewer than two points


def _piece(net: StreetNetwork, segment: int, start: float, end: float) -> NDArray[np.float64]:
    """The part of a segment from `start` to `end` metres along it (backwards if end < start).

    What shapely.ops.substring does, on precomputed vertex distances: routes cut thousands of pieces a city.
    """
    coords, along = net.coords[segment], net.along[segment]
    low, high = sorted((start, end))
    inside = coords[(along > low) & (along < high)]
    ends = np.column_stack([np.interp([low, high], along, coords[:, 0]), np.interp([low, high], along, coords[:, 1])])
    piece = np.concatenate([ends[:1], inside, ends[1:]])
    return piece if start <= end else piece[::-1]


def _leg(net: StreetNetwork, paths: _Paths, stops: Stops, i: int, j: int) -> list[NDArray[np.float64]]:
    """The street coordinates walked from stop i to stop j (without the buildings themselves)."""
    seg_i, seg_j = int(stops.segment[i]), int(stops.segment[j])
    if seg_i < 0 or seg_j < 0 or paths.ends[i, 0] < 0 or paths.ends[j, 0] < 0:
        return []
    pos_i, pos_j = paths.offsets[i, 0], paths.offsets[j, 0]
    best, how = np.inf, None
    if seg_i == seg_j:
        best = abs(pos_i - pos_j) + CROSSING_M * (stops.side[i] * stops.side[j] < 0)
    for a in (0, 1):
        for b in (0, 1):
            via = (paths.offsets[i, a] + paths.to_node[paths.ends[i, a], paths.sources[paths.ends[j, b]]]
                   + paths.offsets[j, b])
            if via < best - _EPS:
                best, how = via, (a, b)
    if not np.isfinite(best):
        return []
    if how is None:
        return [_piece(net, seg_i, pos_i, pos_j)]
    a, b = how
    source = paths.ends[i, a]
    target = int(paths.sources[paths.ends[j, b]])
    nodes = [target]
    while nodes[-1] != paths.sources[source]:
        nodes.append(int(paths.previous[source, nodes[-1]]))
    nodes.reverse()
    parts = [_piece(net, seg_i, pos_i, 0.0 if a == 0 else net.length[seg_i])]
    for u, v in itertools.pairwise(nodes):
        k = net.edge[(u, v)]
        coords = net.coords[k]
        parts.append(coords if net.start[k] == u else coords[::-1])
    parts.append(_piece(net, seg_j, 0.0 if b == 0 else net.length[seg_j], pos_j))
    return parts


def plan_walk(net: StreetNetwork | None, stops: Stops) -> Walk:
    """The walking order of these stops, its length in metres and its route along the streets (metric)."""
    n = len(stops.x)
    if n == 0:
        return Walk(np.zeros(0, np.int64), 0.0, None)
    paths = _paths(net, stops)
    order = walk_order(paths.dist)
    coords: list[NDArray[np.float64]] = [np.array([[stops.x[order[0]], stops.y[order[0]]]])]
    for i, j in itertools.pairwise(order):
        if net is not None:
            coords += _leg(net, paths, stops, int(i), int(j))
        coords.append(np.array([[stops.x[j], stops.y[j]]]))
    points = np.concatenate(coords)
    keep = np.concatenate([[True], np.any(np.abs(np.diff(points, axis=0)) > 0.01, axis=1)])
    points = points[keep]
    route = LineString(points).simplify(0.5) if len(points) > 1 else None
    return Walk(order, path_length(paths.dist, order), route)
