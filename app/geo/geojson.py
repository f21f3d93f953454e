"""GeoJSON text of shapes, many at once, with coordinates of at most `DIGITS` decimals.

Turfs and precincts keep this text beside their WKB, written whenever the shape changes, so the answers that
carry polygons to maps and phones (progress, lists, walk lists) embed it as stored. The shapes are stored snapped
already (`app.geo.coverage`); this writes them. GEOS's own GeoJSON writer prints some grid coordinates with
seventeen digits (-71.091113 as -71.09111300000001), so the text is made by orjson, which prints the shortest
decimal that reads back as the same number.
"""

from collections.abc import Sequence

import numpy as np
import orjson
import shapely
from numpy.typing import ArrayLike

__all__ = ["DIGITS", "geometries", "texts"]

# Six decimals of a degree: about 10 cm, finer than any address point.
DIGITS = 6


def _ring(ring: shapely.LinearRing, digits: int) -> list[list[float]]:
    return np.round(shapely.get_coordinates(ring), digits).tolist()


def _polygon(polygon: shapely.Polygon, digits: int) -> list[list[list[float]]]:
    return [_ring(polygon.exterior, digits), *(_ring(hole, digits) for hole in polygon.interiors)]


def texts(shapes: ArrayLike, digits: int = DIGITS) -> list[str]:
    """Each Polygon or MultiPolygon as a GeoJSON geometry string, its coordinates rounded to `digits` decimals.

    Only rounded: snap the shapes first (`app.geo.coverage.snap_coverage`), which keeps them valid and wound as
    RFC 7946 says; rounding a snapped coordinate changes it by less than its last bit.

    Examples
    --------
    >>> from shapely import Polygon
    >>> texts([Polygon([(-71.091113, 42.371143), (-71.09, 42.371143), (-71.09, 42.372)])])
    ['{"type":"Polygon","coordinates":[[[-71.091113,42.371143],[-71.09,42.371143],[-71.09,42.372],[-71.091113,42.371143]]]}']
    """
    out = []
    for shape in np.asarray(shapes, dtype=object).ravel():
        if shape.geom_type == "Polygon":
            geometry = {"type": "Polygon", "coordinates": _polygon(shape, digits) if not shape.is_empty else []}
        else:
            geometry = {"type": "MultiPolygon", "coordinates": [_polygon(p, digits) for p in shape.geoms]}
        out.append(orjson.dumps(geometry).decode())
    return out


def geometries(wkbs: Sequence[bytes], digits: int = DIGITS) -> list[str]:
    """Each WKB shape as `texts` writes it."""
    if not wkbs:
        return []
    return texts(shapely.from_wkb(np.asarray(wkbs, dtype=object)), digits)
