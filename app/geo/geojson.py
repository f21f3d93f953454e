"""GeoJSON text of shapes, many at once (shapely's vectorised functions, no per-shape Python).

Turfs and precincts keep this text beside their WKB, written whenever the shape changes, so the answers that
carry polygons to maps and phones (progress, walk lists) embed it as stored.
"""

from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import ArrayLike

__all__ = ["DIGITS", "geometries", "snapped"]

# Six decimals of a degree: about 10 cm, finer than any address point.
DIGITS = 6


def snapped(shapes: ArrayLike, digits: int = DIGITS) -> list[str]:
    """Each shape (EPSG:4326) as a GeoJSON geometry string, snapped to a grid of `digits` decimals.

    Snapped by shapely's precision reducer rather than rounded: rounding alone can fold a narrow spike of a
    polygon onto itself, and a consumer's validator then refuses the shape.

    Examples
    --------
    >>> from shapely import Polygon
    >>> snapped([Polygon([(0, 0), (0, 1.00000004), (1, 1), (1, 0)])])
    ['{"type":"Polygon","coordinates":[[[0.0,1.0],[1.0,1.0],[1.0,0.0],[0.0,0.0],[0.0,1.0]]]}']
    """
    shapes = np.asarray(shapes, dtype=object)
    if shapes.size == 0:
        return []
    return [str(text) for text in shapely.to_geojson(shapely.set_precision(shapes, 10.0 ** -digits))]


def geometries(wkbs: Sequence[bytes], digits: int = DIGITS) -> list[str]:
    """Each WKB shape as `snapped` GeoJSON text."""
    if not wkbs:
        return []
    return snapped(shapely.from_wkb(np.asarray(wkbs, dtype=object)), digits)
