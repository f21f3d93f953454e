"""Snap a coverage (precincts, a precinct's turfs) to a grid so that it stays one: edges shared before are shared
after, vertex for vertex, and no snapped polygon overlaps or leaves a gap beside another.

Snapping each polygon on its own can't keep that: where one polygon has a vertex on another's edge (the corner
of a turf on a precinct's edge), the vertex moves to the grid and the edge stays straight, so a sliver opens or
closes between them. Here the rings of all the polygons are noded together with snap rounding (every segment
passing through a grid cell holding a vertex bends through that vertex), the faces of that one arrangement are
found, and each polygon is rebuilt from the faces it held. Coordinates are in the shapes' own CRS; the grid is
in its units: `digits` decimals of them.
"""

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

__all__ = ["oriented", "snap_coverage"]

# A face goes to a polygon holding at least this share of it (a face of the arrangement lies inside or outside
# each polygon, but for the hair the polygon's boundary moved to reach the grid).
HELD = 0.5


def oriented(shapes: ArrayLike) -> NDArray[np.object_]:
    """Polygons wound as RFC 7946 says: exterior rings counter-clockwise, holes clockwise.

    Examples
    --------
    >>> from shapely import Polygon
    >>> oriented([Polygon([(0, 0), (0, 1), (1, 1), (1, 0)])])[0].exterior.is_ccw
    True
    """
    return shapely.orient_polygons(np.asarray(shapes, dtype=object), exterior_cw=False)


def snap_coverage(shapes: ArrayLike, digits: int, *, partition: bool = True) -> NDArray[np.object_]:
    """The (Multi)Polygons `shapes` snapped to a grid of `digits` decimals as one coverage, valid and `oriented`.

    With `partition`, a place two inputs overlap goes to the one holding more of it, so the outputs never
    overlap (turfs); without, it stays in both (precincts as a file gives them). A polygon narrower than the grid
    everywhere comes out empty.

    Examples
    --------
    >>> from shapely import Polygon
    >>> left = Polygon([(0, 0), (0, 1), (0.6, 1), (0.533, 0.33), (0.5, 0)])  # (0.533, 0.33) is on the seam
    >>> right = Polygon([(0.5, 0), (0.6, 1), (1, 1), (1, 0)])
    >>> round(float(sum(shapely.area(shapely.set_precision([left, right], 0.1)))), 3)  # one by one: a gap
    0.985
    >>> a, b = snap_coverage([left, right], 1)
    >>> float(a.area + b.area), a.exterior.coords[:3], b.exterior.coords[-3:]
    (1.0, [(0.0, 0.0), (0.5, 0.0), (0.5, 0.3)], [(0.6, 1.0), (0.5, 0.3), (0.5, 0.0)])
    """
    shapes = np.asarray(shapes, dtype=object)
    if shapes.size == 0:
        return shapes
    grid_size = 10.0 ** -digits
    noded = shapely.union_all(shapely.boundary(shapes), grid_size=grid_size)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    members: list[list[int]] = [[] for _ in range(len(shapes))]
    for f, held in enumerate(_holders(shapes, faces, partition=partition)):
        for i in held:
            members[i].append(f)
    out = np.empty(len(shapes), dtype=object)
    for i, shape in enumerate(shapes):
        out[i] = _merged(faces[members[i]]) if members[i] else shapely.set_precision(shape, grid_size)
    # Snap rounding leaves a coordinate within a unit of the last place of its grid line; rounding makes it the
    # double nearest the decimal, so it prints in `digits` decimals and shared vertices stay equal. Normalized,
    # each ring starts at its least vertex: a polygon the snapping left as it was comes out byte for byte the same.
    return oriented(shapely.normalize(shapely.transform(out, lambda xy: np.round(xy, digits))))


def _holders(shapes: NDArray[np.object_], faces: NDArray[np.object_], *, partition: bool) -> list[list[int]]:
    """Per face, the shapes it goes to: one or none with `partition`, else every shape holding it.

    Most faces have their inner point inside one shape only: theirs. The others (a point on a seam the grid
    moved, or inside shapes that overlap) are weighed by the share of them each shape holds: a face its shapes
    hold less than `HELD` of in all is a gap between them, and stays one.
    """
    tree = shapely.STRtree(shapes)
    face, shape = tree.query(shapely.point_on_surface(faces), predicate="intersects")
    count = np.bincount(face, minlength=len(faces))
    single = count[face] == 1
    owner = np.full(len(faces), -1, dtype=np.int64)
    owner[face[single]] = shape[single]
    holders: list[list[int]] = [[int(o)] if o >= 0 else [] for o in owner]
    doubtful = np.flatnonzero(count != 1)
    if len(doubtful):
        at, by = tree.query(faces[doubtful], predicate="intersects")
        share = (shapely.area(shapely.intersection(faces[doubtful][at], shapes[by]))
                 / shapely.area(faces[doubtful][at]))
        # By face, and within a face the most held first (of equals, the first shape).
        order = np.lexsort((by, -share, at))
        at, by, share = at[order], by[order], share[order]
        starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])
        for begin, end in zip(starts.tolist(), [*starts[1:].tolist(), len(at)], strict=True):
            if share[begin:end].sum() < HELD:
                continue
            f = int(doubtful[at[begin]])
            owner[f] = by[begin]
            holders[f] = sorted(by[begin:end][share[begin:end] >= HELD].tolist()) or [int(by[begin])]
    if partition:
        return [[int(o)] if o >= 0 else [] for o in owner]
    return holders


def _merged(faces: NDArray[np.object_]) -> shapely.Geometry:
    """One shape of faces of one arrangement: they meet edge to edge, so a coverage union joins them exactly."""
    if len(faces) == 1:
        return faces[0]
    try:
        return shapely.coverage_union_all(faces)
    except shapely.errors.GEOSException:
        return shapely.union_all(faces)
