"""Walk lists: each turf's walking order, computed when its doors change and stored; the list a phone
downloads, whole or as the changes since a version it has."""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson
import pandas as pd
from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses.models import Building, Household, Person
from app.db import begin_write, bulk_insert, utcnow
from app.errors import Invalid
from app.geo.geojson import DIGITS
from app.geo.order import WALK_COLUMNS, TurfWalk, order_turfs
from app.precincts.models import Precinct
from app.precincts.service import projection
from app.scripts.models import ScriptVersion
from app.scripts.service import STANDARD_RESULTS
from app.streets.service import load_streets
from app.turfs.models import Turf
from app.turfs.service import find_turf
from app.walklists.models import WalkStop

# Coordinates in walk lists are those of the stored polygons (app.geo.geojson): about 10 cm, plenty for a door and
# a shorter download.
# What a phone gets for a turf with no script: the door results alone.
NO_SCRIPT = orjson.dumps({"script_id": None, "version": 0, "name": "Door results",
                          "questions": [], "result_codes": STANDARD_RESULTS})
STOP_COLUMNS = ("turf_id", "household_id", "seq", "removed", "changed")


async def walk_doors(session: AsyncSession, turf_ids: Sequence[int]) -> pd.DataFrame:
    """The doors of these turfs, as order_turfs wants them."""
    rows = (await session.execute(
        select(Household.turf_id, Household.id, Household.building_id, Household.unit, Building.lon, Building.lat,
               Building.street_id, Building.street_side, Building.street_pos_m)
        .join(Building, Building.id == Household.building_id)
        .where(Household.turf_id.in_(list(turf_ids))))).all()
    return pd.DataFrame(rows, columns=WALK_COLUMNS)


async def store_walks(session: AsyncSession, walks: dict[int, TurfWalk], *, new: bool = False) -> None:
    """Store turfs' walking orders and routes in the session's (write) transaction.

    A door that is new to a turf, or came back to it, is stamped with the turf's new version; one that left
    stays as a removed row with that version, so `?since=` can tell a phone. `new` turfs were just made:
    they keep version 1.
    """
    if not walks:
        return
    ids = sorted(walks)
    # Row locks on PostgreSQL (SQLite's writer holds the whole database): a sync stamping results on these
    # turfs waits, so no stamp is lost between reading the stops and writing them back.
    versions = dict((await session.execute(select(Turf.id, Turf.version).where(Turf.id.in_(ids)).order_by(Turf.id)
                                           .with_for_update())).all())
    old: dict[int, dict[int, Any]] = {t: {} for t in ids}
    if not new:
        for stop in (await session.execute(select(WalkStop.turf_id, WalkStop.household_id, WalkStop.seq,
                                                  WalkStop.removed, WalkStop.changed)
                                           .where(WalkStop.turf_id.in_(ids)))).all():
            old[stop.turf_id][stop.household_id] = stop
        await session.execute(delete(WalkStop).where(WalkStop.turf_id.in_(ids)))
    rows: list[tuple[Any, ...]] = []
    changes = []
    for turf_id in ids:
        version = versions[turf_id] if new else versions[turf_id] + 1
        before, walk = old[turf_id], walks[turf_id]
        for seq, household_id in enumerate(walk.household_ids):
            kept = before.pop(household_id, None)
            changed = kept.changed if kept is not None and not kept.removed else version
            rows.append((turf_id, household_id, seq, False, changed))
        rows += [(turf_id, h, s.seq, True, s.changed if s.removed else version) for h, s in before.items()]
        changes.append({"turf": turf_id, "v": version, "r": walk.route, "rm": walk.length_m})
    await bulk_insert(session, WalkStop.__table__, STOP_COLUMNS, rows)
    await session.execute(
        update(Turf.__table__).where(Turf.__table__.c.id == bindparam("turf"))
        .values(version=bindparam("v"), route_version=bindparam("v"), route=bindparam("r"),
                route_m=bindparam("rm")), changes)


async def refresh_walks(session: AsyncSession, campaign_id: int, turf_ids: Iterable[int]) -> None:
    """Recompute and store the walking order of these turfs from their doors now (none, for a turf that
    lost them all). In the caller's write transaction."""
    ids = sorted(set(turf_ids))
    if not ids:
        return
    proj = await projection(session, campaign_id)
    streets = await load_streets(session, campaign_id, proj)
    doors = await walk_doors(session, ids)
    walks = await anyio.to_thread.run_sync(lambda: order_turfs(streets, proj, doors))
    await store_walks(session, {t: walks.get(t, TurfWalk([], None, 0.0)) for t in ids})


async def refresh_campaign_walks(session: AsyncSession, campaign_id: int) -> None:
    """Recompute every active turf's walk (after streets are imported, say)."""
    ids = (await session.execute(select(Turf.id).where(Turf.campaign_id == campaign_id, Turf.status == "active"))
           ).scalars().all()
    await refresh_walks(session, campaign_id, ids)


async def touch_households(session: AsyncSession, household_ids: Iterable[int]) -> None:
    """Mark these doors changed on the walk lists holding them (their people, address or result changed):
    each such turf gets a new version and the doors are stamped with it."""
    ids = sorted(set(household_ids))
    if not ids:
        return
    stops = []
    for start in range(0, len(ids), 5000):
        stops += (await session.execute(select(WalkStop.turf_id, WalkStop.household_id).where(
            WalkStop.household_id.in_(ids[start:start + 5000]), WalkStop.removed.is_(False)))).all()
    if not stops:
        return
    turfs = sorted({s.turf_id for s in stops})
    bumped = dict((await session.execute(update(Turf).where(Turf.id.in_(turfs))
                                         .values(version=Turf.version + 1, updated_at=utcnow())
                                         .returning(Turf.id, Turf.version)
                                         .execution_options(synchronize_session=False))).all())
    await session.execute(
        update(WalkStop.__table__).where(and_(WalkStop.__table__.c.turf_id == bindparam("t"),
                                              WalkStop.__table__.c.household_id == bindparam("h")))
        .values(changed=bindparam("v")),
        [{"t": s.turf_id, "h": s.household_id, "v": bumped[s.turf_id]} for s in stops])


# Reading

def age_band(birth_year: int | None, year: int) -> str | None:
    """A person's age band, all a canvasser needs of their birth date.

    >>> [age_band(y, 2026) for y in (None, 2010, 2002, 1990, 1950, 1940)]
    [None, 'under 18', '18-24', '35-44', '75+', '75+']
    """
    if birth_year is None:
        return None
    age = year - birth_year
    if age < 18:
        return "under 18"
    for top, band in ((24, "18-24"), (34, "25-34"), (44, "35-44"), (54, "45-54"), (64, "55-64"), (74, "65-74")):
        if age <= top:
            return band
    return "75+"


async def walk_turf(session: AsyncSession, campaign_id: int, turf_id: int, *, only: Any = None) -> Any:
    """The turf fields a walk list needs, with its precinct's code. Raises NotFound if it isn't one of the
    campaign's turfs (or of the ids `only` selects)."""
    query = (
        select(Turf.id, Turf.campaign_id, Turf.name, Turf.status, Turf.version, Turf.route_version, Turf.geojson,
               Turf.route, Turf.route_m, Turf.doors, Turf.script_version_id, Turf.script_since,
               Precinct.code.label("precinct_code"))
        .join(Precinct, Precinct.id == Turf.precinct_id))
    return await find_turf(session, query, campaign_id, turf_id, only=only)


def etag(turf: Any, since: int | None) -> str:
    """A walk list's ETag: the turf's version (and the `since` asked for). Weak: gzip changes the bytes."""
    return f'W/"{turf.id}.{turf.version}{"" if since is None else f".{since}"}"'


async def walklist(session: AsyncSession, turf: Any, *, since: int | None) -> tuple[str, bytes, int]:
    """The walk list of a turf (a `walk_turf` row) as JSON bytes, with its ETag and how many people it names:
    whole, or what changed after `since`. A turf with doors but no stored order (made before walk lists) is
    ordered first, once.

    Raises Invalid for a `since` ahead of the turf.
    """
    made = await _walklist(session, turf, since=since)
    if made is None:
        await begin_write(session)
        await refresh_walks(session, turf.campaign_id, [turf.id])
        await session.commit()
        turf = await walk_turf(session, turf.campaign_id, turf.id)
        made = await _walklist(session, turf, since=since)
        assert made is not None
    return etag(turf, since), *made


async def _walklist(session: AsyncSession, turf: Any, *, since: int | None) -> tuple[bytes, int] | None:
    """The walk list as JSON bytes and the number of people in it, or None when the turf has doors but no
    stored order.

    Read with SQLAlchemy Core and written with orjson: phones download this all evening.
    """
    if since is not None and since > turf.version:
        raise Invalid(f"version {since} is ahead of the turf's version {turf.version}", field="since")
    full = not since
    after = since or 0
    stops = (await session.execute(
        select(WalkStop.household_id, WalkStop.removed, WalkStop.changed, Household.unit, Household.building_id,
               Household.last_result, Household.last_result_at, Building.number, Building.street, Building.lon,
               Building.lat)
        .join(Household, Household.id == WalkStop.household_id)
        .join(Building, Building.id == Household.building_id)
        .where(WalkStop.turf_id == turf.id).order_by(WalkStop.seq, WalkStop.household_id))).all()
    if not stops and turf.doors > 0:
        return None
    sent = [s for s in stops if not s.removed and s.changed > after]
    people: dict[int, list[dict[str, Any]]] = {}
    if sent:
        query = (select(Person.id, Person.household_id, Person.first_name, Person.last_name, Person.birth_year,
                        Person.language)
                 .join(WalkStop, and_(WalkStop.household_id == Person.household_id, WalkStop.turf_id == turf.id))
                 .where(WalkStop.removed.is_(False)).order_by(Person.household_id, Person.last_name,
                                                              Person.first_name, Person.id))
        if not full:
            query = query.where(WalkStop.changed > after)
        year = datetime.now(UTC).year
        for p in (await session.execute(query)).all():
            people.setdefault(p.household_id, []).append(
                {"id": p.id, "name": f"{p.first_name} {p.last_name}".strip(),
                 "age_band": age_band(p.birth_year, year), "language": p.language})
    buildings: list[dict[str, Any]] = []
    for s in sent:
        if not buildings or buildings[-1]["id"] != s.building_id:
            buildings.append({"id": s.building_id, "address": f"{s.number} {s.street}".strip(),
                              "point": [round(s.lon, DIGITS), round(s.lat, DIGITS)], "households": []})
        last = {"result": s.last_result, "at": s.last_result_at} if s.last_result is not None else None
        buildings[-1]["households"].append({"id": s.household_id, "unit": s.unit,
                                            "people": people.get(s.household_id, []), "last_result": last})
    body: dict[str, Any] = {
        "turf": {"id": turf.id, "name": turf.name, "precinct_id": turf.precinct_code, "status": turf.status,
                 "doors": turf.doors, "geometry": orjson.Fragment(turf.geojson)},
        "version": turf.version, "since": since, "full": full,
    }
    if full or turf.script_since > after:
        body["script"] = orjson.Fragment(await _script(session, turf.script_version_id))
    if full or turf.route_version > after:
        body["route"] = orjson.Fragment(turf.route) if turf.route else None
        body["route_m"] = turf.route_m
    if not full:
        if turf.route_version > after:
            body["order"] = [s.household_id for s in stops if not s.removed]
        body["removed"] = [s.household_id for s in stops if s.removed and s.changed > after]
    body["buildings"] = buildings
    return orjson.dumps(body), sum(len(household) for household in people.values())


async def _script(session: AsyncSession, version_id: int | None) -> bytes:
    if version_id is None:
        return NO_SCRIPT
    v = (await session.execute(select(ScriptVersion.script_id, ScriptVersion.version, ScriptVersion.name,
                                      ScriptVersion.questions, ScriptVersion.result_codes)
                               .where(ScriptVersion.id == version_id))).one()
    return orjson.dumps({"script_id": v.script_id, "version": v.version, "name": v.name,
                         "questions": orjson.Fragment(v.questions), "result_codes": orjson.Fragment(v.result_codes)})
