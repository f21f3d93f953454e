"""Cut a precinct into turfs: balanced door counts, compact, one piece each, split along streets.

Everything here works in a metric CRS (metres); the caller projects in and out.

The method, chosen over clustering (KMeans leaves turfs of 9 and 128 doors side by side):
recursive bisection. The sites (buildings) are cut in two along the longer axis of their spread, at the
point that leaves each side the door count of its share of turfs; each half is cut again until every part
is one turf. Sites of one street block are kept next to each other in the order cut along, and a cut between
two sites of one block costs a small penalty, so cuts fall between blocks unless that unbalances the turfs.
A turf's polygon is the union of its sites' Voronoi cells clipped to the region, so the turfs of a precinct
tile it without overlap; pieces that come out cut off from the rest of their turf go to the neighbour they
share the longest border with (app.geo.tiling).
"""

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from app.geo import tiling

__all__ = ["PrecinctCut", "cell_turfs", "cut_precinct", "cut_quality", "partition", "polsby_popper"]

# A cut between two sites of one street block costs as much as this share of a turf's doors of imbalance.
BLOCK_PENALTY = 0.04
# Cutting across the shorter axis of the spread costs this much: it makes long thin turfs.
SHORT_AXIS_PENALTY = 0.03
# A building with more doors than this many targets is split by unit into turfs of its own.
BIG_BUILDING = 1.5
# A building with this share of a turf's doors, or more, is a turf by itself.
SOLO = 0.9


def partition(x: NDArray[np.float64], y: NDArray[np.float64], doors: NDArray[np.int64], block: NDArray[np.int64],
              k: int) -> NDArray[np.int64]:
    """Label each site with one of `k` groups of near-equal door counts by recursive bisection.

    `block` is each site's street block (-1 for none); sites of one block stay together where balance allows.
    Needs at least `k` sites. The result depends only on the inputs, in their order.

    Examples
    --------
    >>> x = np.arange(8.0); y = np.zeros(8)
    >>> partition(x, y, np.ones(8, dtype=np.int64), np.full(8, -1), 4).tolist()
    [0, 0, 1, 1, 2, 2, 3, 3]
    >>> x = np.arange(7.0); y = np.zeros(7); ones = np.ones(7, dtype=np.int64)
    >>> partition(x, y, ones, np.full(7, -1), 2).tolist()  # 3 | 4 and 4 | 3 tie: the first wins
    [0, 0, 0, 1, 1, 1, 1]
    >>> partition(x, y, ones, np.array([0, 0, 0, 0, 1, 1, 1]), 2).tolist()  # unless it splits a block
    [0, 0, 0, 0, 1, 1, 1]
    """
    labels = np.zeros(len(x), dtype=np.int64)
    if k <= 1:
        return labels
    if len(x) < k:
        raise ValueError(f"{len(x)} sites can't make {k} turfs")
    stack = [(np.arange(len(x)), k, 0)]
    while stack:
        idx, parts, first = stack.pop()
        if parts == 1:
            labels[idx] = first
            continue
        left, right = _bisect(x[idx], y[idx], doors[idx], block[idx], parts)
        k_left = parts // 2
        stack.append((idx[right], parts - k_left, first + k_left))
        stack.append((idx[left], k_left, first))
    return labels


def _bisect(x: NDArray[np.float64], y: NDArray[np.float64], doors: NDArray[np.int64], block: NDArray[np.int64],
            parts: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Positions of the sites going left (parts // 2 turfs) and right, cut by a straight line.

    Four directions are tried (the two axes and the diagonals); a straight cut keeps each side's Voronoi
    cells in one piece. The cost of a cut is its imbalance, in turfs' worth of doors spread over the
    turfs of the smaller side, plus a penalty for each street block it splits and for cutting across the
    short side of the spread.
    """
    k_left = parts // 2
    n = len(x)
    total = float(doors.sum())
    want = total * k_left / parts
    scale = max(total / parts * min(k_left, parts - k_left), 1.0)
    _, compact = np.unique(block, return_inverse=True)
    directions = ((x, 0.0), (y, 0.0), ((x + y) * np.sqrt(0.5), 0.0), ((x - y) * np.sqrt(0.5), 0.0))
    spreads = [float(np.ptp(coord)) for coord, _ in directions]
    longest = max(spreads) or 1.0
    best: tuple[float, NDArray[np.int64], int] | None = None
    for (coord, _), spread in zip(directions, spreads, strict=True):
        order = np.lexsort((np.arange(n), coord))
        left_doors = np.cumsum(doors[order])[:-1]
        # A block is split by a cut after position j when its sites sit on both sides: first <= j < last.
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        real = block >= 0
        first = np.full(compact.max() + 1, n, dtype=np.int64)
        last = np.full(compact.max() + 1, -1, dtype=np.int64)
        np.minimum.at(first, compact[real], rank[real])
        np.maximum.at(last, compact[real], rank[real])
        spans = first < last
        crossing = np.zeros(n + 1, dtype=np.int64)
        np.add.at(crossing, first[spans], 1)
        np.add.at(crossing, last[spans], -1)
        split_blocks = np.cumsum(crossing)[: n - 1]
        cost = (np.abs(left_doors - want) / scale + BLOCK_PENALTY * split_blocks
                + SHORT_AXIS_PENALTY * (1 - spread / longest))
        # Each side keeps at least as many sites as it needs turfs.
        cost[: k_left - 1] = np.inf
        cost[n - (parts - k_left):] = np.inf
        j = int(np.argmin(cost))
        if best is None or cost[j] < best[0]:
            best = (float(cost[j]), order, j)
    assert best is not None
    _, order, j = best
    return order[: j + 1], order[j + 1:]


@dataclass(frozen=True)
class PrecinctCut:
    """A precinct cut into `k` turfs.

    `labels` gives each site's turf; a building that is a turf by itself (or, split by unit, several) has
    label -1 and its turfs are listed in `big`, site -> the turf indexes its units fill in order.
    `polygons` are the turfs' shapes (metric).
    """

    k: int
    labels: NDArray[np.int64]
    big: dict[int, list[int]]
    polygons: list[Polygon]


def cut_precinct(x: NDArray[np.float64], y: NDArray[np.float64], doors: NDArray[np.int64], block: NDArray[np.int64],
                 region: Polygon | MultiPolygon, *, target: int) -> PrecinctCut:
    """Cut the sites of one precinct (metric coordinates, distinct points) into turfs of about `target` doors.

    k = max(1, round(doors / target)) turfs of doors/k each: a site with more than 1.5 x target doors
    is split into turfs of its own (by unit, which the caller does), the others are partitioned. The
    polygons tile `region` (the precinct less any turfs kept from before).

    Examples
    --------
    >>> x = np.array([10.0, 30, 50, 70, 10, 30, 50, 70]); y = np.array([10.0, 10, 10, 10, 30, 30, 30, 30])
    >>> cut = cut_precinct(x, y, np.full(8, 25), np.full(8, -1), shapely.box(0, 0, 80, 40), target=50)
    >>> cut.k, np.bincount(cut.labels).tolist(), [round(p.area) for p in cut.polygons]
    (4, [2, 2, 2, 2], [800, 800, 800, 800])
    """
    doors = np.asarray(doors, dtype=np.int64)
    total = int(doors.sum())
    k = max(1, round(total / target))
    mean = total / k
    # A building of about a turf's doors or more is a turf (or, past 1.5 x target, several) of its own:
    # left in the partition it would unbalance the turfs around it.
    solo_sites = np.flatnonzero(doors >= SOLO * mean) if k > 1 else np.array([], dtype=np.int64)
    pieces = [max(1, round(doors[s] / mean)) if doors[s] > BIG_BUILDING * target else 1 for s in solo_sites]
    rest = np.setdiff1d(np.arange(len(x)), solo_sites)
    k_rest = min(max(1, k - sum(pieces)), len(rest)) if len(rest) else 0
    labels = np.full(len(x), -1, dtype=np.int64)
    if len(rest):
        labels[rest] = partition(x[rest], y[rest], doors[rest], block[rest], k_rest)
    big: dict[int, list[int]] = {}
    next_label = k_rest
    for site, n in zip(solo_sites.tolist(), pieces, strict=True):
        big[site] = list(range(next_label, next_label + n))
        next_label += n
    k = next_label

    cells = tiling.cells(x, y, region)
    piece_shapes: list[BaseGeometry] = []
    piece_label: list[int] = []
    piece_site: list[int] = []
    for site, cell in enumerate(cells):
        if site in big:
            strips = tiling.strips(cell, len(big[site]))
            parts = [(s, label) for s, label in zip(strips, big[site], strict=True)]
        else:
            parts = [(cell, int(labels[site]))]
        for shape, label in parts:
            for part in shapely.get_parts(shape):
                if part.area > 0:
                    piece_shapes.append(part)
                    piece_label.append(label)
                    piece_site.append(site)
    shapes = np.array(piece_shapes, dtype=object)
    sites = np.array(piece_site, dtype=np.int64)
    # Each site's doors count on one piece: the one holding the site, else (a site just outside the region) its
    # largest.
    holds = shapely.intersects(shapes, shapely.points(x[sites], y[sites]))
    area = shapely.area(shapes)
    home = np.full(len(x), -1, dtype=np.int64)
    for p in np.lexsort((-area, ~holds)):
        if home[sites[p]] < 0:
            home[sites[p]] = p
    weight = np.zeros(len(shapes))
    movable = np.zeros(len(shapes), dtype=bool)
    for site in range(len(x)):
        if home[site] >= 0 and site not in big:
            weight[home[site]] = doors[site]
            movable[home[site]] = True
    for site in big:
        mine = np.flatnonzero(sites == site)
        weight[mine] = doors[site] / max(len(mine), 1)
    # Pieces of one site move together: the others follow the site's home piece.
    graph = tiling.Pieces(shapes, np.array(piece_label, dtype=np.int64), weight, k)
    graph.connect()
    graph.rebalance(movable, np.where(movable, block[sites], -1), mean, block_penalty=BLOCK_PENALTY)
    graph.connect()
    for site in range(len(x)):
        if site not in big and home[site] >= 0:
            labels[site] = graph.labels[home[site]]
    polygons = [tiling.union(list(shapes[graph.labels == label])) for label in range(k)]
    return PrecinctCut(k=k, labels=labels, big=big, polygons=polygons)


def cell_turfs(x: NDArray[np.float64], y: NDArray[np.float64], labels: NDArray[np.int64], k: int,
               region: Polygon | MultiPolygon) -> list[BaseGeometry]:
    """The shapes of turfs made of sites' Voronoi cells, for labels from anywhere (a baseline's clusters).

    Examples
    --------
    >>> shapes = cell_turfs(np.array([1.0, 3.0]), np.array([1.0, 1.0]), np.array([0, 1]), 2, shapely.box(0, 0, 4, 2))
    >>> [s.area for s in shapes]
    [4.0, 4.0]
    """
    cells = np.array(tiling.cells(x, y, region), dtype=object)
    return [tiling.union(list(cells[labels == label])) for label in range(k)]


def polsby_popper(shapes: NDArray[np.object_]) -> NDArray[np.float64]:
    """Compactness 4 pi area / perimeter^2 of each shape: 1 for a disc, near 0 for a sliver; 0 if empty.

    Examples
    --------
    >>> polsby_popper(np.array([shapely.box(0, 0, 1, 1), shapely.box(0, 0, 10, 0.1)])).round(3).tolist()
    [0.785, 0.031]
    """
    area = shapely.area(shapes)
    perimeter = shapely.length(shapes)
    return np.where(perimeter > 0, 4 * np.pi * area / np.maximum(perimeter, 1e-12) ** 2, 0.0)


def cut_quality(doors: NDArray[np.int64], expected: NDArray[np.float64], shapes: NDArray[np.object_],
                household_block: NDArray[np.int64], household_building: NDArray[np.int64],
                household_turf: NDArray[np.int64]) -> dict[str, float | int | None]:
    """How good a cut is: door balance, shape and street blocks kept whole.

    `doors`, `expected` (doors / k of the turf's precinct) and `shapes` (metric) are per turf; the household
    arrays give each door's street block (-1 for none), building and turf. A street block is the doors
    fronting one street segment, both sides; it is split when its buildings fall in more than one turf
    (blocks of one building can't be split and don't count).

    Examples
    --------
    >>> q = cut_quality(np.array([50, 40]), np.array([45.0, 45.0]), np.array([shapely.box(0, 0, 1, 1)] * 2),
    ...                 np.array([7, 7, 8]), np.array([1, 2, 3]), np.array([0, 1, 1]))
    >>> q["doors_cv"], q["outside_15pct"], q["split_blocks"], q["blocks"]
    (0.1111, 0, 1, 1)
    """
    doors = np.asarray(doors, dtype=float)
    if len(doors) == 0:
        return {"turfs": 0, "doors_min": None, "doors_median": None, "doors_max": None, "doors_cv": None,
                "outside_15pct": 0, "non_contiguous": 0, "polsby_popper_mean": None, "blocks": 0,
                "split_blocks": 0, "split_block_share": None}
    real = household_block >= 0
    block, building, turf = household_block[real], household_building[real], household_turf[real]
    blocks = split = 0
    if len(block):
        order = np.lexsort((turf, building, block))
        block, building, turf = block[order], building[order], turf[order]
        starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
        for begin, end in zip(starts, np.r_[starts[1:], len(block)], strict=True):
            if len(np.unique(building[begin:end])) >= 2:
                blocks += 1
                split += int(len(np.unique(turf[begin:end])) > 1)
    parts = shapely.get_num_geometries(shapes)
    return {
        "turfs": len(doors),
        "doors_min": int(doors.min()),
        "doors_median": float(np.median(doors)),
        "doors_max": int(doors.max()),
        "doors_cv": round(float(doors.std() / doors.mean()), 4) if doors.mean() else None,
        "outside_15pct": int(np.sum(np.abs(doors - expected) > 0.15 * expected)),
        "non_contiguous": int(np.sum(parts > 1)),
        "polsby_popper_mean": round(float(polsby_popper(shapes).mean()), 4),
        "blocks": blocks,
        "split_blocks": split,
        "split_block_share": round(split / blocks, 4) if blocks else None,
    }
