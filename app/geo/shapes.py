"""Checking drawn shapes, and moving shapes between longitude/latitude and metres."""

import re

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from app.geo.assign import utm_crs

__all__ = ["Projection", "invalid_reason"]

_AT = re.compile(r"^(?P<reason>[^\[]+)\[(?P<x>[-0-9.e+]+) (?P<y>[-0-9.e+]+)\]$")


def invalid_reason(shape: BaseGeometry) -> tuple[str, tuple[float, float] | None] | None:
    """Why a shape is invalid, and where, or None for a valid shape.

    Examples
    --------
    >>> bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])
    >>> invalid_reason(bowtie)
    ('Self-intersection', (1.0, 1.0))
    >>> invalid_reason(shapely.box(0, 0, 1, 1)) is None
    True
    """
    if shape.is_valid:
        return None
    reason = shapely.is_valid_reason(shape)
    found = _AT.match(reason)
    if found is None:
        return reason, None
    return found["reason"].strip(), (float(found["x"]), float(found["y"]))


class Projection:
    """Longitude/latitude (EPSG:4326) to and from the UTM zone of an area, for metres and areas."""

    def __init__(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> None:
        crs = utm_crs(lon, lat)
        self._to = Transformer.from_crs(4326, crs, always_xy=True)
        self._back = Transformer.from_crs(crs, 4326, always_xy=True)

    def points(self, lon: NDArray[np.float64],
               lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        x, y = self._to.transform(lon, lat)
        return np.asarray(x), np.asarray(y)

    def to_metres(self, shapes: BaseGeometry | NDArray[np.object_]) -> BaseGeometry | NDArray[np.object_]:
        return shapely.transform(shapes, lambda xy: np.column_stack(self._to.transform(xy[:, 0], xy[:, 1])))

    def to_degrees(self, shapes: BaseGeometry | NDArray[np.object_]) -> BaseGeometry | NDArray[np.object_]:
        return shapely.transform(shapes, lambda xy: np.column_stack(self._back.transform(xy[:, 0], xy[:, 1])))
