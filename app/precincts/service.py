"""Precincts: import from GeoJSON, Shapefile or GeoPackage, read, and keep their counts."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import geopandas as gpd
import numpy as np
import shapely
from shapely import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses.models import Building, Household, Person
from app.db import begin_write, utcnow
from app.errors import BadFile, Invalid, NotFound
from app.events import PrecinctsChanged, publish
from app.geo.assign import assign_points
from app.geo.coverage import snap_coverage
from app.geo.geojson import DIGITS, texts
from app.geo.repair import polygonal
from app.geo.shapes import Projection
from app.ingest import ImportReport, Progress, Rejection, no_progress, read_in_thread, read_source
from app.pagination import int_cursor, page
from app.precincts.models import Precinct

DEFAULT_ID_FIELD = "precinct_id"


@dataclass(frozen=True)
class PrecinctRow:
    code: str
    name: str
    geometry: Polygon | MultiPolygon


def read_precincts(path: Path, label: str, *, id_field: str = DEFAULT_ID_FIELD,
                   name_field: str | None = None) -> tuple[list[PrecinctRow], list[Rejection], list[int]]:
    """Read precinct polygons in EPSG:4326: the rows, the features rejected, the indexes repaired.

    Raises BadFile for an unreadable file, a missing field, or a file whose CRS can't be known.
    """
    frame = read_source(path, label, geometry=True)
    if not isinstance(frame, gpd.GeoDataFrame):
        raise BadFile(f"{label}: the file has no geometry")
    for option, column in (("id_field", id_field), ("name_field", name_field)):
        if column is not None and column not in frame.columns:
            fields = ", ".join(c for c in frame.columns if c != "geometry") or "none"
            raise BadFile(f"{label}: no field {column!r} for the precinct {option.removesuffix('_field')} "
                          f"(fields are: {fields})", errors=[{"field": option, "message": f"no field {column!r}"}])
    if frame.crs is None:
        minx, miny, maxx, maxy = frame.total_bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise BadFile(f"{label}: the file names no CRS and its coordinates are not longitude/latitude")
        frame = frame.set_crs(4326)
    elif not frame.crs.equals("EPSG:4326"):
        frame = frame.to_crs(4326)

    rows: list[PrecinctRow] = []
    rejected: list[Rejection] = []
    repaired: list[int] = []
    seen: set[str] = set()
    codes = frame[id_field].astype("string").fillna("").str.strip()
    names = frame[name_field].astype("string").fillna("").str.strip() if name_field else codes
    for i, (code, name, geometry) in enumerate(zip(codes, names, frame.geometry, strict=True)):
        if not code:
            rejected.append(Rejection(label, i + 1, id_field, "no precinct id"))
            continue
        if "\x00" in code or "\x00" in name:
            rejected.append(Rejection(label, i + 1, id_field, "holds a NUL character"))
            continue
        if len(code) > 64 or len(name) > 200:
            rejected.append(Rejection(label, i + 1, id_field if len(code) > 64 else name_field,
                                      "longer than 64 characters" if len(code) > 64 else "longer than 200 characters"))
            continue
        if code in seen:
            rejected.append(Rejection(label, i + 1, id_field, f"precinct {code} appears twice", code))
            continue
        shape, status = polygonal(geometry)
        if shape is not None and not _lon_lat(shape):
            shape, status = None, "coordinates outside longitude -180..180, latitude -90..90"
        if shape is None:
            rejected.append(Rejection(label, i + 1, "geometry", f"feature {i}: {status}", code))
            continue
        if status == "repaired":
            repaired.append(i)
        seen.add(code)
        rows.append(PrecinctRow(code, name or code, shape))
    return rows, rejected, repaired


def _lon_lat(shape: Polygon | MultiPolygon) -> bool:
    minx, miny, maxx, maxy = shape.bounds
    return -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90


async def import_precincts(session: AsyncSession, campaign_id: int, path: Path, *, label: str,
                           id_field: str = DEFAULT_ID_FIELD, name_field: str | None = None,
                           progress: Progress = no_progress) -> ImportReport:
    """Create or update the campaign's precincts from a file, in one transaction.

    A precinct whose shape changed takes back the buildings that now fall in it.
    """
    await begin_write(session)
    rows, rejected, repaired = await read_in_thread(
        lambda: read_precincts(path, label, id_field=id_field, name_field=name_field), progress)
    report = ImportReport("precincts", label, read=len(rows) + len(rejected), rejected=rejected,
                          extra={"repaired": len(repaired)})
    existing = {r.code: r for r in (await session.execute(
        select(Precinct.id, Precinct.code, Precinct.name, Precinct.geometry)
        .where(Precinct.campaign_id == campaign_id))).all()}
    now = utcnow()
    new, changed = [], []
    reshaped = False

    codes = {row.code for row in rows}
    others = [r.geometry for r in existing.values() if r.code not in codes]

    def columns() -> list[dict[str, Any]]:
        # Snapped with the campaign's other precincts beside them as one coverage, so neighbours keep their shared
        # borders (an overlap the file has stays: precincts are as the file draws them).
        shapes = np.array([row.geometry for row in rows], dtype=object)
        beside = np.array(shapely.from_wkb(others), dtype=object)
        if len(beside) and len(shapes):
            near = shapely.STRtree(beside).query(shapes, predicate="dwithin", distance=10.0 ** -DIGITS)[1]
            beside = beside[np.unique(near)]
        shapes = snap_coverage([*shapes, *beside], DIGITS, partition=False)[:len(rows)]
        return [shape_columns(shape, text) for shape, text in zip(shapes, texts(shapes), strict=True)]

    # Off the event loop, as the reading was: a state's precincts take seconds to snap and encode.
    shapes = await anyio.to_thread.run_sync(columns)
    for i, (row, shape) in enumerate(zip(rows, shapes, strict=True)):
        progress("writing", i, len(rows))
        values = {"name": row.name, **shape, "updated_at": now}
        wkb = values["geometry"]
        old = existing.get(row.code)
        if old is None:
            new.append({"campaign_id": campaign_id, "code": row.code, "created_at": now, **values})
        elif old.name != row.name or old.geometry != wkb:
            reshaped |= old.geometry != wkb
            changed.append({"id": old.id, **values})
    if new:
        await session.execute(insert(Precinct), new)
    if changed:
        await session.execute(update(Precinct), changed)
    report.created, report.updated = len(new), len(changed)
    report.unchanged = len(rows) - len(new) - len(changed)
    if reshaped:
        report.extra["buildings_moved"] = await reassign_buildings(session, campaign_id)
    await refresh_counts(session, campaign_id)
    progress("writing", len(rows), len(rows))
    await session.commit()
    return report


async def precinct_shapes(session: AsyncSession, campaign_id: int) -> tuple[list[int], list[Polygon | MultiPolygon]]:
    """The campaign's precinct ids and polygons, in id order."""
    result = await session.execute(select(Precinct.id, Precinct.geometry)
                                   .where(Precinct.campaign_id == campaign_id).order_by(Precinct.id))
    rows = result.all()
    return [r.id for r in rows], list(shapely.from_wkb([r.geometry for r in rows]))


async def reassign_buildings(session: AsyncSession, campaign_id: int) -> int:
    """Move buildings (and their households) to the precinct now holding them, or the nearest; the count moved."""
    ids, shapes = await precinct_shapes(session, campaign_id)
    buildings = (await session.execute(select(Building.id, Building.lon, Building.lat, Building.precinct_id)
                                       .where(Building.campaign_id == campaign_id))).all()
    if not buildings or not ids:
        return 0
    lon = np.array([b.lon for b in buildings])
    lat = np.array([b.lat for b in buildings])
    # Buildings already loaded stay loaded: any distance snaps, to the nearest precinct.
    index, distance = await anyio.to_thread.run_sync(
        lambda: assign_points(lon, lat, shapes, snap_m=float("inf")))
    moves = [{"id": b.id, "precinct_id": ids[index[i]], "snapped_m": float(distance[i]) or None}
             for i, b in enumerate(buildings) if ids[index[i]] != b.precinct_id]
    if moves:
        await session.execute(update(Building), moves)
        await sync_household_precincts(session, campaign_id)
    return len(moves)


async def sync_household_precincts(session: AsyncSession, campaign_id: int) -> None:
    """Give every household its building's precinct."""
    building_precinct = (select(Building.precinct_id).where(Building.id == Household.building_id)
                         .scalar_subquery())
    await session.execute(update(Household).where(Household.campaign_id == campaign_id)
                          .values(precinct_id=building_precinct)
                          .execution_options(synchronize_session=False))


async def refresh_counts(session: AsyncSession, campaign_id: int) -> None:
    """Recount buildings, households and people of each of the campaign's precincts."""
    def count(model: type, column: object) -> object:
        return select(func.count()).select_from(model).where(column == Precinct.id).scalar_subquery()

    people = (select(func.count()).select_from(Person).join(Household, Household.id == Person.household_id)
              .where(Household.precinct_id == Precinct.id).scalar_subquery())
    await session.execute(
        update(Precinct).where(Precinct.campaign_id == campaign_id)
        .values(building_count=count(Building, Building.precinct_id),
                household_count=count(Household, Household.precinct_id), person_count=people)
        .execution_options(synchronize_session=False))
    await publish(session, PrecinctsChanged(campaign_id))


async def list_precincts(session: AsyncSession, campaign_id: int, *, cursor: str | None, limit: int,
                         geometry: bool = False) -> tuple[Sequence[Precinct], str | None]:
    """A page of the campaign's precincts in import order, and the cursor of the next page; with `geometry`, each
    with its stored GeoJSON text (`geojson`)."""
    after = int_cursor(cursor)
    columns = [c for c in Precinct.__table__.columns if (geometry or c.name != "geojson") and c.name != "geometry"]
    rows = (await session.execute(select(*columns).where(Precinct.campaign_id == campaign_id, Precinct.id > after)
                                  .order_by(Precinct.id).limit(limit + 1))).all()
    return page(rows, limit)


async def _by_code(session: AsyncSession, campaign_id: int, code: str, what: Any) -> Any:
    """`what` (the precinct, or one of its columns) of the precinct with this code. Raises NotFound."""
    found = await session.scalar(select(what).where(Precinct.campaign_id == campaign_id, Precinct.code == code))
    if found is None:
        raise NotFound(f"No precinct {code!r} in this campaign.")
    return found


async def get_precinct(session: AsyncSession, campaign_id: int, code: str) -> Precinct:
    """The precinct with this code. Raises NotFound."""
    return await _by_code(session, campaign_id, code, Precinct)


async def precinct_id_for(session: AsyncSession, campaign_id: int, code: str) -> int:
    """The internal id of the precinct with this code. Raises NotFound."""
    return await _by_code(session, campaign_id, code, Precinct.id)


def shape_columns(shape: BaseGeometry, geojson: str | None = None) -> dict[str, Any]:
    """The columns a precinct and a turf keep of their shape, snapped already (app.geo.coverage): the WKB, its
    bounding box and its GeoJSON text (`geojson` when the caller made it already, for many shapes at once)."""
    minx, miny, maxx, maxy = shape.bounds
    return {"geometry": shapely.to_wkb(shape), "min_lon": minx, "min_lat": miny, "max_lon": maxx, "max_lat": maxy,
            "geojson": geojson if geojson is not None else texts([shape])[0]}


async def projection(session: AsyncSession, campaign_id: int) -> Projection:
    """The metric projection for a campaign: the UTM zone of its precincts."""
    box = (await session.execute(select(func.min(Precinct.min_lon), func.min(Precinct.min_lat),
                                        func.max(Precinct.max_lon), func.max(Precinct.max_lat))
                                 .where(Precinct.campaign_id == campaign_id))).one()
    if box[0] is None:
        raise Invalid("the campaign has no precincts yet", field="precincts")
    return Projection(np.array([box[0], box[2]]), np.array([box[1], box[3]]))
