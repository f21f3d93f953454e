"""Progress: doors attempted and contacted, knocks by result, per turf, per precinct and for the campaign.

Read from the counters sync keeps in its own transaction (turf, precinct, result tallies), never by counting
knocks; only a time window (`since`, `until`, in corrected time) reads the knocks of that window, through the
index on (campaign, corrected time).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import case, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign
from app.errors import Invalid, NotFound
from app.geo.geojson import geometries
from app.organizing.models import Event, EventTurf
from app.precincts.models import Precinct
from app.sync.models import DoorKnock, ResultTally
from app.turfs.models import Turf

ACTIVE = "active"


@dataclass(frozen=True)
class Filters:
    """What a progress request narrows to: precinct codes, one event's turfs, a window of corrected time."""

    precincts: tuple[str, ...] = ()
    event_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def windowed(self) -> bool:
        return self.since is not None or self.until is not None


async def changes(session: AsyncSession, campaign_id: int) -> int:
    """The campaign's change counter: progress reads the same until it moves."""
    return int(await session.scalar(select(Campaign.changes).where(Campaign.id == campaign_id)) or 0)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _figures(doors: int, attempted: int, contacted: int, knocks: int, results: dict[str, int],
             last: datetime | None) -> dict[str, Any]:
    return {"doors": doors, "doors_attempted": attempted, "doors_contacted": contacted, "knocks": knocks,
            "results": dict(sorted(results.items())), "share_attempted": _share(attempted, doors),
            "share_contacted": _share(contacted, doors), "last_knock_at": last}


async def _check(session: AsyncSession, campaign_id: int, filters: Filters) -> list[int] | None:
    """The precinct ids the filter names (None for all); 404 for an unknown event, 422 for an unknown code."""
    if filters.since is not None and filters.until is not None and filters.until <= filters.since:
        raise Invalid("until must be after since", field="until")
    if filters.event_id is not None and await session.scalar(select(Event.id).where(
            Event.id == filters.event_id, Event.campaign_id == campaign_id)) is None:
        raise NotFound(f"No event {filters.event_id} in this campaign.")
    if not filters.precincts:
        return None
    found = dict((await session.execute(select(Precinct.code, Precinct.id).where(
        Precinct.campaign_id == campaign_id, Precinct.code.in_(filters.precincts)))).all())
    unknown = sorted(set(filters.precincts) - set(found))
    if unknown:
        raise Invalid(f"no precinct {', '.join(unknown)} in this campaign", field="precinct")
    return list(found.values())


def _turf_where(campaign_id: int, precinct_ids: list[int] | None, filters: Filters) -> list[Any]:
    where: list[Any] = [Turf.campaign_id == campaign_id, Turf.status == ACTIVE]
    if precinct_ids is not None:
        where.append(Turf.precinct_id.in_(precinct_ids))
    if filters.event_id is not None:
        where.append(Turf.id.in_(select(EventTurf.turf_id).where(EventTurf.event_id == filters.event_id)))
    return where


async def _window(session: AsyncSession, campaign_id: int, key: Any, filters: Filters,
                  turfs: Any | None) -> dict[int, list[Any]]:
    """Per `key` (a door_knock column), the window's figures from its knocks: [attempted, contacted, knocks,
    {result: knocks}, last knock]. Doors count once however often they were knocked in the window."""
    knock = DoorKnock.__table__.c
    where: list[Any] = [knock.campaign_id == campaign_id]
    if filters.since is not None:
        where.append(knock.corrected_at >= filters.since)
    if filters.until is not None:
        where.append(knock.corrected_at < filters.until)
    if turfs is not None:
        where.append(knock.turf_id.in_(turfs))
    out: dict[int, list[Any]] = defaultdict(lambda: [0, 0, 0, {}, None])
    rows = (await session.execute(
        select(key, knock.result, func.count(), func.max(knock.corrected_at)).where(*where)
        .group_by(key, knock.result))).all()
    for group, result, knocks, last in rows:
        figures = out[group]
        figures[2] += knocks
        figures[3][result] = knocks
        figures[4] = last if figures[4] is None or last > figures[4] else figures[4]
    doors = (await session.execute(
        select(key, func.count(distinct(knock.household_id)),
               func.count(distinct(case((knock.contacted, knock.household_id)))))
        .where(*where).group_by(key))).all()
    for group, attempted, contacted in doors:
        out[group][0], out[group][1] = attempted, contacted
    return out


async def turf_progress(session: AsyncSession, campaign_id: int, filters: Filters) -> list[dict[str, Any]]:
    """Each active turf's progress (in id order), with its precinct's code; `geometry` holds its WKB."""
    precinct_ids = await _check(session, campaign_id, filters)
    where = _turf_where(campaign_id, precinct_ids, filters)
    rows = (await session.execute(
        select(Turf.id, Turf.name, Precinct.code, Turf.doors, Turf.doors_attempted, Turf.doors_contacted,
               Turf.knocks, Turf.last_knock_at, Turf.holders, Turf.geometry)
        .join(Precinct, Precinct.id == Turf.precinct_id).where(*where).order_by(Turf.id))).all()
    if filters.windowed:
        windowed = await _window(session, campaign_id, DoorKnock.__table__.c.turf_id, filters,
                                 select(Turf.id).where(*where))
        figures = {r.id: windowed[r.id] for r in rows}
    else:
        results: dict[int, dict[str, int]] = defaultdict(dict)
        for turf_id, result, knocks in (await session.execute(
                select(ResultTally.turf_id, ResultTally.result, func.sum(ResultTally.knocks))
                .join(Turf, Turf.id == ResultTally.turf_id).where(*where)
                .group_by(ResultTally.turf_id, ResultTally.result))).all():
            results[turf_id][result] = int(knocks)
        figures = {r.id: [r.doors_attempted, r.doors_contacted, r.knocks, results[r.id], r.last_knock_at]
                   for r in rows}
    return [{"id": r.id, "name": r.name, "precinct": r.code, "holders": r.holders,
             **_figures(r.doors, *figures[r.id]), "geometry": r.geometry} for r in rows]


async def precinct_progress(session: AsyncSession, campaign_id: int, filters: Filters) -> list[dict[str, Any]]:
    """Each precinct's progress (by code); with an event, the sum of the event's turfs in it."""
    precinct_ids = await _check(session, campaign_id, filters)
    where: list[Any] = [Precinct.campaign_id == campaign_id]
    if precinct_ids is not None:
        where.append(Precinct.id.in_(precinct_ids))
    if filters.event_id is not None:
        where.append(Precinct.id.in_(select(Turf.precinct_id).where(
            *_turf_where(campaign_id, precinct_ids, filters))))
    rows = (await session.execute(
        select(Precinct.id, Precinct.code, Precinct.name, Precinct.household_count, Precinct.doors_attempted,
               Precinct.doors_contacted, Precinct.knocks, Precinct.last_knock_at, Precinct.geometry)
        .where(*where).order_by(Precinct.code))).all()
    doors = {r.id: r.household_count for r in rows}
    if filters.event_id is not None:
        # An event's precinct figures are its turfs': doors on them, and what was done on them.
        turfs = await turf_progress(session, campaign_id, Filters(filters.precincts, filters.event_id,
                                                                  filters.since, filters.until))
        by_code: dict[str, list[Any]] = defaultdict(lambda: [0, 0, 0, 0, defaultdict(int), None])
        for t in turfs:
            total = by_code[t["precinct"]]
            for i, key in enumerate(("doors", "doors_attempted", "doors_contacted", "knocks")):
                total[i] += t[key]
            for result, n in t["results"].items():
                total[4][result] += n
            if t["last_knock_at"] is not None and (total[5] is None or t["last_knock_at"] > total[5]):
                total[5] = t["last_knock_at"]
        return [{"code": r.code, "name": r.name, **_figures(by_code[r.code][0], *by_code[r.code][1:4],
                                                             dict(by_code[r.code][4]), by_code[r.code][5]),
                 "geometry": r.geometry} for r in rows]
    if filters.windowed:
        windowed = await _window(session, campaign_id, DoorKnock.__table__.c.precinct_id, filters, None)
        figures = {r.id: windowed[r.id] for r in rows}
    else:
        results: dict[int, dict[str, int]] = defaultdict(dict)
        tally_where = [ResultTally.campaign_id == campaign_id]
        if precinct_ids is not None:
            tally_where.append(ResultTally.precinct_id.in_(precinct_ids))
        for precinct_id, result, knocks in (await session.execute(
                select(ResultTally.precinct_id, ResultTally.result, func.sum(ResultTally.knocks))
                .where(*tally_where).group_by(ResultTally.precinct_id, ResultTally.result))).all():
            results[precinct_id][result] = int(knocks)
        figures = {r.id: [r.doors_attempted, r.doors_contacted, r.knocks, results[r.id], r.last_knock_at]
                   for r in rows}
    return [{"code": r.code, "name": r.name, **_figures(doors[r.id], *figures[r.id]), "geometry": r.geometry}
            for r in rows]


async def campaign_progress(session: AsyncSession, campaign_id: int, filters: Filters) -> dict[str, Any]:
    """The campaign's totals: the precincts' figures summed (every door is in one precinct)."""
    precincts = await precinct_progress(session, campaign_id, filters)
    results: dict[str, int] = defaultdict(int)
    for p in precincts:
        for result, n in p["results"].items():
            results[result] += n
    last = max((p["last_knock_at"] for p in precincts if p["last_knock_at"] is not None), default=None)
    turfs = await session.scalar(select(func.count()).select_from(Turf).where(
        *_turf_where(campaign_id, None, filters))) or 0
    return {"precincts": len(precincts), "turfs": turfs,
            **_figures(sum(p["doors"] for p in precincts), sum(p["doors_attempted"] for p in precincts),
                       sum(p["doors_contacted"] for p in precincts), sum(p["knocks"] for p in precincts),
                       dict(results), last)}


def as_json(rows: list[dict[str, Any]]) -> bytes:
    return orjson.dumps([{k: v for k, v in row.items() if k != "geometry"} for row in rows])


def as_geojson(rows: list[dict[str, Any]], key: str) -> bytes:
    """A FeatureCollection of the rows' polygons, their figures as properties, `key` as each feature's id.

    Written as text around shapely's GeoJSON strings: parsing them back only to dump them again would double
    the work of the largest part of the answer.
    """
    shapes = geometries([row["geometry"] for row in rows])
    features = [b'{"type":"Feature","id":' + orjson.dumps(row[key]) + b',"geometry":' + shape.encode()
                + b',"properties":' + orjson.dumps({k: v for k, v in row.items() if k != "geometry"}) + b"}"
                for row, shape in zip(rows, shapes, strict=True)]
    return b'{"type":"FeatureCollection","features":[' + b",".join(features) + b"]}"

