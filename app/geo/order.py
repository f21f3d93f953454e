"""Walking order of turfs: their doors in the order a canvasser knocks, and the route walked between them.

`app.geo.walk` orders a turf's buildings along the streets; this orders the doors of many turfs at once (the
units of a building in natural order) and gives each route as GeoJSON in degrees.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import shapely
from numpy.typing import NDArray

from app.geo.geojson import DIGITS
from app.geo.shapes import Projection
from app.geo.walk import Stops, StreetNetwork, plan_walk
from app.text import natural_key

__all__ = ["WALK_COLUMNS", "Streets", "TurfWalk", "building_stops", "order_turfs"]

# Columns order_turfs needs of each door: the turf (any key), the household, its building and where that is.
WALK_COLUMNS = ["turf", "household_id", "building_id", "unit", "lon", "lat", "street_id", "street_side",
                "street_pos_m"]


@dataclass(frozen=True)
class Streets:
    """A campaign's street network, and each street row's segment index in it."""

    network: StreetNetwork
    index: dict[int, int]


@dataclass(frozen=True)
class TurfWalk:
    household_ids: list[int]  # in walking order
    route: str | None  # a GeoJSON LineString in degrees
    length_m: float


def _geojson_line(points: NDArray[np.float64]) -> str:
    # Coordinates as those of the stored polygons (app.geo.geojson): about 10 cm, plenty for a door.
    return orjson.dumps({"type": "LineString", "coordinates": np.round(points, DIGITS).tolist()}).decode()


def building_stops(streets: Streets | None, projection: Projection,
                   doors: pd.DataFrame) -> tuple[NDArray[np.int64], Stops]:
    """The buildings of one turf's doors (WALK_COLUMNS, with `x` and `y` in metres if already projected), by
    id, and the stops a walk visits."""
    buildings = doors.drop_duplicates("building_id").sort_values("building_id")
    if "x" in buildings:
        x, y = buildings["x"].to_numpy(float), buildings["y"].to_numpy(float)
    else:
        x, y = projection.points(buildings["lon"].to_numpy(float), buildings["lat"].to_numpy(float))
    index = streets.index if streets is not None else {}
    segment = np.array([index.get(int(s), -1) if pd.notna(s) else -1 for s in buildings["street_id"]],
                       dtype=np.int64)
    return buildings["building_id"].to_numpy(), Stops(
        np.asarray(x, float), np.asarray(y, float), segment, buildings["street_side"].to_numpy(np.int64),
        buildings["street_pos_m"].to_numpy(float))


def order_turfs(streets: Streets | None, projection: Projection, doors: pd.DataFrame) -> dict[Any, TurfWalk]:
    """The walking order of every turf in `doors` (WALK_COLUMNS): buildings along the route, then the units
    of each building in natural order (`2` before `10`). Deterministic for the same data."""
    walks: dict[Any, TurfWalk] = {}
    network = streets.network if streets is not None else None
    # Projected once for all turfs (a transform a turf costs more than the points).
    x, y = projection.points(doors["lon"].to_numpy(float), doors["lat"].to_numpy(float))
    doors = doors.assign(x=x, y=y)
    for turf, group in doors.groupby("turf", sort=True):
        building_ids, stops = building_stops(streets, projection, group)
        walk = plan_walk(network, stops)
        rank = dict(zip(building_ids[walk.order].tolist(), range(len(walk.order)), strict=True))
        ordered = sorted(zip(group["building_id"].tolist(), [natural_key(u) for u in group["unit"]],
                             group["household_id"].tolist(), strict=True),
                         key=lambda d: (rank[d[0]], d[1], d[2]))
        route = None
        if walk.route is not None:
            route = _geojson_line(shapely.get_coordinates(projection.to_degrees(walk.route)))
        walks[turf] = TurfWalk([int(d[2]) for d in ordered], route, round(walk.length_m, 1))
    return walks
