"""Turfs: drawn by organizers or cut automatically, their doors kept in `household.turf_id`."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
import numpy as np
import pandas as pd
import shapely
from shapely import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.addresses.models import Building, Household
from app.campaigns.service import note_change
from app.db import begin_write, bulk_set, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.geo.cut import cut_precinct, cut_quality
from app.geo.geojson import snapped
from app.geo.shapes import Projection, invalid_reason
from app.ingest import Progress, no_progress
from app.organizing.models import TurfHistory
from app.pagination import encode_cursor, int_cursor
from app.precincts.models import Precinct
from app.precincts.service import projection, shape_columns
from app.scripts.service import resolve_turf_scripts
from app.text import natural_key
from app.turfs.models import Turf, TurfCut
from app.walklists.service import WALK_COLUMNS, TurfWalk, load_streets, order_turfs, refresh_walks, store_walks

ACTIVE, ARCHIVED = "active", "archived"
# A drawn turf smaller than this is a slip of the mouse, not a turf.
MIN_AREA_M2 = 100.0
# Drawn turfs sharing less than this are neighbours, not overlapping.
OVERLAP_M2 = 1.0
DEFAULT_TARGET = 50
STALE = timedelta(minutes=10)


async def count_turfs(session: AsyncSession, campaign_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(Turf).where(Turf.campaign_id == campaign_id)) or 0


async def get_turf(session: AsyncSession, campaign_id: int, turf_id: int, *, only: Any = None) -> Turf:
    """The campaign's turf with this id (among the ids `only` selects, if given). Raises NotFound."""
    query = select(Turf).where(Turf.campaign_id == campaign_id, Turf.id == turf_id)
    if only is not None:
        query = query.where(Turf.id.in_(only))
    turf = (await session.execute(query)).scalar_one_or_none()
    if turf is None:
        raise NotFound(f"No turf {turf_id} in this campaign.")
    return turf


async def list_turfs(session: AsyncSession, campaign_id: int, *, precinct_id: int | None, status: str | None,
                     cursor: str | None, limit: int, geometry: bool = False,
                     only: Any = None) -> tuple[list[Any], str | None]:
    """A page of the campaign's turfs in id order, with their precinct's code, and the next cursor.

    `only`, a select of turf ids, limits the list to them (a canvasser's own turfs).
    """
    columns = [c for c in Turf.__table__.columns if (geometry or c.name != "geometry")
               and c.name not in ("route", "geojson")]
    query = (select(*columns, Precinct.code.label("precinct_code")).join(Precinct, Precinct.id == Turf.precinct_id)
             .where(Turf.campaign_id == campaign_id, Turf.id > int_cursor(cursor)).order_by(Turf.id).limit(limit + 1))
    if precinct_id is not None:
        query = query.where(Turf.precinct_id == precinct_id)
    if status is not None:
        query = query.where(Turf.status == status)
    if only is not None:
        query = query.where(Turf.id.in_(only))
    rows = (await session.execute(query)).all()
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def turf_detail(session: AsyncSession, turf: Turf) -> dict[str, Any]:
    """A turf's precinct codes and households (address, unit, point), in building and unit order."""
    rows = (await session.execute(
        select(Household.id, Household.external_id, Household.number, Household.street, Household.unit,
               Household.building_id, Precinct.code, Building.lon, Building.lat)
        .join(Building, Building.id == Household.building_id).join(Precinct, Precinct.id == Household.precinct_id)
        .where(Household.turf_id == turf.id))).all()
    rows = sorted(rows, key=lambda r: (r.building_id, natural_key(r.unit)))
    main = await session.scalar(select(Precinct.code).where(Precinct.id == turf.precinct_id))
    return {"precinct_code": main, "precincts": sorted({r.code for r in rows} | {main}, key=natural_key),
            "households": rows}


# Drawing

def check_drawn(shape: BaseGeometry, projection: Projection) -> Polygon | MultiPolygon:
    """A drawn shape fit to be a turf. Raises Invalid naming what is wrong with it."""
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
    return shape


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
    """Store the door and building counts of these turfs (refresh_walks then moves their version on)."""
    if not turf_ids:
        return
    doors = select(func.count()).where(Household.turf_id == Turf.id).scalar_subquery()
    buildings = select(func.count(func.distinct(Household.building_id))).where(
        Household.turf_id == Turf.id).scalar_subquery()
    await session.execute(update(Turf).where(Turf.id.in_(turf_ids))
                          .values(doors=doors, buildings=buildings, updated_at=utcnow())
                          .execution_options(synchronize_session=False))


async def _has_history(session: AsyncSession, turf_ids: Sequence[int]) -> set[int]:
    """The turfs someone has held: a knock made offline on one may still be on its way."""
    if not turf_ids:
        return set()
    return set((await session.execute(select(TurfHistory.turf_id).where(TurfHistory.turf_id.in_(list(turf_ids)))
                                      .distinct())).scalars())


async def _release(session: AsyncSession, turf: Turf) -> str:
    """Free a turf's doors; delete it if nobody worked or held it, else archive it (its history stays)."""
    await session.execute(update(Household).where(Household.turf_id == turf.id).values(turf_id=None)
                          .execution_options(synchronize_session=False))
    if turf.knocks > 0 or await _has_history(session, [turf.id]):
        turf.status, turf.archived_at, turf.doors, turf.buildings = ARCHIVED, utcnow(), 0, 0
        await session.flush()
        await refresh_walks(session, turf.campaign_id, [turf.id])
        return ARCHIVED
    await session.delete(turf)
    return "deleted"


def _cut_out(wkb: bytes, shape: BaseGeometry) -> dict[str, Any] | None:
    """The columns of a turf's shape less `shape`, or None when no area is left."""
    rest = shapely.from_wkb(wkb).difference(shape)
    rest = shapely.make_valid(rest) if not rest.is_valid else rest
    polygons = [g for g in shapely.get_parts(rest) if g.geom_type == "Polygon" and g.area > 0]
    if not polygons:
        return None
    return shape_columns(polygons[0] if len(polygons) == 1 else MultiPolygon(polygons))


async def _take_over(session: AsyncSession, campaign_id: int, shape: BaseGeometry, overlapped: list[Any],
                     projection: Projection) -> list[int]:
    """Cut `shape` out of the overlapped turfs; turfs left with no doors go. Returns the ids still standing."""
    standing = []
    for row in overlapped:
        turf = await get_turf(session, campaign_id, row.id)
        columns = await anyio.to_thread.run_sync(_cut_out, turf.geometry, shape)
        if columns is None:
            await _release(session, turf)
            continue
        for key, value in columns.items():
            setattr(turf, key, value)
        standing.append(turf.id)
    return standing


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
    columns = await anyio.to_thread.run_sync(shape_columns, shape)
    turf = Turf(campaign_id=campaign_id, precinct_id=main, source="drawn",
                name=(name or "").strip() or await _drawn_name(session, main), **columns)
    session.add(turf)
    await session.flush()
    standing = await _take_over(session, campaign_id, shape, overlapped, proj) if overlapped else []
    # Doors held by turfs that weren't overlapped (their polygons only touch) stay where they are.
    taken = {r.id for r in overlapped}
    ids = [d.id for d in doors if d.turf_id is None or d.turf_id in taken]
    if not ids:
        raise Conflict("Every door inside the polygon belongs to another turf it doesn't overlap.")
    await bulk_set(session, Household.__table__, "turf_id", ids, [turf.id] * len(ids))
    await _recount(session, [turf.id, *standing])
    await _drop_empty(session, standing)
    await refresh_walks(session, campaign_id, await _active(session, [turf.id, *standing]))
    await resolve_turf_scripts(session, campaign_id, [turf.id])
    return await _commit_turf(session, turf)


async def _active(session: AsyncSession, turf_ids: Sequence[int]) -> list[int]:
    return list((await session.execute(select(Turf.id).where(Turf.id.in_(list(turf_ids)),
                                                             Turf.status == ACTIVE))).scalars())


async def _commit_turf(session: AsyncSession, turf: Turf) -> Turf:
    # Counts were recomputed in SQL: read them back before the commit, so no read is left open after it.
    await session.flush()
    await session.refresh(turf)
    await note_change(session, turf.campaign_id)
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


async def _drop_empty(session: AsyncSession, turf_ids: Sequence[int]) -> None:
    """Turfs a take-over left without doors are released."""
    for turf_id in turf_ids:
        turf = await session.get(Turf, turf_id)
        if turf is not None and turf.doors == 0 and turf.status == ACTIVE:
            await _release(session, turf)


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
        standing = await _take_over(session, campaign_id, shape, overlapped, proj) if overlapped else []
        await session.execute(update(Household).where(Household.turf_id == turf.id).values(turf_id=None)
                              .execution_options(synchronize_session=False))
        await bulk_set(session, Household.__table__, "turf_id", ids, [turf.id] * len(ids))
        for key, value in (await anyio.to_thread.run_sync(shape_columns, shape)).items():
            setattr(turf, key, value)
        await session.flush()
        await _recount(session, [turf.id, *standing])
        await _drop_empty(session, standing)
        await refresh_walks(session, campaign_id, await _active(session, [turf.id, *standing]))
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
    await note_change(session, campaign_id)
    await session.commit()
    return outcome


# Cutting

@dataclass
class PrecinctPlan:
    """One precinct's new turfs, ready to write."""

    precinct_id: int
    code: str
    shapes: list[BaseGeometry]  # EPSG:4326
    households: list[list[int]]  # per turf
    buildings: list[int]  # per turf
    expected: float  # doors / k
    quality: dict[str, Any] = field(default_factory=dict)
    walks: list[TurfWalk] = field(default_factory=list)  # per turf
    geojson: list[str] = field(default_factory=list)  # per turf: its shape's stored GeoJSON text


def plan_precinct(precinct_id: int, code: str, region_m: BaseGeometry, households: pd.DataFrame,
                  projection: Projection, *, target: int) -> PrecinctPlan:
    """Cut one precinct's free households (id, building_id, unit, lon, lat, street_id) into turfs."""
    if households.empty:
        return PrecinctPlan(precinct_id, code, [], [], [], 0.0)
    # Buildings at one point are one site: a Voronoi cell has one point.
    sites = households.groupby(["lon", "lat"], sort=True).agg(
        doors=("id", "size"), block=("street_id", "first")).reset_index()
    x, y = projection.points(sites["lon"].to_numpy(), sites["lat"].to_numpy())
    block = sites["block"].fillna(-1).astype(np.int64).to_numpy()
    cut = cut_precinct(x, y, sites["doors"].to_numpy(), block, region_m, target=target)
    site_of = households.merge(sites[["lon", "lat"]].reset_index(names="site"), on=["lon", "lat"])
    members: list[list[int]] = [[] for _ in range(cut.k)]
    for site, group in site_of.groupby("site", sort=True):
        if site in cut.big:
            ordered = sorted(zip(group["unit"], group["id"], strict=True), key=lambda u: (natural_key(u[0]), u[1]))
            for label, chunk in zip(cut.big[site], np.array_split(np.arange(len(ordered)), len(cut.big[site])),
                                    strict=True):
                members[label] += [ordered[i][1] for i in chunk]
        else:
            members[int(cut.labels[site])] += group["id"].tolist()
    building_of = dict(zip(households["id"], households["building_id"], strict=True))
    shapes = list(projection.to_degrees(np.array(cut.polygons, dtype=object)))
    keep = [i for i in range(cut.k) if members[i]]
    # Numbered in reading order: north to south in 200 m bands, west to east within a band.
    centroids = [cut.polygons[i].centroid for i in keep]
    keep = [i for _, i in sorted(zip([(-round(c.y / 200), c.x) for c in centroids], keep, strict=True))]
    plan = PrecinctPlan(precinct_id, code, [shapes[i] for i in keep], [sorted(members[i]) for i in keep],
                        [len({building_of[h] for h in members[i]}) for i in keep],
                        expected=len(households) / cut.k)
    turf_of = {h: n for n, hs in enumerate(plan.households) for h in hs}
    ordered = households.sort_values("id")
    plan.quality = cut_quality(
        np.array([len(h) for h in plan.households]), np.full(len(keep), plan.expected),
        np.array([cut.polygons[i] for i in keep], dtype=object),
        ordered["street_id"].fillna(-1).astype(np.int64).to_numpy(), ordered["building_id"].to_numpy(),
        np.array([turf_of[h] for h in ordered["id"]]))
    return plan


async def resolve_precincts(session: AsyncSession, campaign_id: int, codes: Sequence[str] | None) -> list[Any]:
    """The precincts (id, code, geometry) named by code, or all of the campaign's. Raises Invalid for unknown ones."""
    query = select(Precinct.id, Precinct.code, Precinct.geometry).where(Precinct.campaign_id == campaign_id)
    if codes:
        query = query.where(Precinct.code.in_(list(codes)))
    rows = (await session.execute(query.order_by(Precinct.id))).all()
    missing = sorted(set(codes or []) - {r.code for r in rows}, key=natural_key)
    if missing:
        raise Invalid(f"no precinct {', '.join(missing)} in this campaign", field="precincts")
    if not rows:
        raise Invalid("the campaign has no precincts yet", field="precincts")
    return rows


async def start_cut(session: AsyncSession, campaign_id: int, *, codes: Sequence[str] | None, target: int,
                    created_by: str | None) -> TurfCut:
    """Record a cut to run. Raises Invalid for unknown precincts or a bad target, Conflict if one is running."""
    await begin_write(session)
    if not 5 <= target <= 1000:
        raise Invalid("target_doors must be from 5 to 1000", field="target_doors")
    precincts = await resolve_precincts(session, campaign_id, codes)
    unfinished = TurfCut.state.in_(["queued", "running"])
    # A city takes seconds: a cut unfinished after STALE was stopped with its server, and wrote nothing.
    await session.execute(update(TurfCut).where(TurfCut.campaign_id == campaign_id, unfinished,
                                                TurfCut.created_at < utcnow() - STALE)
                          .values(state="failed", error="stopped before it finished; nothing was written",
                                  finished_at=utcnow()))
    running = await session.scalar(select(TurfCut.id).where(TurfCut.campaign_id == campaign_id, unfinished))
    if running is not None:
        await session.commit()
        raise Conflict(f"Turf cut {running} is still running; wait for it to finish.", cut_id=running)
    job = TurfCut(campaign_id=campaign_id, target_doors=target, precincts=" ".join(codes) if codes else None,
                  precincts_total=len(precincts), created_by=created_by)
    session.add(job)
    await session.commit()
    return job


async def run_cut(maker: async_sessionmaker[AsyncSession], cut_id: int, *, progress: Progress = no_progress) -> None:
    """Do a recorded cut, keeping its state and counts up to date; all its turfs are written at once."""
    async with maker() as session:
        job = await session.get(TurfCut, cut_id)
        assert job is not None
        job.state = "running"
        await session.commit()
        codes = job.precincts.split() if job.precincts else None

        async def step(code: str, done: int, total: int) -> None:
            async with maker() as tick:
                await tick.execute(update(TurfCut).where(TurfCut.id == cut_id).values(precincts_done=done))
                await tick.commit()
            progress(code, done, total)

        try:
            await cut_turfs(session, job.campaign_id, codes=codes, target=job.target_doors, cut_id=cut_id,
                                     step=step)
        except Exception as exc:
            await session.rollback()
            await session.execute(update(TurfCut).where(TurfCut.id == cut_id).values(
                state="failed", error=str(exc) or type(exc).__name__, finished_at=utcnow()))
            await session.commit()
            raise


async def cut_turfs(session: AsyncSession, campaign_id: int, *, codes: Sequence[str] | None, target: int,
                    cut_id: int, step: Any = None) -> dict[str, Any]:
    """Cut precincts into turfs of about `target` doors, replacing the cut turfs nobody holds or has worked.

    Held, worked and drawn turfs stay; their doors and area are left out of the new cut. Every new turf
    is written in one transaction at the end, with the job's report. Returns the quality report.
    """
    precincts = await resolve_precincts(session, campaign_id, codes)
    proj = await projection(session, campaign_id)
    selected = [p.id for p in precincts]
    before = await _turf_state(session, campaign_id)
    active = (await session.execute(select(Turf.id, Turf.precinct_id, Turf.source, Turf.holders, Turf.knocks,
                                           Turf.geometry)
                                    .where(Turf.campaign_id == campaign_id, Turf.status == ACTIVE))).all()
    replaced = [t.id for t in active if t.source == "cut" and t.holders == 0 and t.knocks == 0
                and t.precinct_id in selected]
    kept = [t for t in active if t.id not in set(replaced)]
    kept_ids = {t.id for t in kept}
    kept_shapes = proj.to_metres(shapely.from_wkb([t.geometry for t in kept])) if kept else np.array([])
    households = pd.DataFrame((await session.execute(
        select(Household.id, Household.building_id, Household.unit, Household.precinct_id, Household.turf_id,
               Building.lon, Building.lat, Building.street_id, Building.street_side, Building.street_pos_m)
        .join(Building, Building.id == Household.building_id)
        .where(Household.campaign_id == campaign_id, Household.precinct_id.in_(selected)))).all(),
        columns=["id", "building_id", "unit", "precinct_id", "turf_id", "lon", "lat", "street_id", "street_side",
                 "street_pos_m"])
    streets = await load_streets(session, campaign_id, proj)
    free = households[~households["turf_id"].isin(kept_ids)]

    plans: list[PrecinctPlan] = []
    for done, precinct in enumerate(precincts, start=1):
        def plan_one(precinct: Any = precinct) -> PrecinctPlan:
            region = proj.to_metres(shapely.from_wkb(precinct.geometry))
            if len(kept_shapes):
                near = kept_shapes[shapely.intersects(kept_shapes, region)]
                if len(near):
                    rest = region.difference(shapely.union_all(near))
                    region = rest if rest.area > 0 else region
            doors = free[free["precinct_id"] == precinct.id]
            plan = plan_precinct(precinct.id, precinct.code, region, doors, proj, target=target)
            turf_of = pd.Series({h: n for n, hs in enumerate(plan.households) for h in hs}, dtype=np.int64)
            members = doors.rename(columns={"id": "household_id"}).assign(
                turf=lambda d: d["household_id"].map(turf_of))
            walks = order_turfs(streets, proj, members[WALK_COLUMNS])
            plan.walks = [walks[n] for n in range(len(plan.households))]
            plan.geojson = snapped(plan.shapes)
            return plan
        plans.append(await anyio.to_thread.run_sync(plan_one))
        if step is not None:
            await step(precinct.code, done, len(precincts))

    # Write everything in one transaction, as the writer (the reads above may be long out of date by now).
    await begin_write(session)
    if await _turf_state(session, campaign_id) != before:
        raise Conflict("Turfs changed while the cut was computed (drawn, claimed or worked); cut again.")
    if replaced:
        await session.execute(update(Household).where(Household.turf_id.in_(replaced)).values(turf_id=None)
                              .execution_options(synchronize_session=False))
        # Turfs someone held once are archived, not deleted: their history stays for late syncs.
        held_once = await _has_history(session, replaced)
        await session.execute(update(Turf).where(Turf.id.in_(list(held_once))).values(
            status=ARCHIVED, archived_at=utcnow(), doors=0, buildings=0))
        await refresh_walks(session, campaign_id, held_once)
        await session.execute(delete(Turf).where(Turf.id.in_([t for t in replaced if t not in held_once])))
    now = utcnow()
    rows = [{"campaign_id": campaign_id, "precinct_id": plan.precinct_id, "name": f"{plan.code}-T{n + 1:02d}",
             "source": "cut", "cut_id": cut_id, "status": ACTIVE, "doors": len(doors), "buildings": buildings,
             "holders": 0, "knocks": 0, "version": 1, "created_at": now, "updated_at": now,
             **shape_columns(shape, geojson)}
            for plan in plans for n, (shape, doors, buildings, geojson)
            in enumerate(zip(plan.shapes, plan.households, plan.buildings, plan.geojson, strict=True))]
    ids: list[int] = []
    if rows:
        ids = list((await session.execute(insert(Turf).returning(Turf.id, sort_by_parameter_order=True),
                                          rows)).scalars())
    members = [doors for plan in plans for doors in plan.households]
    household_ids = [h for doors in members for h in doors]
    turf_ids = [turf_id for turf_id, doors in zip(ids, members, strict=True) for _ in doors]
    await bulk_set(session, Household.__table__, "turf_id", household_ids, turf_ids)
    walks = [walk for plan in plans for walk in plan.walks]
    await store_walks(session, dict(zip(ids, walks, strict=True)), new=True)
    await resolve_turf_scripts(session, campaign_id, ids)
    report = _report(plans, target=target, replaced=len(replaced), kept=len(kept))
    await session.execute(update(TurfCut).where(TurfCut.id == cut_id).values(
        state="done", precincts_done=len(plans), turfs_made=len(rows), report=json.dumps(report),
        finished_at=utcnow()))
    await note_change(session, campaign_id)
    await session.commit()
    return report


def _report(plans: list[PrecinctPlan], *, target: int, replaced: int, kept: int) -> dict[str, Any]:
    """The cut's quality overall (from every turf and household) and per precinct."""
    overall: dict[str, Any] = {}
    sizes = np.array([len(h) for p in plans for h in p.households])
    if len(sizes):
        expected = np.array([p.expected for p in plans for _ in p.households])
        blocks = sum(p.quality.get("blocks", 0) for p in plans)
        split = sum(p.quality.get("split_blocks", 0) for p in plans)
        pp = [p.quality["polsby_popper_mean"] * p.quality["turfs"] for p in plans if p.quality.get("turfs")]
        overall = {
            "turfs": len(sizes), "doors": int(sizes.sum()), "doors_min": int(sizes.min()),
            "doors_median": float(np.median(sizes)), "doors_max": int(sizes.max()),
            "doors_cv": round(float(sizes.std() / sizes.mean()), 4),
            "outside_15pct": int(np.sum(np.abs(sizes - expected) > 0.15 * expected)),
            "non_contiguous": sum(p.quality.get("non_contiguous", 0) for p in plans),
            "polsby_popper_mean": round(sum(pp) / len(sizes), 4),
            "blocks": blocks, "split_blocks": split, "split_block_share": round(split / blocks, 4) if blocks else None,
        }
    return {"target_doors": target, "turfs_replaced": replaced, "turfs_kept": kept, "overall": overall,
            "precincts": {p.code: p.quality for p in plans}}


async def _turf_state(session: AsyncSession, campaign_id: int) -> list[tuple[Any, ...]]:
    """What a cut depends on, to see whether it changed: every turf's id, doors (route version), status, holders
    and knocks. Not its version: results synced meanwhile move that, and don't matter to a cut."""
    return [tuple(r) for r in (await session.execute(
        select(Turf.id, Turf.route_version, Turf.status, Turf.holders, Turf.knocks)
        .where(Turf.campaign_id == campaign_id).order_by(Turf.id))).all()]


async def get_cut(session: AsyncSession, campaign_id: int, cut_id: int) -> TurfCut:
    """The campaign's turf cut with this id. Raises NotFound."""
    job = (await session.execute(select(TurfCut).where(TurfCut.campaign_id == campaign_id, TurfCut.id == cut_id))
           ).scalar_one_or_none()
    if job is None:
        raise NotFound(f"No turf cut {cut_id} in this campaign.")
    return job



