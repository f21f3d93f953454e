"""Progress: doors attempted and contacted, knocks by result, per turf, per precinct and for the campaign.

Read from the counters sync keeps in its own transaction (turf, precinct, result tallies), never by counting
knocks; only a time window (`since`, `until`, in corrected time) that leaves some knocks out reads the knocks of
that window, through the window index (campaign, corrected time and the columns counted).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Text, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign
from app.errors import Invalid, NotFound
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


def _figures(doors: int, attempted: int, contacted: int, knocks: int, results: dict[str, int],
             last: datetime | None) -> dict[str, Any]:
    # Called for every turf of a city on each live poll: kept to plain expressions.
    return {"doors": doors, "doors_attempted": attempted, "doors_contacted": contacted, "knocks": knocks,
            "results": dict(sorted(results.items())) if len(results) > 1 else results,
            "share_attempted": round(attempted / doors, 4) if doors else 0.0,
            "share_contacted": round(contacted / doors, 4) if doors else 0.0, "last_knock_at": last}


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
    {result: knocks}, last knock]. Doors count once however often they were knocked in the window.

    No counter can add up distinct doors over any window, so this reads the window's knocks: two index-only
    scans of the window index (its columns are all these read), each door collapsed by hashing before it is
    counted (a sorted count(DISTINCT) costs twice as much). The cost follows the window's knocks, not the
    campaign's.
    """
    knock = DoorKnock.__table__.c
    where: list[Any] = [knock.campaign_id == campaign_id]
    if filters.since is not None:
        where.append(knock.corrected_at >= filters.since)
    if filters.until is not None:
        where.append(knock.corrected_at < filters.until)
    if turfs is not None:
        where.append(knock.turf_id.in_(turfs))
    out: dict[int, list[Any]] = defaultdict(lambda: [0, 0, 0, {}, None])
    connection = await session.connection()
    rows = (await connection.execute(
        select(key, knock.result, func.count(), func.max(knock.corrected_at)).where(*where)
        .group_by(key, knock.result))).all()
    for group, result, knocks, last in rows:
        figures = out[group]
        figures[2] += knocks
        figures[3][result] = knocks
        figures[4] = last if figures[4] is None or last > figures[4] else figures[4]
    doors = (select(key.label("key"), func.max(case((knock.contacted, 1), else_=0)).label("contacted"))
             .where(*where).group_by(key, knock.household_id).subquery())
    for group, attempted, contacted in (await connection.execute(
            select(doors.c.key, func.count(), func.sum(doors.c.contacted)).group_by(doors.c.key))).all():
        out[group][0], out[group][1] = attempted, int(contacted)
    return out


async def _whole(session: AsyncSession, campaign_id: int, filters: Filters) -> bool:
    """Whether the window holds every knock of the campaign: then its figures are the counters' (and a tool
    asking from the campaign's first day gets them at the counters' cost)."""
    knock = DoorKnock.__table__.c
    first, last = (await (await session.connection()).execute(
        select(func.min(knock.corrected_at), func.max(knock.corrected_at))
        .where(knock.campaign_id == campaign_id))).one()
    if first is None:
        return True
    return ((filters.since is None or filters.since <= first)
            and (filters.until is None or filters.until > last))


_turf, _precinct, _tally = Turf.__table__.c, Precinct.__table__.c, ResultTally.__table__.c


def _results(connection: Any, key: Any, where: list[Any]) -> Any:
    """A subquery of each `key`'s knocks by result (summed over the tallies `where` selects) as one JSON object
    text per key: `key` and `results`. One row per turf or precinct reaches Python, not one per result."""
    summed = (select(key.label("key"), _tally.result, func.sum(_tally.knocks).label("knocks")).where(*where)
              .group_by(key, _tally.result).subquery())
    collect = func.json_object_agg if connection.dialect.name == "postgresql" else func.json_group_object
    # As text on both: the driver would decode PostgreSQL's json with the slower stdlib parser.
    return (select(summed.c.key, cast(collect(summed.c.result, summed.c.knocks), Text).label("results"))
            .group_by(summed.c.key).subquery())


def _parsed(results: str | None) -> dict[str, int]:
    return orjson.loads(results) if results else {}


async def turf_progress(session: AsyncSession, campaign_id: int, filters: Filters, *,
                        shapes: bool = False) -> list[dict[str, Any]]:
    """Each active turf's progress (in id order), with its precinct's code; with `shapes`, `geometry` holds its
    stored GeoJSON text.

    One read of what sync keeps, as Core rows: the turfs with their result tallies folded into one JSON object
    each (this answer is polled live, for every turf of a city).
    """
    precinct_ids = await _check(session, campaign_id, filters)
    if filters.windowed and await _whole(session, campaign_id, filters):
        filters = Filters(filters.precincts, filters.event_id)
    where = _turf_where(campaign_id, precinct_ids, filters)
    connection = await session.connection()
    columns = [_turf.id, _turf.name, _precinct.code, _turf.doors, _turf.doors_attempted, _turf.doors_contacted,
               _turf.knocks, _turf.last_knock_at, _turf.holders, *([_turf.geojson] if shapes else [])]
    query = select(*columns).join(Precinct.__table__, _precinct.id == _turf.precinct_id).where(*where)
    if not filters.windowed:
        # Every turf of the campaign is the usual ask: then the tallies need no join to turfs.
        tallies = [_tally.campaign_id == campaign_id]
        if precinct_ids is not None or filters.event_id is not None:
            tallies.append(_tally.turf_id.in_(select(Turf.id).where(*where)))
        results = _results(connection, _tally.turf_id, tallies)
        query = query.add_columns(results.c.results).outerjoin(results, results.c.key == _turf.id)
    rows = (await connection.execute(query.order_by(_turf.id))).all()
    windowed = (await _window(session, campaign_id, DoorKnock.__table__.c.turf_id, filters,
                              select(Turf.id).where(*where)) if filters.windowed else None)
    out = []
    # Rows unpacked by position: a Row's attribute look-ups cost more than the rest of this loop.
    for turf_id, name, code, doors, attempted, contacted, knocks, last, holders, *extra in rows:
        row = {"id": turf_id, "name": name, "precinct": code, "holders": holders}
        if windowed is not None:
            row.update(_figures(doors, *windowed[turf_id]))
        else:
            row.update(_figures(doors, attempted, contacted, knocks, _parsed(extra[-1]), last))
        if shapes:
            row["geometry"] = extra[0]
        out.append(row)
    return out


async def precinct_progress(session: AsyncSession, campaign_id: int, filters: Filters, *,
                            shapes: bool = False) -> list[dict[str, Any]]:
    """Each precinct's progress (by code); with an event, the sum of the event's turfs in it. With `shapes`,
    `geometry` holds the precinct's stored GeoJSON text."""
    precinct_ids = await _check(session, campaign_id, filters)
    if filters.windowed and await _whole(session, campaign_id, filters):
        filters = Filters(filters.precincts, filters.event_id)
    where: list[Any] = [_precinct.campaign_id == campaign_id]
    if precinct_ids is not None:
        where.append(_precinct.id.in_(precinct_ids))
    if filters.event_id is not None:
        where.append(_precinct.id.in_(select(Turf.precinct_id).where(
            *_turf_where(campaign_id, precinct_ids, filters))))
    connection = await session.connection()
    query = select(_precinct.id, _precinct.code, _precinct.name, _precinct.household_count, _precinct.doors_attempted,
                   _precinct.doors_contacted, _precinct.knocks, _precinct.last_knock_at,
                   *([_precinct.geojson] if shapes else [])).where(*where)
    plain = filters.event_id is None and not filters.windowed
    if plain:
        tallies = [_tally.campaign_id == campaign_id]
        if precinct_ids is not None:
            tallies.append(_tally.precinct_id.in_(precinct_ids))
        results = _results(connection, _tally.precinct_id, tallies)
        query = query.add_columns(results.c.results).outerjoin(results, results.c.key == _precinct.id)
    rows = (await connection.execute(query.order_by(_precinct.code))).all()

    def answer(r: Any, figures: list[Any]) -> dict[str, Any]:
        row = {"code": r.code, "name": r.name, **_figures(*figures)}
        if shapes:
            row["geometry"] = r.geojson
        return row

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
        return [answer(r, [*by_code[r.code][:4], dict(by_code[r.code][4]), by_code[r.code][5]]) for r in rows]
    if filters.windowed:
        windowed = await _window(session, campaign_id, DoorKnock.__table__.c.precinct_id, filters, None)
        return [answer(r, [r.household_count, *windowed[r.id]]) for r in rows]
    return [answer(r, [r.household_count, r.doors_attempted, r.doors_contacted, r.knocks, _parsed(r.results),
                       r.last_knock_at]) for r in rows]


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
    return orjson.dumps(rows)


def as_geojson(rows: list[dict[str, Any]], key: str) -> bytes:
    """A FeatureCollection of the rows' polygons (their `geometry`, stored GeoJSON text, taken out of each row
    and embedded as it is), the rest of each row as its properties, `key` as each feature's id."""
    return orjson.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": row[key], "geometry": orjson.Fragment(row.pop("geometry")), "properties": row}
        for row in rows]})
