"""Turf cuts: precincts cut into turfs of about a target door count, run as a recorded job in the background.

The planning is pure (app.geo.plan) and runs off the event loop; every new turf is written at the end in one
transaction, refused if the turfs changed meanwhile.
"""

import json
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import anyio
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.addresses.models import Building, Household
from app.db import begin_write, bulk_set, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.events import TurfsCut, TurfShapeChanged, publish
from app.geo.geojson import DIGITS
from app.geo.plan import PrecinctPlan, StrayDoors, cut_report, plan_turfs, snap_plans
from app.ingest import Progress, no_progress
from app.precincts.models import Precinct
from app.precincts.service import projection, shape_columns
from app.scripts.service import resolve_turf_scripts
from app.streets.service import load_streets
from app.text import natural_key
from app.turfs.models import Turf, TurfCut
from app.turfs.service import ACTIVE, ARCHIVED, has_history

log = logging.getLogger("doorstep")

DEFAULT_TARGET = 50
STALE = timedelta(minutes=10)


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
        await begin_write(session)
        job = await session.get(TurfCut, cut_id)
        assert job is not None
        job.state = "running"
        await session.commit()
        codes = job.precincts.split() if job.precincts else None

        async def step(code: str, done: int, total: int) -> None:
            async with maker() as tick:
                await begin_write(tick)
                await tick.execute(update(TurfCut).where(TurfCut.id == cut_id).values(precincts_done=done))
                await tick.commit()
            progress(code, done, total)

        try:
            await cut_turfs(session, job.campaign_id, codes=codes, target=job.target_doors, cut_id=cut_id,
                            step=step)
        except Exception as exc:
            await session.rollback()
            await begin_write(session)
            await session.execute(update(TurfCut).where(TurfCut.id == cut_id).values(
                state="failed", error=str(exc) or type(exc).__name__, finished_at=utcnow()))
            await session.commit()
            if isinstance(exc, Conflict | StrayDoors):
                # What the campaign must change before cutting again, said in the job's error: not a bug.
                log.warning("turf cut %s failed: %s", cut_id, exc)
                return
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
    kept_degrees = shapely.from_wkb([t.geometry for t in kept]) if kept else np.array([], dtype=object)
    kept_shapes = proj.to_metres(kept_degrees) if kept else np.array([])
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
            return plan_turfs(precinct.id, precinct.code, proj.to_metres(shapely.from_wkb(precinct.geometry)),
                              kept_shapes, free[free["precinct_id"] == precinct.id], streets, proj, target=target)
        plans.append(await anyio.to_thread.run_sync(plan_one))
        if step is not None:
            await step(precinct.code, done, len(precincts))
    bent = await anyio.to_thread.run_sync(_snap, plans, precincts, kept, kept_degrees)

    # Write everything in one transaction, as the writer (the reads above may be long out of date by now).
    await begin_write(session)
    if await _turf_state(session, campaign_id) != before:
        raise Conflict("Turfs changed while the cut was computed (drawn, claimed or worked); cut again.")
    if replaced:
        await session.execute(update(Household).where(Household.turf_id.in_(replaced)).values(turf_id=None)
                              .execution_options(synchronize_session=False))
        # Turfs someone held once are archived, not deleted: their history stays for late syncs.
        held_once = await has_history(session, replaced)
        await session.execute(update(Turf).where(Turf.id.in_(list(held_once))).values(
            status=ARCHIVED, archived_at=utcnow(), doors=0, buildings=0))
        if held_once:
            await publish(session, TurfShapeChanged(campaign_id, turf_ids=frozenset(held_once)))
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
    if bent:
        # Their polygons changed by less than the grid, their doors not at all: a new version tells the phones
        # holding their walk lists, nothing is walked again.
        table = Turf.__table__
        columns = [k for k in bent[0] if k != "turf"]
        await session.execute(update(table).where(table.c.id == bindparam("turf")).values(
            version=table.c.version + 1, updated_at=now, **{k: bindparam(f"new_{k}") for k in columns}),
            [{"turf": b["turf"], **{f"new_{k}": b[k] for k in columns}} for b in bent])
    walks = [walk for plan in plans for walk in plan.walks]
    await publish(session, TurfsCut(campaign_id, walks=dict(zip(ids, walks, strict=True))))
    await resolve_turf_scripts(session, campaign_id, ids)
    report = cut_report(plans, target=target, replaced=len(replaced), kept=len(kept))
    await session.execute(update(TurfCut).where(TurfCut.id == cut_id).values(
        state="done", precincts_done=len(plans), turfs_made=len(rows), report=json.dumps(report),
        finished_at=utcnow()))
    await session.commit()
    return report


def _snap(plans: list[PrecinctPlan], precincts: list[Any], kept: list[Any],
          kept_degrees: np.ndarray) -> list[dict[str, Any]]:
    """Snap the new turfs with the kept turfs touching the cut precincts as one coverage (app.geo.plan); returns
    the columns of the kept turfs whose polygon that bent (`turf` their id)."""
    near = np.unique(shapely.STRtree(kept_degrees).query(
        shapely.from_wkb([p.geometry for p in precincts]), predicate="dwithin", distance=10.0 ** -DIGITS)[1]
    ) if kept else np.array([], int)
    snapped = snap_plans(plans, kept_degrees[near])
    moved = ~shapely.equals(snapped, kept_degrees[near])
    return [{"turf": kept[i].id, **shape_columns(shape)} for i, shape in zip(near[moved], snapped[moved], strict=True)]


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
