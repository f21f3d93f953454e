"""Turfs: drawn by organizers or cut automatically (app.turfs.cutting), their doors kept in `household.turf_id`."""

from collections.abc import Sequence
from typing import Any

import anyio
import numpy as np
import pandas as pd
import shapely
from shapely import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses.models import Building, Household
from app.db import begin_write, bulk_set, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.events import TurfShapeChanged, publish
from app.geo.coverage import snap_coverage
from app.geo.geojson import DIGITS
from app.geo.shapes import Projection, invalid_reason
from app.organizing.models import TurfHistory
from app.pagination import int_cursor, page
from app.precincts.models import Precinct
from app.precincts.service import projection, shape_columns
from app.scripts.service import resolve_turf_scripts
from app.text import natural_key
from app.turfs.models import Turf

ACTIVE, ARCHIVED = "active", "archived"
# A drawn turf smaller than this is a slip of the mouse, not a turf.
MIN_AREA_M2 = 100.0
# Drawn turfs sharing less than this are neighbours, not overlapping.
OVERLAP_M2 = 1.0


async def count_turfs(session: AsyncSession, campaign_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(Turf).where(Turf.campaign_id == campaign_id)) or 0


async def find_turf(session: AsyncSession, query: Select[Any], campaign_id: int, turf_id: int, *,
                    only: Any = None) -> Any:
    """The row `query`, a select from Turf, gives for the campaign's turf with this id (among the ids `only`
    selects, if given). Raises NotFound."""
    query = query.where(Turf.campaign_id == campaign_id, Turf.id == turf_id)
    if only is not None:
        query = query.where(Turf.id.in_(only))
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise NotFound(f"No turf {turf_id} in this campaign.")
    return row


async def get_turf(session: AsyncSession, campaign_id: int, turf_id: int, *, only: Any = None) -> Turf:
    """The campaign's turf with this id (among the ids `only` selects, if given). Raises NotFound."""
    return (await find_turf(session, select(Turf), campaign_id, turf_id, only=only))[0]


async def list_turfs(session: AsyncSession, campaign_id: int, *, precinct_id: int | None, status: str | None,
                     cursor: str | None, limit: int, geometry: bool = False,
                     only: Any = None) -> tuple[list[Any], str | None]:
    """A page of the campaign's turfs in id order, with their precinct's code, and the next cursor; with
    `geometry`, each with its stored GeoJSON text (`geojson`).

    `only`, a select of turf ids, limits the list to them (a canvasser's own turfs).
    """
    columns = [c for c in Turf.__table__.columns if (geometry or c.name != "geojson")
               and c.name not in ("route", "geometry")]
    query = (select(*columns, Precinct.code.label("precinct_code")).join(Precinct, Precinct.id == Turf.precinct_id)
             .where(Turf.campaign_id == campaign_id, Turf.id > int_cursor(cursor)).order_by(Turf.id).limit(limit + 1))
    if precinct_id is not None:
        query = query.where(Turf.precinct_id == precinct_id)
    if status is not None:
        query = query.where(Turf.status == status)
    if only is not None:
        query = query.where(Turf.id.in_(only))
    return page((await session.execute(query)).all(), limit)


async def turf_detail(session: AsyncSession, turf: Turf) -> dict[str, Any]:
    """A turf's precinct codes and households (address, unit, point), in building and unit order."""
    rows = (await session.execute(
        select(Household.id, Household.external_id, Household.number, Household.street, Household.unit,
               Household.building_id, Precinct.code.label("precinct_code"), Building.lon, Building.lat)
        .join(Building, Building.id == Household.building_id).join(Precinct, Precinct.id == Household.precinct_id)
        .where(Household.turf_id == turf.id))).all()
    rows = sorted(rows, key=lambda r: (r.building_id, natural_key(r.unit)))
    main = await session.scalar(select(Precinct.code).where(Precinct.id == turf.precinct_id))
    return {"precinct_code": main, "precincts": sorted({r.precinct_code for r in rows} | {main}, key=natural_key),
            "households": rows}


# Drawing

def check_drawn(shape: BaseGeometry, projection: Projection) -> Polygon | MultiPolygon:
    """A drawn shape fit to be a turf, snapped to the stored grid (app.geo.coverage). Raises Invalid naming what
    is wrong with it."""
    if shape.geom_type not in ("Polygon", "MultiPolygon"):
        raise Invalid(f"a turf is a Polygon or MultiPolygon, not a {shape.geom_type}", field="geometry.type")
    if shape.is_empty:
        raise Invalid("the polygon is empty", field="geometry.coordinates")
    minx, miny, maxx, maxy = shape.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise Invalid("coordinates out of range: longitude -180..180, latitude -90..90 (in that order)",
                      field="geometry.coordinates")
    problem = invalid_reason(shape)
    if problem is not None:
        reason, at = problem
        where = f" at ({at[0]}, {at[1]})" if at else ""
        raise Invalid(f"the polygon is invalid: {reason.lower()}{where}", field="geometry.coordinates",
                      **({"point": list(at)} if at else {}))
    area = projection.to_metres(shape).area
    if area < MIN_AREA_M2:
        raise Invalid(f"the polygon covers {area:.0f} m², too small for a turf (at least {MIN_AREA_M2:.0f} m²)",
                      field="geometry.coordinates")
    return snap_coverage([shape], DIGITS)[0]


async def _doors_inside(session: AsyncSession, campaign_id: int, shape: BaseGeometry) -> list[Any]:
    """The campaign's households whose building lies in (or on the edge of) `shape`."""
    minx, miny, maxx, maxy = shape.bounds
    rows = (await session.execute(
        select(Household.id, Household.building_id, Household.precinct_id, Household.turf_id, Building.lon,
               Building.lat)
        .join(Building, Building.id == Household.building_id)
        .where(Household.campaign_id == campaign_id, Building.lon.between(minx, maxx),
               Building.lat.between(miny, maxy)))).all()
    if not rows:
        return []
    lon, lat = np.array([r.lon for r in rows]), np.array([r.lat for r in rows])

    def test() -> Any:
        shapely.prepare(shape)
        return shapely.intersects_xy(shape, lon, lat)

    inside = await anyio.to_thread.run_sync(test)
    return [r for r, keep in zip(rows, inside, strict=True) if keep]


async def _overlapping(session: AsyncSession, campaign_id: int, shape: BaseGeometry, projection: Projection,
                       *, exclude: int | None) -> list[Any]:
    """Active turfs sharing more than a sliver of area with `shape`."""
    minx, miny, maxx, maxy = shape.bounds
    query = select(Turf.id, Turf.name, Turf.geometry, Turf.knocks).where(
        Turf.campaign_id == campaign_id, Turf.status == ACTIVE, Turf.min_lon <= maxx, Turf.max_lon >= minx,
        Turf.min_lat <= maxy, Turf.max_lat >= miny)
    if exclude is not None:
        query = query.where(Turf.id != exclude)
    rows = (await session.execute(query)).all()
    if not rows:
        return []

    def shared_areas() -> Any:
        metric = projection.to_metres(shape)
        others = projection.to_metres(shapely.from_wkb([r.geometry for r in rows]))
        return shapely.area(shapely.intersection(others, metric))

    shared = await anyio.to_thread.run_sync(shared_areas)
    return [r for r, area in zip(rows, shared, strict=True) if area > OVERLAP_M2]


async def _recount(session: AsyncSession, turf_ids: Sequence[int]) -> None:
    """Store the door and building counts of these turfs (walking them anew then moves their version on)."""
    if not turf_ids:
        return
    doors = select(func.count()).where(Household.turf_id == Turf.id).scalar_subquery()
    buildings = select(func.count(func.distinct(Household.building_id))).where(
        Household.turf_id == Turf.id).scalar_subquery()
    await session.execute(update(Turf).where(Turf.id.in_(turf_ids))
                          .values(doors=doors, buildings=buildings, updated_at=utcnow())
                          .execution_options(synchronize_session=False))


async def has_history(session: AsyncSession, turf_ids: Sequence[int]) -> set[int]:
    """The turfs someone has held: a knock made offline on one may still be on its way."""
    if not turf_ids:
        return set()
    return set((await session.execute(select(TurfHistory.turf_id).where(TurfHistory.turf_id.in_(list(turf_ids)))
                                      .distinct())).scalars())


async def _release(session: AsyncSession, turf: Turf) -> str:
    """Free a turf's doors; delete it if nobody worked or held it, else archive it (its history stays; the
    caller has its walk list emptied)."""
    await session.execute(update(Household).where(Household.turf_id == turf.id).values(turf_id=None)
                          .execution_options(synchronize_session=False))
    if turf.knocks > 0 or await has_history(session, [turf.id]):
        turf.status, turf.archived_at, turf.doors, turf.buildings = ARCHIVED, utcnow(), 0, 0
        await session.flush()
        return ARCHIVED
    await session.delete(turf)
    return "deleted"


def _cut_out(wkb: bytes, shape: BaseGeometry) -> BaseGeometry | None:
    """A turf's shape less `shape`, or None when no area is left."""
    rest = shapely.from_wkb(wkb).difference(shape)
    rest = shapely.make_valid(rest) if not rest.is_valid else rest
    polygons = [g for g in shapely.get_parts(rest) if g.geom_type == "Polygon" and g.area > 0]
    if not polygons:
        return None
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


async def _take_over(session: AsyncSession, campaign_id: int, shape: BaseGeometry, overlapped: list[Any], *,
                     exclude: int | None = None) -> tuple[list[int], list[int], BaseGeometry]:
    """Cut `shape` out of the overlapped turfs; turfs left with no area go. Returns the ids still standing, those
    archived, and `shape` snapped with what is left of them and the turfs it touches (but `exclude`), so that it
    shares its edges with them (app.geo.coverage)."""
    standing, archived, rests = [], [], []
    for row in overlapped:
        turf = await get_turf(session, campaign_id, row.id)
        rest = await anyio.to_thread.run_sync(_cut_out, turf.geometry, shape)
        if rest is None:
            if await _release(session, turf) == ARCHIVED:
                archived.append(turf.id)
            continue
        standing.append(turf)
        rests.append(rest)
    touching = await _touching(session, campaign_id, shape, exclude={r.id for r in overlapped} | {exclude})
    before = shapely.from_wkb([t.geometry for t in touching])
    snapped = await anyio.to_thread.run_sync(lambda: snap_coverage([shape, *rests, *before], DIGITS))
    for turf, rest in zip(standing, snapped[1:len(rests) + 1], strict=True):
        for key, value in shape_columns(rest).items():
            setattr(turf, key, value)
    for turf, was, now in zip(touching, before, snapped[len(rests) + 1:], strict=True):
        # Its edge bends through a corner of the new shape, by less than the grid; its doors stay. Its walk list
        # shows the polygon: a new version.
        if not now.equals(was):
            for key, value in shape_columns(now).items():
                setattr(turf, key, value)
            turf.version += 1
    return [t.id for t in standing], archived, snapped[0]


async def _touching(session: AsyncSession, campaign_id: int, shape: BaseGeometry, *,
                    exclude: set[int | None]) -> list[Turf]:
    """The active turfs whose polygon meets `shape` (or comes within the grid of it), but those in `exclude`."""
    grid = 10.0 ** -DIGITS
    minx, miny, maxx, maxy = shape.bounds
    near = (await session.execute(select(Turf).where(
        Turf.campaign_id == campaign_id, Turf.status == ACTIVE, Turf.min_lon <= maxx + grid,
        Turf.max_lon >= minx - grid, Turf.min_lat <= maxy + grid, Turf.max_lat >= miny - grid,
        Turf.id.not_in([i for i in exclude if i is not None])))).scalars().all()
    meets = shapely.dwithin(shapely.from_wkb([t.geometry for t in near]), shape, grid) if near else []
    return [t for t, hit in zip(near, meets, strict=True) if hit]


async def draw_turf(session: AsyncSession, campaign_id: int, *, name: str | None, shape: BaseGeometry,
                    take_over: bool) -> Turf:
    """Make a turf of the doors inside a drawn polygon.

    Raises Invalid for a bad shape or one holding no door, Conflict when it overlaps active turfs and
    `take_over` is false.
    """
    await begin_write(session)
    proj = await projection(session, campaign_id)
    # Shape work runs off the event loop (a big polygon's checks take a while): other requests go on meanwhile.
    shape = await anyio.to_thread.run_sync(check_drawn, shape, proj)
    overlapped = await _overlapping(session, campaign_id, shape, proj, exclude=None)
    if overlapped and not take_over:
        raise Conflict("The polygon overlaps active turfs; send take_over=true to take their doors.",
                       turfs=[{"id": r.id, "name": r.name} for r in overlapped])
    doors = await _doors_inside(session, campaign_id, shape)
    if not doors:
        raise Invalid("the polygon holds no door", field="geometry")
    precincts = pd.Series([d.precinct_id for d in doors]).value_counts()
    main = int(precincts[precincts == precincts.max()].index.min())
    standing, archived, shape = await _take_over(session, campaign_id, shape, overlapped)
    columns = await anyio.to_thread.run_sync(shape_columns, shape)
    turf = Turf(campaign_id=campaign_id, precinct_id=main, source="drawn",
                name=(name or "").strip() or await _drawn_name(session, main), **columns)
    session.add(turf)
    await session.flush()
    # Doors held by turfs that weren't overlapped (their polygons only touch) stay where they are.
    taken = {r.id for r in overlapped}
    ids = [d.id for d in doors if d.turf_id is None or d.turf_id in taken]
    if not ids:
        raise Conflict("Every door inside the polygon belongs to another turf it doesn't overlap.")
    await bulk_set(session, Household.__table__, "turf_id", ids, [turf.id] * len(ids))
    await _recount(session, [turf.id, *standing])
    archived += await _drop_empty(session, standing)
    await _reshaped(session, campaign_id, [turf.id, *standing], archived)
    await resolve_turf_scripts(session, campaign_id, [turf.id])
    return await _commit_turf(session, turf)


async def _reshaped(session: AsyncSession, campaign_id: int, turf_ids: Sequence[int],
                    archived: Sequence[int]) -> None:
    """Publish that these turfs' doors changed: those still active, and those archived (their walks empty)."""
    active = (await session.execute(select(Turf.id).where(Turf.id.in_(list(turf_ids)), Turf.status == ACTIVE))
              ).scalars()
    await publish(session, TurfShapeChanged(campaign_id, turf_ids=frozenset([*active, *archived])))


async def _commit_turf(session: AsyncSession, turf: Turf) -> Turf:
    # Counts were recomputed in SQL: read them back before the commit, so no read is left open after it.
    await session.flush()
    await session.refresh(turf)
    await session.commit()
    return turf


async def _drawn_name(session: AsyncSession, precinct_id: int) -> str:
    """`<precinct>-Dnn`, numbered past every drawn turf's default name in use."""
    code = await session.scalar(select(Precinct.code).where(Precinct.id == precinct_id))
    prefix = f"{code}-D"
    names = (await session.execute(select(Turf.name).where(Turf.precinct_id == precinct_id,
                                                           Turf.name.startswith(prefix)))).scalars().all()
    numbers = [int(n.removeprefix(prefix)) for n in names if n.removeprefix(prefix).isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1:02d}"


async def _drop_empty(session: AsyncSession, turf_ids: Sequence[int]) -> list[int]:
    """Turfs a take-over left without doors are released; returns those archived."""
    archived = []
    for turf_id in turf_ids:
        turf = await session.get(Turf, turf_id)
        if turf is None or turf.doors > 0 or turf.status != ACTIVE:
            continue
        if await _release(session, turf) == ARCHIVED:
            archived.append(turf_id)
    return archived


async def update_turf(session: AsyncSession, campaign_id: int, turf_id: int, *, name: str | None,
                      shape: BaseGeometry | None, take_over: bool) -> Turf:
    """Rename and/or reshape a turf; a new shape recomputes its doors. Raises as draw_turf does."""
    await begin_write(session)
    turf = await get_turf(session, campaign_id, turf_id)
    if turf.status != ACTIVE:
        raise Conflict(f"Turf {turf_id} is archived; it can't change.")
    if name is not None:
        if not name.strip():
            raise Invalid("a turf needs a name", field="name")
        if turf.name != name.strip():
            # The name is on the walk list: phones holding it refresh.
            turf.name, turf.version = name.strip(), turf.version + 1
        turf.updated_at = utcnow()
    if shape is not None:
        proj = await projection(session, campaign_id)
        shape = await anyio.to_thread.run_sync(check_drawn, shape, proj)
        overlapped = await _overlapping(session, campaign_id, shape, proj, exclude=turf.id)
        if overlapped and not take_over:
            raise Conflict("The polygon overlaps active turfs; send take_over=true to take their doors.",
                           turfs=[{"id": r.id, "name": r.name} for r in overlapped])
        doors = await _doors_inside(session, campaign_id, shape)
        taken = {r.id for r in overlapped} | {turf.id}
        ids = [d.id for d in doors if d.turf_id is None or d.turf_id in taken]
        if not ids:
            raise Invalid("the polygon holds no door", field="geometry")
        standing, archived, shape = await _take_over(session, campaign_id, shape, overlapped, exclude=turf.id)
        await session.execute(update(Household).where(Household.turf_id == turf.id).values(turf_id=None)
                              .execution_options(synchronize_session=False))
        await bulk_set(session, Household.__table__, "turf_id", ids, [turf.id] * len(ids))
        for key, value in (await anyio.to_thread.run_sync(shape_columns, shape)).items():
            setattr(turf, key, value)
        await session.flush()
        await _recount(session, [turf.id, *standing])
        archived += await _drop_empty(session, standing)
        await _reshaped(session, campaign_id, [turf.id, *standing], archived)
    else:
        # A new name moves the walk list's version on, not its doors.
        await publish(session, TurfShapeChanged(campaign_id))
    return await _commit_turf(session, turf)


async def delete_turf(session: AsyncSession, campaign_id: int, turf_id: int) -> str:
    """Delete a turf nobody has worked, or archive a worked one; returns which. Raises NotFound, Conflict."""
    await begin_write(session)
    turf = await get_turf(session, campaign_id, turf_id)
    if turf.status != ACTIVE:
        raise Conflict(f"Turf {turf_id} is archived already.")
    if turf.holders > 0:
        raise Conflict(f"Turf {turf_id} is held by {turf.holders} canvasser(s); take it back first.")
    outcome = await _release(session, turf)
    # An archived turf's walk list empties; a deleted one has none left.
    retired = frozenset([turf.id] if outcome == ARCHIVED else [])
    await publish(session, TurfShapeChanged(campaign_id, turf_ids=retired))
    await session.commit()
    return outcome
