"""GeoJSON text of stored shapes, many at once (shapely's vectorised functions, no per-shape Python)."""

from collections.abc import Sequence

import numpy as np
import shapely

# Six decimals of a degree: about 10 cm, finer than any address point.
DIGITS = 6


def geometries(wkbs: Sequence[bytes], digits: int = DIGITS) -> list[str]:
    """Each WKB shape as a GeoJSON geometry string, snapped to a grid of `digits` decimals.

    Snapped by shapely's precision reducer rather than rounded: rounding alone can fold a narrow spike of a
    polygon onto itself, and a consumer's validator then refuses the shape.
    """
    if not wkbs:
        return []
    shapes = shapely.set_precision(shapely.from_wkb(np.asarray(wkbs, dtype=object)), 10.0 ** -digits)
    return [str(text) for text in shapely.to_geojson(shapes)]
