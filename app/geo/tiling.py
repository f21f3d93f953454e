"""Tiling a precinct for a cut: its sites' Voronoi cells clipped to it, strips of a building split into several
turfs, the union of pieces into a turf, and the graph of pieces that keeps each turf whole and balanced.

Metric coordinates (metres) throughout, as in `app.geo.cut`, which uses these.
"""

import itertools

import numpy as np
import shapely
import shapely.errors
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

__all__ = ["SNAP_M", "Pieces", "cells", "strips", "union"]

# Metres: seams narrower than twice this between the pieces of a turf are closed.
SNAP_M = 0.01


def cells(x: NDArray[np.float64], y: NDArray[np.float64], region: Polygon | MultiPolygon) -> list[BaseGeometry]:
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


def strips(cell: BaseGeometry, n: int) -> list[BaseGeometry]:
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


def union(shapes: list[BaseGeometry]) -> BaseGeometry:
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


class Pieces:
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

    def rebalance(self, movable: NDArray[np.bool_], block: NDArray[np.int64], mean: float, *,
                  block_penalty: float, rounds: int = 400) -> None:
        """Move pieces across turf borders while that brings door counts nearer `mean` (and splits no more
        street blocks than it mends), keeping every turf whole. `block` is each piece's street block or -1;
        splitting one costs as much as `block_penalty` of a turf's doors of imbalance."""
        doors = np.bincount(self.labels, weights=self.weight, minlength=self.k)
        blocks, block_code = np.unique(block, return_inverse=True)
        real = blocks[block_code] >= 0
        # How many pieces of each block each turf holds.
        held = np.zeros((len(blocks), self.k), dtype=np.int64)
        np.add.at(held, (block_code[real], self.labels[real]), 1)
        # A street block split between turfs costs as much as this much squared imbalance.
        split_cost = (block_penalty * 4 * mean) ** 2
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
