"""Progress: doors attempted and contacted, knocks by result, per turf, per precinct and for the campaign.

Read from the counters sync keeps in its own transaction (turf, precinct, result tallies), never by counting
knocks; only a time window (`since`, `until`, in corrected time) that leaves some knocks out reads the knocks of
that window, through the window index (campaign, corrected time and the columns counted).
"""

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Text, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign
from app.db import object_agg
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


def _window_where(campaign_id: int, filters: Filters) -> list[Any]:
    knock = DoorKnock.__table__.c
    where: list[Any] = [knock.campaign_id == campaign_id]
    if filters.since is not None:
        where.append(knock.corrected_at >= filters.since)
    if filters.until is not None:
        where.append(knock.corrected_at < filters.until)
    return where


def _window_doors(key: Any, where: list[Any]) -> Any:
    """A subquery of each `key`'s figures from the window's knocks (`where`): `key`, `attempted`, `contacted`,
    `knocks`, `last`. Doors count once however often they were knocked in the window.

    No counter can add up distinct doors over any window, so this reads the window's knocks, from the window index
    alone (its columns are all this reads); each door is collapsed by grouping before it is counted, which a
    database hashes (a count(DISTINCT) sorts). The cost follows the window's knocks, not the campaign's.
    """
    knock = DoorKnock.__table__.c
    doors = (select(key.label("key"), func.count().label("knocks"), func.max(knock.corrected_at).label("last"),
                    func.max(case((knock.contacted, 1), else_=0)).label("contacted"))
             .where(*where).group_by(key, knock.household_id).subquery())
    return (select(doors.c.key, func.count().label("attempted"), func.sum(doors.c.contacted).label("contacted"),
                   func.sum(doors.c.knocks).label("knocks"), func.max(doors.c.last).label("last"))
            .group_by(doors.c.key).subquery())


async def _whole(session: AsyncSession, campaign_id: int, filters: Filters) -> bool:
    """Whether the window holds every knock of the campaign: then its figures are the counters' (and a tool
    asking from the campaign's first day gets them at the counters' cost)."""
    knock = DoorKnock.__table__.c
    # Each end from the window index on its own: SQLite reads a range, not one entry, for min() and max() at once.
    ends = select(knock.corrected_at).where(knock.campaign_id == campaign_id).limit(1)
    first, last = (await (await session.connection()).execute(select(
        ends.order_by(knock.corrected_at).scalar_subquery(),
        ends.order_by(knock.corrected_at.desc()).scalar_subquery()))).one()
    if first is None:
        return True
    return ((filters.since is None or filters.since <= first)
            and (filters.until is None or filters.until > last))


_turf, _precinct, _tally = Turf.__table__.c, Precinct.__table__.c, ResultTally.__table__.c


def _results(connection: Any, key: Any, result: Any, knocks: Any, where: list[Any]) -> Any:
    """A subquery of each `key`'s knocks (`knocks`, an aggregate) by `result`, over the rows `where` selects, as
    one JSON object text per key: `key` and `results`. One row per turf or precinct reaches Python, not one per
    result."""
    summed = (select(key.label("key"), result.label("result"), knocks.label("knocks")).where(*where)
              .group_by(key, result).subquery())
    # As text on both: the driver would decode PostgreSQL's json with the slower stdlib parser.
    return (select(summed.c.key, cast(object_agg(connection, summed.c.result, summed.c.knocks), Text).label("results"))
            .group_by(summed.c.key).subquery())


def _figure_columns(connection: Any, campaign_id: int, filters: Filters, *, key: Any, counters: list[Any],
                    tally_key: Any, narrow: list[Any]) -> tuple[list[Any], list[tuple[Any, Any]]]:
    """The columns of a turf's or precinct's figures (attempted, contacted, knocks, last knock, results as JSON
    text) and the subqueries to outer-join for them on the row's id: sync's counters (`counters`, and the result
    tallies by `tally_key`), or, in a window, the window's knocks by `key`. `narrow` narrows tallies or knocks to
    the rows asked for."""
    if filters.windowed:
        knock = DoorKnock.__table__.c
        where = [*_window_where(campaign_id, filters), *narrow]
        doors = _window_doors(key, where)
        results = _results(connection, key, knock.result, func.count(), where)
        return ([doors.c.attempted, doors.c.contacted, doors.c.knocks, doors.c.last, results.c.results],
                [(doors, doors.c.key), (results, results.c.key)])
    results = _results(connection, tally_key, _tally.result, func.sum(_tally.knocks),
                       [_tally.campaign_id == campaign_id, *narrow])
    return [*counters, results.c.results], [(results, results.c.key)]


def _read_figures(doors: int, attempted: int | None, contacted: Any, knocks: Any, last: datetime | None,
                  results: str | None) -> dict[str, Any]:
    """A row's figures as read: a window's are null where it holds no knock, its sums may be decimals, and its
    results are JSON text."""
    return _figures(doors, attempted or 0, int(contacted or 0), int(knocks or 0),
                    orjson.loads(results) if results else {}, last)


async def _prepared(session: AsyncSession, campaign_id: int, filters: Filters) -> tuple[list[int] | None, Filters]:
    """The precinct ids the filters name (checked, as `_check` does) and the filters to read with."""
    precinct_ids = await _check(session, campaign_id, filters)
    if filters.windowed and await _whole(session, campaign_id, filters):
        filters = Filters(filters.precincts, filters.event_id)
    return precinct_ids, filters


async def turf_progress(session: AsyncSession, campaign_id: int, filters: Filters, *,
                        shapes: bool = False) -> list[dict[str, Any]]:
    """Each active turf's progress (in id order), with its precinct's code; with `shapes`, `geometry` holds its
    stored GeoJSON text.

    One read, as Core rows: the turfs with their figures (sync's counters, or a window's) and their knocks by
    result folded into one JSON object each (this answer is polled live, for every turf of a city).
    """
    precinct_ids, filters = await _prepared(session, campaign_id, filters)
    return await _turf_rows(session, campaign_id, precinct_ids, filters, shapes=shapes)


async def _turf_rows(session: AsyncSession, campaign_id: int, precinct_ids: list[int] | None, filters: Filters, *,
                     shapes: bool, after: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """`turf_progress` of filters `_prepared` already, or of a page: the first `limit` turfs after id `after`."""
    where = _turf_where(campaign_id, precinct_ids, filters)
    if after is not None:
        where.append(_turf.id > after)
    connection = await session.connection()
    knock = DoorKnock.__table__.c
    # A page after the first reads the tallies and knocks of its own turfs only; the first reads as the whole
    # list does, so a city's map, one page, is one query planned as before.
    narrowed = precinct_ids is not None or filters.event_id is not None or after is not None
    turfs = select(Turf.id).where(*where)
    if after is not None:
        turfs = turfs.order_by(Turf.id).limit(limit)
    figures, joins = _figure_columns(
        connection, campaign_id, filters, key=knock.turf_id, tally_key=_tally.turf_id,
        counters=[_turf.doors_attempted, _turf.doors_contacted, _turf.knocks, _turf.last_knock_at],
        narrow=[(knock.turf_id if filters.windowed else _tally.turf_id).in_(turfs)] if narrowed else [])
    query = (select(_turf.id, _turf.name, _precinct.code, _turf.holders, _turf.doors, *figures,
                    *([_turf.geojson] if shapes else []))
             .select_from(Turf.__table__).join(Precinct.__table__, _precinct.id == _turf.precinct_id).where(*where))
    for subquery, on in joins:
        query = query.outerjoin(subquery, on == _turf.id)
    out = []
    # Rows unpacked by position: a Row's attribute look-ups cost more than the rest of this loop.
    for turf_id, name, code, holders, doors, attempted, contacted, knocks, last, results, *shape in (
            await connection.execute(query.order_by(_turf.id).limit(limit))).all():
        row = {"id": turf_id, "name": name, "precinct": code, "holders": holders,
               **_read_figures(doors, attempted, contacted, knocks, last, results)}
        if shapes:
            row["geometry"] = shape[0]
        out.append(row)
    return out


async def precinct_progress(session: AsyncSession, campaign_id: int, filters: Filters, *,
                            shapes: bool = False) -> list[dict[str, Any]]:
    """Each precinct's progress (by code); with an event, the sum of the event's turfs in it. With `shapes`,
    `geometry` holds the precinct's stored GeoJSON text."""
    precinct_ids, filters = await _prepared(session, campaign_id, filters)
    return await _precinct_rows(session, campaign_id, precinct_ids, filters, shapes=shapes)


async def _precinct_rows(session: AsyncSession, campaign_id: int, precinct_ids: list[int] | None, filters: Filters,
                         *, shapes: bool, after: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """`precinct_progress` of filters `_prepared` already, or of a page: the first `limit` precincts after code
    `after` (an event's few precincts come in one page)."""
    where: list[Any] = [_precinct.campaign_id == campaign_id]
    if precinct_ids is not None:
        where.append(_precinct.id.in_(precinct_ids))
    if filters.event_id is not None:
        where.append(_precinct.id.in_(select(Turf.precinct_id).where(
            *_turf_where(campaign_id, precinct_ids, filters))))
    connection = await session.connection()
    if filters.event_id is not None:
        return [] if after is not None else await _event_precincts(session, campaign_id, filters, where,
                                                                   shapes=shapes)
    if after is not None:
        where.append(_precinct.code > after)
    knock = DoorKnock.__table__.c
    narrow: Any = precinct_ids
    if after is not None:
        # A page after the first reads the tallies and knocks of its own precincts only (as turfs do).
        narrow = select(_precinct.id).where(*where).order_by(_precinct.code).limit(limit)
    figures, joins = _figure_columns(
        connection, campaign_id, filters, key=knock.precinct_id, tally_key=_tally.precinct_id,
        counters=[_precinct.doors_attempted, _precinct.doors_contacted, _precinct.knocks, _precinct.last_knock_at],
        narrow=[(knock.precinct_id if filters.windowed else _tally.precinct_id).in_(narrow)]
        if narrow is not None else [])
    query = (select(_precinct.code, _precinct.name, _precinct.household_count, *figures,
                    *([_precinct.geojson] if shapes else []))
             .select_from(Precinct.__table__).where(*where))
    for subquery, on in joins:
        query = query.outerjoin(subquery, on == _precinct.id)
    out = []
    for code, name, doors, attempted, contacted, knocks, last, results, *shape in (
            await connection.execute(query.order_by(_precinct.code).limit(limit))).all():
        row = {"code": code, "name": name, **_read_figures(doors, attempted, contacted, knocks, last, results)}
        if shapes:
            row["geometry"] = shape[0]
        out.append(row)
    return out


async def _event_precincts(session: AsyncSession, campaign_id: int, filters: Filters, where: list[Any], *,
                           shapes: bool) -> list[dict[str, Any]]:
    """The precincts of an event's turfs, each with the sum of those turfs' figures: doors on them, and what was
    done on them."""
    rows = (await (await session.connection()).execute(
        select(_precinct.code, _precinct.name, *([_precinct.geojson] if shapes else []))
        .where(*where).order_by(_precinct.code))).all()
    by_code: dict[str, list[Any]] = defaultdict(lambda: [0, 0, 0, 0, defaultdict(int), None])
    for t in await turf_progress(session, campaign_id, filters):
        total = by_code[t["precinct"]]
        for i, key in enumerate(("doors", "doors_attempted", "doors_contacted", "knocks")):
            total[i] += t[key]
        for result, n in t["results"].items():
            total[4][result] += n
        if t["last_knock_at"] is not None and (total[5] is None or t["last_knock_at"] > total[5]):
            total[5] = t["last_knock_at"]
    out = []
    for code, name, *shape in rows:
        total = by_code[code]
        row = {"code": code, "name": name, **_figures(*total[:4], dict(total[4]), total[5])}
        if shapes:
            row["geometry"] = shape[0]
        out.append(row)
    return out


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


def as_features(rows: list[dict[str, Any]], key: str) -> bytes:
    """The rows as GeoJSON Features, commas between: each its polygon (`geometry`, stored GeoJSON text, taken out
    of the row and embedded as it is), the rest of the row as its properties, `key` as its id."""
    return orjson.dumps([{"type": "Feature", "id": row[key], "geometry": orjson.Fragment(row.pop("geometry")),
                          "properties": row} for row in rows])[1:-1]


# Features, commas between, and the key of the page after them (None on the last).
Page = tuple[bytes, Any]


async def feature_pages(session: AsyncSession, campaign_id: int, filters: Filters, *, turfs: bool,
                        limit: int) -> tuple[Page, Callable[[AsyncSession, Any], Awaitable[Page]]]:
    """The turfs' (or precincts') progress as GeoJSON Features a page of `limit` at a time, in id (code) order:
    the first page with the key after it (None when it is the last), and how to read the page after a key, in
    a session of the caller's. Raises as `turf_progress` does, for the first page only."""
    precinct_ids, filters = await _prepared(session, campaign_id, filters)
    rows_of, key = (_turf_rows, "id") if turfs else (_precinct_rows, "code")

    async def read(reader: AsyncSession, after: Any) -> Page:
        rows = await rows_of(reader, campaign_id, precinct_ids, filters, shapes=True, after=after, limit=limit)
        return as_features(rows, key), rows[-1][key] if len(rows) == limit else None

    return await read(session, None), read
