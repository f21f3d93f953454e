"""The counters progress reads (doors, stops, turfs, precincts, result tallies, holdings' activity), moved on by
newly stored knocks in their batch's transaction, or rebuilt from every knock of a campaign.

`WRITES` is the one definition of how a batch's rows move each table on; app/sync/store.py renders it for each
dialect (PostgreSQL: one statement of data-modifying CTEs; SQLite: an executemany a table), so a new counter is
added here once.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, Integer, String, Uuid, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from app.addresses.models import Household
from app.db import UTCDateTime
from app.precincts.models import Precinct
from app.sync.checks import Item, State
from app.sync.models import DoorKnock, ResultTally
from app.turfs.models import Turf
from app.walklists.models import WalkStop

INT, BOOL, TIME, TEXT = Integer(), Boolean(), UTCDateTime(), String()


@dataclass(frozen=True)
class Update:
    """The rows of table `table` that `where` picks, moved on by rows of `fields` (name -> type) as `sets` says.

    In `where` and `sets`, `t.` is the table's row and `v.` the batch's row; `{version}` in `sets` is the version
    the turf `v.<stamp>` has after the turfs' write (walk lists stamp a changed door with it).
    """

    name: str
    table: str
    fields: dict[str, TypeEngine[Any]]
    where: str
    sets: str
    stamp: str | None = None


@dataclass(frozen=True)
class Upsert:
    """Rows of `fields` (named as the table's columns) inserted into `table`, `conflict` saying what a row
    already there becomes."""

    name: str
    table: str
    fields: dict[str, TypeEngine[Any]]
    conflict: str


def _later(column: str) -> str:
    # GREATEST on PostgreSQL ignores a null, SQLite's max() returns it: one spelling both read alike.
    return f"{column} = CASE WHEN t.{column} IS NULL OR t.{column} < v.last THEN v.last ELSE t.{column} END"


_TALLY = "knocks = t.knocks + v.n, doors_attempted = t.doors_attempted + v.a, doors_contacted = " \
         f"t.doors_contacted + v.c, {_later('last_knock_at')}"
TURFS = Update("turfs", "turf", {"i": INT, "n": INT, "a": INT, "c": INT, "last": TIME, "v": INT}, "t.id = v.i",
               f"{_TALLY}, version = t.version + v.v")
# In the order SQLite runs them: the turfs first, as the stops are stamped with the version that write leaves.
WRITES: tuple[Update | Upsert, ...] = (
    TURFS,
    Update("precincts", "precinct", {"i": INT, "n": INT, "a": INT, "c": INT, "last": TIME}, "t.id = v.i", _TALLY),
    Update("doors", "household", {"h": INT, "n": INT, "first": TIME, "contacted_at": TIME, "keep": BOOL,
                                  "result": TEXT, "at": TIME}, "t.id = v.h",
           "knocks = v.n, first_knock_at = v.first, contacted_at = v.contacted_at, "
           "last_result = CASE WHEN v.keep THEN t.last_result ELSE v.result END, "
           "last_result_at = CASE WHEN v.keep THEN t.last_result_at ELSE v.at END"),
    Update("stops", "walk_stop", {"t": INT, "h": INT, "n": INT, "c": BOOL, "s": BOOL},
           "t.turf_id = v.t AND t.household_id = v.h",
           "knocks = v.n, contacted = v.c, changed = CASE WHEN v.s THEN {version} ELSE t.changed END", stamp="t"),
    Upsert("tallies", "result_tally", {"turf_id": INT, "precinct_id": INT, "result": TEXT, "campaign_id": INT,
                                       "knocks": INT},
           "ON CONFLICT (turf_id, precinct_id, result) DO UPDATE SET knocks = result_tally.knocks + excluded.knocks"),
    Update("holdings", "turf_holding", {"t": INT, "u": Uuid(), "at": TIME}, "t.user_id = v.u AND t.turf_id = v.t",
           "last_activity_at = v.at"),
)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b < a) else a


def deltas(campaign_id: int, knocks: list[Item], state: State, user_id: UUID,
           received_at: datetime) -> dict[str, list[dict[str, Any]]]:
    """How newly stored knocks move the counters on: rows for each of WRITES, by its name (never empty: every
    knock has a door, stop, turf, precinct and holding). Each door's latest result is by corrected time; the walk
    lists holding a door whose result changed move on."""
    by_door: dict[int, list[Item]] = defaultdict(list)
    by_stop: dict[tuple[int, int], list[Item]] = defaultdict(list)
    turf_delta: dict[int, list[Any]] = defaultdict(lambda: [0, 0, 0, None, 0])  # knocks, attempted, contacted,
    precinct_delta: dict[int, list[Any]] = defaultdict(lambda: [0, 0, 0, None, 0])  # last knock, new version
    tally: dict[tuple[int, int, str], int] = defaultdict(int)
    for k in knocks:
        by_door[k.knock.household_id].append(k)
        by_stop[(k.knock.turf_id, k.knock.household_id)].append(k)
        tally[(k.knock.turf_id, k.precinct_id, k.knock.result)] += 1
        for delta in (turf_delta[k.knock.turf_id], precinct_delta[k.precinct_id]):
            delta[0] += 1
            if delta[3] is None or k.corrected_at > delta[3]:
                delta[3] = k.corrected_at

    door_updates, results_changed = [], set()
    for household_id, made in by_door.items():
        door = state.households[household_id]
        contacted_at = door.contacted_at
        for k in made:
            if k.contacted:
                contacted_at = _earlier(contacted_at, k.corrected_at)
        precinct = made[0].precinct_id
        precinct_delta[precinct][1] += door.knocks == 0
        precinct_delta[precinct][2] += door.contacted_at is None and contacted_at is not None
        # The latest by corrected time; a tie keeps the one stored first.
        latest = max(made, key=lambda k: (k.corrected_at, -k.index))
        update_result = door.last_result_at is None or latest.corrected_at > door.last_result_at
        if update_result:
            results_changed.add(household_id)
        door_updates.append({
            "h": household_id, "n": door.knocks + len(made), "contacted_at": contacted_at,
            "first": _earlier(door.first_knock_at, min(k.corrected_at for k in made)),
            "result": latest.knock.result if update_result else None,
            "at": latest.corrected_at if update_result else None, "keep": not update_result})

    # Walk lists: a door whose last result changed is stamped ("s") with its turf's next version; the writes
    # bump the turf first and stamp with what the turf then holds.
    active = {h: t for (t, h), stop in state.stops.items() if not stop.removed and h in results_changed}
    for turf_id in active.values():
        turf_delta[turf_id][4] = 1
    stop_updates = []
    for (turf_id, household_id), made in by_stop.items():
        stop = state.stops[(turf_id, household_id)]
        contacted = stop.contacted or any(k.contacted for k in made)
        turf_delta[turf_id][1] += stop.knocks == 0
        turf_delta[turf_id][2] += not stop.contacted and contacted
        stop_updates.append({"t": turf_id, "h": household_id, "n": stop.knocks + len(made), "c": contacted,
                             "s": active.get(household_id) == turf_id})
    stop_updates += [{"t": t, "h": h, "n": state.stops[(t, h)].knocks, "c": state.stops[(t, h)].contacted,
                      "s": True} for h, t in active.items() if (t, h) not in by_stop]

    return {
        "turfs": [{"i": key, "n": d[0], "a": d[1], "c": d[2], "last": d[3], "v": d[4]}
                  for key, d in turf_delta.items()],
        "precincts": [{"i": key, "n": d[0], "a": d[1], "c": d[2], "last": d[3]} for key, d in precinct_delta.items()],
        "doors": door_updates, "stops": stop_updates,
        "tallies": [{"turf_id": t, "precinct_id": p, "result": r, "campaign_id": campaign_id, "knocks": n}
                    for (t, p, r), n in tally.items()],
        # The holdings the knocks were made on saw activity.
        "holdings": [{"t": turf_id, "u": user_id, "at": received_at} for turf_id in sorted({t for t, _ in by_stop})],
    }


async def rebuild(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Recompute every counter of the campaign from its knocks, in the session's transaction (taken by the
    caller under the sync lock); what it counted."""
    knock = DoorKnock.__table__.c
    door, stop = Household.__table__.c, WalkStop.__table__.c
    mine = DoorKnock.campaign_id == campaign_id

    def of_door(*where: Any) -> Any:
        return select(func.count()).where(knock.household_id == door.id, *where).scalar_subquery()

    # The latest result: by corrected time, the first stored winning a tie (as sync keeps it).
    latest = (select(knock.result, knock.corrected_at).where(knock.household_id == door.id)
              .order_by(knock.corrected_at.desc(), knock.seq).limit(1))
    # Only the rows with a knock, or with a counter that says so: the others already read as none, and
    # rewriting every door of a city is most of a rebuild's time on PostgreSQL.
    knocked_door = or_(exists().where(knock.household_id == door.id), Household.knocks != 0,
                       *(c.is_not(None) for c in (Household.first_knock_at, Household.contacted_at,
                                                  Household.last_result, Household.last_result_at)))
    await session.execute(update(Household).where(Household.campaign_id == campaign_id, knocked_door).values(
        knocks=of_door(),
        first_knock_at=select(func.min(knock.corrected_at)).where(knock.household_id == door.id).scalar_subquery(),
        contacted_at=select(func.min(knock.corrected_at)).where(knock.household_id == door.id, knock.contacted)
        .scalar_subquery(),
        last_result=latest.with_only_columns(knock.result).scalar_subquery(),
        last_result_at=latest.with_only_columns(knock.corrected_at).scalar_subquery()))
    turfs = select(Turf.id).where(Turf.campaign_id == campaign_id)
    at_stop = (knock.turf_id == stop.turf_id, knock.household_id == stop.household_id)
    knocked_stop = or_(exists().where(*at_stop), WalkStop.knocks != 0, WalkStop.contacted)
    await session.execute(update(WalkStop).where(WalkStop.turf_id.in_(turfs), knocked_stop).values(
        knocks=select(func.count()).where(*at_stop).scalar_subquery(),
        contacted=select(func.count()).where(*at_stop, knock.contacted).scalar_subquery() > 0))
    for model, key in ((Turf, knock.turf_id), (Precinct, knock.precinct_id)):
        row = model.__table__.c
        doors = (select(func.count()).select_from(WalkStop).where(WalkStop.turf_id == row.id) if model is Turf
                 else select(func.count()).select_from(Household).where(Household.precinct_id == row.id))
        knocked = WalkStop.knocks > 0 if model is Turf else Household.knocks > 0
        contacted = WalkStop.contacted if model is Turf else Household.contacted_at.is_not(None)
        await session.execute(update(model).where(model.campaign_id == campaign_id).values(
            knocks=select(func.count()).where(key == row.id).scalar_subquery(),
            doors_attempted=doors.where(knocked).scalar_subquery(),
            doors_contacted=doors.where(contacted).scalar_subquery(),
            last_knock_at=select(func.max(knock.corrected_at)).where(key == row.id).scalar_subquery()))
    await session.execute(delete(ResultTally).where(ResultTally.campaign_id == campaign_id))
    await session.execute(insert(ResultTally).from_select(
        ["turf_id", "precinct_id", "result", "campaign_id", "knocks"],
        select(knock.turf_id, knock.precinct_id, knock.result, knock.campaign_id, func.count())
        .where(mine).group_by(knock.turf_id, knock.precinct_id, knock.result, knock.campaign_id)))
    knocks = await session.scalar(select(func.count()).select_from(DoorKnock).where(mine)) or 0
    doors = await session.scalar(select(func.count()).select_from(Household).where(
        Household.campaign_id == campaign_id, Household.knocks > 0)) or 0
    return {"knocks": knocks, "doors_attempted": doors}
