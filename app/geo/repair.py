"""Make imported polygons valid, and say which could not be."""

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

__all__ = ["polygonal"]


def polygonal(geometry: BaseGeometry | None) -> tuple[Polygon | MultiPolygon | None, str]:
    """The polygonal part of `geometry`, repaired with make_valid if need be, and what happened.

    The status is `ok`, `repaired`, or the reason it can't be used (`empty`, `not a polygon`,
    `no area after repair`).

    Examples
    --------
    >>> bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    >>> fixed, status = polygonal(bowtie)
    >>> status, fixed.geom_type, round(fixed.area, 2)
    ('repaired', 'MultiPolygon', 0.5)
    >>> polygonal(shapely.Point(0, 0))[1]
    'not a polygon'
    """
    if geometry is None or geometry.is_empty:
        return None, "empty"
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        return None, "not a polygon"
    if geometry.is_valid:
        return geometry, "ok"
    repaired = shapely.make_valid(geometry)
    parts = [g for g in _flatten(repaired) if isinstance(g, Polygon) and not g.is_empty and g.area > 0]
    if not parts:
        return None, "no area after repair"
    return (parts[0] if len(parts) == 1 else MultiPolygon(parts)), "repaired"


def _flatten(geometry: BaseGeometry) -> NDArray[np.object_]:
    return shapely.get_parts(shapely.get_parts(geometry))
