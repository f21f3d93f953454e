"""Street centrelines: import them, and match every building to the block it fronts."""

from pathlib import Path

import anyio
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses.models import Building
from app.db import begin_write
from app.errors import BadFile
from app.events import StreetsImported, publish
from app.geo.assign import utm_crs
from app.geo.order import Streets
from app.geo.shapes import Projection
from app.geo.streets import house_number, match_streets, street_name
from app.geo.walk import street_network
from app.ingest import (
    FieldSpec,
    ImportReport,
    Progress,
    Rejection,
    mapped_columns,
    no_progress,
    read_in_thread,
    read_source,
)
from app.streets.models import Street
from app.upsert import apply_upsert, plan_upsert, stored_rows

STREET_FIELDS = FieldSpec(
    defaults={"id": "ID", "name": "Street", "from_node": "FromNode", "to_node": "ToNode", "l_from": "L_From",
              "l_to": "L_To", "r_from": "R_From", "r_to": "R_To", "direction": "Direction"},
    optional=frozenset({"from_node", "to_node", "l_from", "l_to", "r_from", "r_to", "direction"}),
    max_length={"id": 64, "name": 200, "from_node": 32, "to_node": 32},
)
FIELDS = ("name", "from_node", "to_node", "l_from", "l_to", "r_from", "r_to", "direction", "length_m", "geometry")


def _int_or_none(values: pd.Series) -> list[int | None]:
    numbers = pd.to_numeric(values.where(values != "", None), errors="coerce")
    # -1 means "no addresses on this side" in many centreline files.
    return [None if (v != v or v < 0) else int(v) for v in numbers.tolist()]


def _directions(values: pd.Series) -> list[int]:
    numbers = pd.to_numeric(values.where(values != "", None), errors="coerce").fillna(0)
    return [int(np.sign(v)) for v in numbers.tolist()]


def read_streets(path: Path, label: str, mapping: dict[str, list[str]]) -> tuple[int, pd.DataFrame, list[Rejection]]:
    """Read centrelines: rows read, the segments (external_id and FIELDS, geometry as WKB), rejections."""
    frame = read_source(path, label, geometry=True)
    if not isinstance(frame, gpd.GeoDataFrame):
        raise BadFile(f"{label}: the file has no geometry")
    frame = frame.set_crs(4326) if frame.crs is None else frame.to_crs(4326)
    table = mapped_columns(frame, mapping, STREET_FIELDS, label)
    geometry = shapely.line_merge(frame.geometry.to_numpy())
    lines = np.isin(shapely.get_type_id(geometry), [1, 5]) & ~shapely.is_empty(geometry)
    rejected = [Rejection(label, i + 1, "geometry", "not a line", table["id"].iloc[i] or None)
                for i in np.flatnonzero(~lines)]
    rejected += [Rejection(label, i + 1, "+".join(mapping["id"]), "no id") for i in np.flatnonzero(
        (table["id"] == "").to_numpy() & lines)]
    keep = lines & (table["id"] != "").to_numpy() & ~table["id"].duplicated().to_numpy()
    table, geometry = table[keep], geometry[keep]
    x, y = shapely.get_coordinates(geometry).T
    to_m = Transformer.from_crs(4326, utm_crs(x, y), always_xy=True)
    metric = shapely.transform(geometry, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
    segments = pd.DataFrame({
        "external_id": table["id"].to_numpy(),
        "name": [street_name(n) for n in table["name"]],
        "from_node": table["from_node"].replace("", None).to_numpy() if "from_node" in table else None,
        "to_node": table["to_node"].replace("", None).to_numpy() if "to_node" in table else None,
        **{f: _int_or_none(table[f]) if f in table else None for f in ("l_from", "l_to", "r_from", "r_to")},
        "direction": _directions(table["direction"]) if "direction" in table else 0,
        "length_m": shapely.length(metric),
        "geometry": shapely.to_wkb(geometry),
    })
    return len(frame), segments, rejected


async def import_streets(session: AsyncSession, campaign_id: int, path: Path, *, label: str,
                         mapping: dict[str, list[str]], progress: Progress = no_progress) -> ImportReport:
    """Create or update the campaign's street segments, then match buildings to them, in one transaction."""
    await begin_write(session)
    read, segments, rejected = await read_in_thread(lambda: read_streets(path, label, mapping), progress)
    wanted = list(segments[["external_id", *FIELDS]].astype(object).where(segments.notna(), None)
                  .itertuples(index=False, name=None))
    upsert = plan_upsert(await stored_rows(session, Street, "external_id", FIELDS, campaign_id), wanted, FIELDS)
    await apply_upsert(session, Street, "external_id", FIELDS, campaign_id, upsert, progress, "streets")
    matched = await match_buildings(session, campaign_id)
    # Turfs now walk along these streets.
    await publish(session, StreetsImported(campaign_id))
    await session.commit()
    return ImportReport("streets", label, read=read, created=len(upsert.new), updated=len(upsert.changed),
                        unchanged=upsert.unchanged, rejected=rejected, extra={"buildings_matched": matched})


async def has_streets(session: AsyncSession, campaign_id: int) -> bool:
    return (await session.scalar(select(Street.id).where(Street.campaign_id == campaign_id).limit(1))) is not None


async def load_streets(session: AsyncSession, campaign_id: int, projection: Projection) -> Streets | None:
    """The campaign's street network in metres (`projection`), None when it has no streets."""
    rows = (await session.execute(select(Street.id, Street.geometry).where(Street.campaign_id == campaign_id)
                                  .order_by(Street.id))).all()
    if not rows:
        return None
    lines = projection.to_metres(shapely.from_wkb([r.geometry for r in rows]))
    return Streets(await anyio.to_thread.run_sync(street_network, lines), {r.id: i for i, r in enumerate(rows)})


async def match_buildings(session: AsyncSession, campaign_id: int) -> int:
    """Match every building of the campaign to the street segment it fronts; the count matched. Flushes only."""
    streets = (await session.execute(select(Street.id, Street.name, Street.geometry, Street.l_from, Street.l_to,
                                            Street.r_from, Street.r_to)
                                     .where(Street.campaign_id == campaign_id).order_by(Street.id))).all()
    if not streets:
        return 0
    buildings = (await session.execute(select(Building.id, Building.lon, Building.lat, Building.street,
                                              Building.number, Building.street_id, Building.street_side,
                                              Building.street_pos_m)
                                       .where(Building.campaign_id == campaign_id).order_by(Building.id))).all()
    if not streets or not buildings:
        return 0

    def compute() -> tuple[int, list[dict[str, object]]]:
        lon = np.array([b.lon for b in buildings])
        lat = np.array([b.lat for b in buildings])
        to_m = Transformer.from_crs(4326, utm_crs(lon, lat), always_xy=True)
        x, y = to_m.transform(lon, lat)
        lines = shapely.transform(shapely.from_wkb([s.geometry for s in streets]),
                                  lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
        codes: dict[str, int] = {}
        segment_names = np.array([codes.setdefault(s.name, len(codes)) for s in streets])
        names = np.array([codes.get(street_name(b.street), -1) for b in buildings])
        numbers = np.array([house_number(b.number) for b in buildings])
        ranges = np.array([[-1 if v is None else v for v in (s.l_from, s.l_to, s.r_from, s.r_to)] for s in streets])
        segment, side, position = match_streets(x, y, names, numbers, lines, segment_names, ranges)
        changes = []
        for i, b in enumerate(buildings):
            street_id = streets[segment[i]].id if segment[i] >= 0 else None
            values = (street_id, int(side[i]), round(float(position[i]), 2))
            if values != (b.street_id, b.street_side, b.street_pos_m):
                changes.append({"id": b.id, "street_id": values[0], "street_side": values[1],
                                "street_pos_m": values[2]})
        return int((segment >= 0).sum()), changes

    matched, changes = await anyio.to_thread.run_sync(compute)
    for start in range(0, len(changes), 5000):
        await session.execute(update(Building), changes[start:start + 5000])
    return matched
