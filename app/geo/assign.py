"""Put points into the polygons that hold them, snapping near misses to the nearest one."""

from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from shapely import MultiPolygon, Polygon

__all__ = ["assign_points", "utm_crs"]


def utm_crs(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> CRS:
    """The UTM zone (WGS84) holding the centre of the points' bounding box, a metric CRS for them.

    The zone is arithmetic (6 degrees wide from -180); asking pyproj's database costs 70 ms an import.

    Examples
    --------
    >>> utm_crs(np.array([-71.1]), np.array([42.37])).to_epsg()
    32619
    >>> utm_crs(np.array([151.2]), np.array([-33.9])).to_epsg()
    32756
    """
    lon_c = float((np.nanmin(lon) + np.nanmax(lon)) / 2)
    lat_c = float((np.nanmin(lat) + np.nanmax(lat)) / 2)
    zone = min(int((lon_c + 180) // 6) + 1, 60)
    return CRS.from_epsg((32600 if lat_c >= 0 else 32700) + zone)


def assign_points(
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    polygons: Sequence[Polygon | MultiPolygon],
    *,
    snap_m: float,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Index of the polygon holding each point (EPSG:4326), and metres snapped.

    A point on a boundary counts as inside; a point in two polygons goes to the lower index, so the
    answer is deterministic. A point outside every polygon goes to the nearest one if it lies within
    `snap_m` metres (measured in the points' UTM zone); its distance is returned. A point farther
    than that gets index -1 and distance NaN. Points inside get distance 0.

    Examples
    --------
    >>> squares = [shapely.box(0, 0, 0.01, 0.01), shapely.box(0.01, 0, 0.02, 0.01)]
    >>> idx, dist = assign_points(np.array([0.005, 0.015, 0.0203, 0.5]), np.array([0.005, 0.005, 0.005, 0.5]),
    ...                           squares, snap_m=50)
    >>> idx.tolist(), np.round(dist).tolist()
    ([0, 1, 1, -1], [0.0, 0.0, 33.0, nan])
    """
    points = shapely.points(lon, lat)
    index = np.full(len(points), -1, dtype=np.int64)
    distance = np.full(len(points), np.nan)
    if len(points) == 0 or len(polygons) == 0:
        return index, distance
    # One tree over the many points, queried by the few polygons: the fastest way round (PERFORMANCE.md).
    polygon_idx, point_idx = shapely.STRtree(points).query(np.asarray(polygons, dtype=object), predicate="intersects")
    order = np.lexsort((polygon_idx, point_idx))
    point_idx, polygon_idx = point_idx[order], polygon_idx[order]
    first = np.unique(point_idx, return_index=True)[1]
    index[point_idx[first]] = polygon_idx[first]
    distance[point_idx[first]] = 0.0

    outside = np.flatnonzero(index < 0)
    if len(outside) and snap_m > 0:
        to_m = Transformer.from_crs(4326, utm_crs(lon, lat), always_xy=True)
        metric_polygons = [shapely.transform(p, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
                           for p in polygons]
        x, y = to_m.transform(lon[outside], lat[outside])
        near_point, near_polygon = shapely.STRtree(metric_polygons).query_nearest(
            shapely.points(x, y), max_distance=snap_m, all_matches=False)
        snapped = outside[near_point]
        index[snapped] = near_polygon
        distance[snapped] = shapely.distance(shapely.points(x[near_point], y[near_point]),
                                             np.asarray(metric_polygons, dtype=object)[near_polygon])
    return index, distance
