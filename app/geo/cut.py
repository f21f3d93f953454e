"""Cut a precinct into turfs: balanced door counts, compact, one piece each, split along streets.

Everything here works in a metric CRS (metres); the caller projects in and out.

The method, chosen over clustering (KMeans leaves turfs of 9 and 128 doors side by side):
recursive bisection. The sites (buildings) are cut in two along the longer axis of their spread, at the
point that leaves each side the door count of its share of turfs; each half is cut again until every part
is one turf. Sites of one street block are kept next to each other in the order cut along, and a cut between
two sites of one block costs a small penalty, so cuts fall between blocks unless that unbalances the turfs.
A turf's polygon is the union of its sites' Voronoi cells clipped to the region, so the turfs of a precinct
tile it without overlap; pieces that come out cut off from the rest of their turf go to the neighbour they
share the longest border with.
"""

import itertools
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.errors
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

__all__ = ["PrecinctCut", "cell_turfs", "cut_precinct", "cut_quality", "partition", "polsby_popper"]

# A cut between two sites of one street block costs as much as this share of a turf's doors of imbalance.
BLOCK_PENALTY = 0.04
# Cutting across the shorter axis of the spread costs this much: it makes long thin turfs.
SHORT_AXIS_PENALTY = 0.03
# A building with more doors than this many targets is split by unit into turfs of its own.
BIG_BUILDING = 1.5
# A building with this share of a turf's doors, or more, is a turf by itself.
SOLO = 0.9
# Metres: seams narrower than twice this between the pieces of a turf are closed.
SNAP_M = 0.01


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

    cells = _cells(x, y, region)
    piece_shapes: list[BaseGeometry] = []
    piece_label: list[int] = []
    piece_site: list[int] = []
    for site, cell in enumerate(cells):
        if site in big:
            strips = _strips(cell, len(big[site]))
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
    graph = _Pieces(shapes, np.array(piece_label, dtype=np.int64), weight, k)
    graph.connect()
    graph.rebalance(movable, np.where(movable, block[sites], -1), mean)
    graph.connect()
    for site in range(len(x)):
        if site not in big and home[site] >= 0:
            labels[site] = graph.labels[home[site]]
    polygons = [_union(list(shapes[graph.labels == label])) for label in range(k)]
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
    cells = np.array(_cells(x, y, region), dtype=object)
    return [_union(list(cells[labels == label])) for label in range(k)]


def _cells(x: NDArray[np.float64], y: NDArray[np.float64], region: Polygon | MultiPolygon) -> list[BaseGeometry]:
    """Each site's Voronoi cell clipped to the region, in site order."""
    if len(x) == 1:
        return [region]
    minx, miny, maxx, maxy = region.bounds
    frame = shapely.box(min(minx, x.min()) - 100, min(miny, y.min()) - 100, max(maxx, x.max()) + 100,
                        max(maxy, y.max()) + 100)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(np.column_stack([x, y])),
                                                       extend_to=frame, ordered=True))
    # Most cells lie wholly inside: testing that is much cheaper than clipping them.
    shapely.prepare(region)
    inside = shapely.contains(region, cells)
    clipped = cells.copy()
    clipped[~inside] = shapely.intersection(cells[~inside], region)
    return list(clipped)


def _strips(cell: BaseGeometry, n: int) -> list[BaseGeometry]:
    """`n` slices of a cell across its longer side, for a building split into `n` turfs."""
    if n == 1 or cell.is_empty:
        return [cell] * n if n == 1 else [cell] + [Polygon()] * (n - 1)
    minx, miny, maxx, maxy = cell.bounds
    if maxx - minx >= maxy - miny:
        edges = np.linspace(minx, maxx, n + 1)
        boxes = [shapely.box(a, miny, b, maxy) for a, b in itertools.pairwise(edges)]
    else:
        edges = np.linspace(miny, maxy, n + 1)
        boxes = [shapely.box(minx, a, maxx, b) for a, b in itertools.pairwise(edges)]
    return list(shapely.intersection(cell, boxes))


def _union(shapes: list[BaseGeometry]) -> BaseGeometry:
    if not shapes:
        return Polygon()
    pieces = np.array(shapes, dtype=object)
    # Pieces tile without overlap, so coverage union is exact and fast; but it refuses, or leaves apart, edges
    # that don't match vertex for vertex (clipping and a split building's strips leave such). Then a general
    # union, and where that leaves hairline seams, a closing by SNAP_M: it fills only seams and notches
    # narrower than 2 x SNAP_M, so the turf gains nothing of its neighbours' ground that matters.
    try:
        merged = shapely.coverage_union_all(pieces)
        if merged.geom_type == "Polygon":
            return merged
    except shapely.errors.GEOSException:
        pass
    merged = shapely.union_all(pieces)
    if merged.geom_type == "Polygon":
        return merged
    closed = merged.buffer(SNAP_M, join_style="mitre").buffer(-SNAP_M, join_style="mitre")
    return closed if closed.geom_type == "Polygon" else merged


class _Pieces:
    """The pieces a precinct is tiled with, their turf labels and which share a border.

    Works on the adjacency graph rather than on polygon unions: a turf is one piece exactly when its
    pieces are connected through shared edges.
    """

    def __init__(self, shapes: NDArray[np.object_], labels: NDArray[np.int64], weight: NDArray[np.float64],
                 k: int) -> None:
        self.shapes, self.labels, self.weight, self.k = shapes, labels.copy(), weight, k
        left, right = shapely.STRtree(shapes).query(shapes, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        boundary = shapely.boundary(shapes)
        shared = shapely.length(shapely.intersection(boundary[left], boundary[right]))
        # Clipping can leave neighbours whose shared edges differ in the last digits: those are measured
        # against a hair's breadth around the neighbour. Pieces meeting at a point don't join a turf.
        near = shared <= 10 * SNAP_M
        shared[near] = shapely.length(shapely.intersection(boundary[left[near]],
                                                           shapely.buffer(shapes[right[near]], SNAP_M, quad_segs=2)))
        edge = shared > 10 * SNAP_M
        self.a = np.concatenate([left[edge], right[edge]])
        self.b = np.concatenate([right[edge], left[edge]])
        self.length = np.concatenate([shared[edge], shared[edge]])
        self.neighbours: list[list[int]] = [[] for _ in range(len(shapes))]
        for i, j in zip(self.a.tolist(), self.b.tolist(), strict=True):
            self.neighbours[i].append(j)

    def components(self) -> NDArray[np.int64]:
        """Component id of each piece within its turf."""
        same = self.labels[self.a] == self.labels[self.b]
        n = len(self.shapes)
        graph = coo_matrix((np.ones(int(same.sum())), (self.a[same], self.b[same])), shape=(n, n))
        return connected_components(graph, directed=False)[1]

    def connect(self, rounds: int = 10) -> None:
        """Give each part cut off from its turf's main part (most doors, then largest) to the neighbouring turf
        it shares the longest border with."""
        area = shapely.area(self.shapes)
        for _ in range(rounds):
            component = self.components()
            moved = False
            for label in range(self.k):
                mine = np.flatnonzero(self.labels == label)
                parts = np.unique(component[mine])
                if len(parts) <= 1:
                    continue
                doors = {c: self.weight[mine[component[mine] == c]].sum() for c in parts}
                size = {c: area[mine[component[mine] == c]].sum() for c in parts}
                main = max(parts, key=lambda c: (doors[c], size[c], -c))
                for c in parts:
                    if c == main:
                        continue
                    inside = np.zeros(len(self.shapes), dtype=bool)
                    inside[mine[component[mine] == c]] = True
                    border = inside[self.a] & ~inside[self.b] & (self.labels[self.b] != label)
                    if not border.any():
                        continue
                    totals = np.bincount(self.labels[self.b[border]], weights=self.length[border],
                                         minlength=self.k)
                    self.labels[inside] = int(np.argmax(totals))
                    moved = True
            if not moved:
                return

    def _stays_connected(self, piece: int, label: int) -> bool:
        """Whether the turf `label` stays one piece without `piece`."""
        rest = [p for p in np.flatnonzero(self.labels == label).tolist() if p != piece]
        if not rest:
            return False
        members = set(rest)
        seen = {rest[0]}
        todo = [rest[0]]
        while todo:
            for q in self.neighbours[todo.pop()]:
                if q in members and q not in seen:
                    seen.add(q)
                    todo.append(q)
        return len(seen) == len(members)

    def rebalance(self, movable: NDArray[np.bool_], block: NDArray[np.int64], mean: float,
                  rounds: int = 400) -> None:
        """Move pieces across turf borders while that brings door counts nearer `mean` (and splits no more
        street blocks than it mends), keeping every turf whole. `block` is each piece's street block or -1."""
        doors = np.bincount(self.labels, weights=self.weight, minlength=self.k)
        blocks, block_code = np.unique(block, return_inverse=True)
        real = blocks[block_code] >= 0
        # How many pieces of each block each turf holds.
        held = np.zeros((len(blocks), self.k), dtype=np.int64)
        np.add.at(held, (block_code[real], self.labels[real]), 1)
        # A street block split between turfs costs as much as this much squared imbalance.
        split_cost = (BLOCK_PENALTY * 4 * mean) ** 2
        for _ in range(rounds):
            source, dest = self.labels[self.a], self.labels[self.b]
            candidate = (source != dest) & movable[self.a]
            if not candidate.any():
                return
            a, src, dst = self.a[candidate], source[candidate], dest[candidate]
            w = self.weight[a]
            gain = ((doors[src] - w - mean) ** 2 + (doors[dst] + w - mean) ** 2
                    - (doors[src] - mean) ** 2 - (doors[dst] - mean) ** 2)
            code = block_code[a]
            has_block = real[a]
            turfs_before = (held[code] > 0).sum(axis=1)
            leaves = held[code, src] == 1  # the source turf holds no more of the block after the move
            joins = held[code, dst] == 0  # the destination turf holds none of it yet
            turfs_after = turfs_before - leaves + joins
            split_change = (turfs_after > 1).astype(int) - (turfs_before > 1).astype(int)
            gain = gain + split_cost * np.where(has_block, split_change, 0)
            order = np.lexsort((dst, a, gain))
            moved = False
            for c in order[gain[order] < -1e-9][:50]:
                if self._stays_connected(int(a[c]), int(src[c])):
                    piece, to = int(a[c]), int(dst[c])
                    doors[src[c]] -= self.weight[piece]
                    doors[to] += self.weight[piece]
                    if has_block[c]:
                        held[code[c], src[c]] -= 1
                        held[code[c], to] += 1
                    self.labels[piece] = to
                    moved = True
                    break
            if not moved:
                return


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
