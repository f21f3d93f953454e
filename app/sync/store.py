"""Sync's storage: what a batch's checks read, and the knocks and their counters written, behind one interface
with a PostgreSQL and a SQLite implementation. Every difference between the dialects in sync is here.

PostgreSQL takes its hot statements straight through asyncpg (`pg_fetch`), rows as JSON parameters: SQLAlchemy's
work per statement (an expanding IN rendered anew for each batch size) cost more than the queries.
"""

import re
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import bindparam, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

from app.addresses.models import Household, Person
from app.db import pg_fetch
from app.organizing.models import TurfHistory
from app.scripts.models import ScriptVersion
from app.sync import counters
from app.sync.checks import Door, Item, State, Stop, intervals
from app.sync.counters import TURFS, WRITES, Update, Upsert
from app.sync.models import DoorKnock
from app.turfs.models import Turf
from app.walklists.models import WalkStop

# Ties a PostgreSQL advisory lock to syncing (the second key is the campaign).
SYNC_LOCK = 7001


def knock_rows(campaign_id: int, user_id: UUID, device_id: str, batch_id: str, offset_s: float,
               received_at: datetime, fresh: list[Item]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The door_knock rows of the checked knocks: what the batch shares, and what each knock has."""
    rows = [{"id": i.knock.id, "turf_id": i.knock.turf_id, "household_id": i.knock.household_id,
             "precinct_id": i.precinct_id, "person_id": i.knock.person_id, "script_version_id": i.script_version_id,
             "result": i.knock.result, "contacted": i.contacted, "answers": orjson.dumps(i.knock.answers).decode(),
             "note": i.knock.note, "lon": i.knock.lon, "lat": i.knock.lat, "knocked_at": i.knocked_at,
             "corrected_at": i.corrected_at, "clock_suspect": i.suspect, "digest": i.digest} for i in fresh]
    return {"campaign_id": campaign_id, "user_id": user_id, "device_id": device_id, "batch_id": batch_id,
            "clock_offset_s": offset_s, "received_at": received_at}, rows


class Store:
    """Reads and writes of a batch, in the caller's (write) transaction."""

    async def lock(self, session: AsyncSession, campaign_id: int) -> None:
        """One sync (or rebuild) at a time per campaign, until the transaction ends."""

    async def _doors(self, session: AsyncSession, campaign_id: int, ids: list[int]) -> Any:
        """Each of these doors with every stop it has: (id, precinct, knocks, first knock, contacted, last
        result's time, then the stop's turf, removed, knocks, contacted: None without a stop)."""
        raise NotImplementedError

    async def _history(self, session: AsyncSession, campaign_id: int, user_id: UUID, turfs: list[int]) -> Any:
        """The user's turf history rows (turf, action, at) on these turfs, in order of time."""
        raise NotImplementedError

    async def store(self, session: AsyncSession, shared: dict[str, Any], rows: list[dict[str, Any]],
                    fresh: list[Item], state: State) -> set[UUID]:
        """Insert the knocks (a stored id is left alone) and move the counters on by those inserted; their ids."""
        raise NotImplementedError

    async def load(self, session: AsyncSession, campaign_id: int, user_id: UUID, staff: bool,
                   items: list[Item]) -> State:
        """Read what the batch's knocks touch, in as few statements as the batch allows (two, for a canvasser's
        batch of plain results: the doors with their stops, and the holdings)."""
        if not items:
            return State({}, {}, {}, {}, set(), {})
        # On the knock's turf (was the door ever there?) and on the turf holding it now. A stop's turf is the
        # door's campaign's, so the stops also tell which turfs exist.
        rows = await self._doors(session, campaign_id, list({i.knock.household_id for i in items}))
        households = {r[0]: Door(r[1], r[2], r[3], r[4], r[5]) for r in rows}
        stops = {(r[6], r[0]): Stop(r[7], r[8], r[9]) for r in rows if r[6] is not None}
        turfs = {turf for turf, _ in stops}
        # Only a knock whose door was never on its turf needs to know whether the turf exists at all (its problem
        # names the field at fault).
        unknown = {i.knock.turf_id for i in items if i.knock.turf_id not in turfs}
        if unknown:
            turfs |= set((await session.execute(select(Turf.id).where(Turf.campaign_id == campaign_id,
                                                                       Turf.id.in_(unknown)))).scalars())
        person_ids = {i.knock.person_id for i in items if i.knock.person_id is not None}
        people = dict((await session.execute(select(Person.id, Person.household_id)
                                             .where(Person.id.in_(person_ids)))).all()) if person_ids else {}
        wanted = {(i.knock.script_id, i.knock.script_version) for i in items if i.knock.script_id is not None}
        versions = (await session.execute(
            select(ScriptVersion.id, ScriptVersion.script_id, ScriptVersion.version, ScriptVersion.questions,
                   ScriptVersion.result_codes).where(ScriptVersion.campaign_id == campaign_id,
                                                     tuple_(ScriptVersion.script_id, ScriptVersion.version)
                                                     .in_(list(wanted))))).all() if wanted else []
        parsed = {(v.script_id, v.version): ({c["code"]: c["contacted"] for c in orjson.loads(v.result_codes)},
                                             orjson.loads(v.questions), v.id) for v in versions}
        holdings = {} if staff else intervals(await self._history(session, campaign_id, user_id,
                                                                  list({i.knock.turf_id for i in items})))
        return State(households, stops, people, parsed, turfs, holdings)

    async def stored_digests(self, session: AsyncSession, ids: list[UUID]) -> dict[UUID, str]:
        """The digests of the knocks stored with these ids."""
        if not ids:
            return {}
        return dict((await session.execute(select(DoorKnock.id, DoorKnock.digest)
                                           .where(DoorKnock.id.in_(ids)))).all())


def _json(rows: list[dict[str, Any]]) -> str:
    """Rows as the JSON text json_to_recordset takes back apart (datetimes as RFC 3339, UUIDs as text)."""
    return orjson.dumps(rows).decode()


def _cte(write: Update | Upsert, guard: str) -> str:
    """One of counters.WRITES as a data-modifying CTE reading its rows from the JSON parameter of its name."""
    fields = ", ".join(f"{f} {t.compile(dialect=postgresql.dialect())}" for f, t in write.fields.items())
    rows = f"json_to_recordset(CAST(:{write.name} AS json)) AS v({fields})"
    if isinstance(write, Upsert):
        # WHERE: without it, ON CONFLICT would read as the join condition of the FROM.
        return (f"{write.name} AS (\n    INSERT INTO {write.table} ({', '.join(write.fields)})\n"
                f"    SELECT {', '.join(f'v.{f}' for f in write.fields)} FROM {rows}\n    WHERE true {guard}\n"
                f"    {write.conflict}\n    RETURNING 1\n)")
    # Stamped with the version the turfs' update returns, so a concurrent bump of the turf (a reshape, say) is
    # never lost: the turf row stays locked until commit.
    if write.stamp:
        rows += f" JOIN {TURFS.name} ON {TURFS.name}.id = v.{write.stamp}"
    returning = "t.id, t.version" if write is TURFS else "1"
    return (f"{write.name} AS (\n    UPDATE {write.table} AS t SET {write.sets.format(version=f'{TURFS.name}.version')}"
            f"\n    FROM {rows}\n    WHERE {write.where} {guard}\n    RETURNING {returning}\n)")


# The knocks of a batch as one JSON array of objects, in the order sent (so server sequence numbers follow it);
# what the batch shares goes once. JSON rather than one array a column: asyncpg encodes a parameter array
# element by element in Python-visible checks, which cost more than PostgreSQL's parsing of the same rows.
POSTGRES_INSERT = """
INSERT INTO door_knock (id, campaign_id, turf_id, household_id, precinct_id, person_id, user_id, device_id, batch_id,
                        script_version_id, result, contacted, answers, note, lon, lat, knocked_at, clock_offset_s,
                        corrected_at, clock_suspect, received_at, digest)
SELECT id, :campaign_id, turf_id, household_id, precinct_id, person_id, :user_id, :device_id, :batch_id,
       script_version_id, result, contacted, answers, note, lon, lat, knocked_at, :clock_offset_s, corrected_at,
       clock_suspect, :received_at, digest
FROM ROWS FROM (json_to_recordset(CAST(:knocks AS json)) AS (
         id uuid, turf_id integer, household_id integer, precinct_id integer, person_id integer,
         script_version_id integer, result varchar, contacted boolean, answers text, note text, lon float8,
         lat float8, knocked_at timestamptz, corrected_at timestamptz, clock_suspect boolean, digest varchar))
     WITH ORDINALITY AS k(id, turf_id, household_id, precinct_id, person_id, script_version_id, result, contacted,
                          answers, note, lon, lat, knocked_at, corrected_at, clock_suspect, digest, n)
ORDER BY n
ON CONFLICT (id) DO NOTHING
RETURNING id"""
# The counters alone, and the knocks with their counters in one round trip, the counters only if every knock
# was new (else nothing counts them, and the caller moves the counters on by the knocks stored).
POSTGRES_COUNT = "WITH " + ",\n".join(_cte(w, "") for w in WRITES) + "\nSELECT 1"
POSTGRES_STORE = (f"WITH knocks AS ({POSTGRES_INSERT}\n), all_new AS (SELECT count(*) = :expected AS yes FROM knocks"
                  "\n), " + ",\n".join(_cte(w, "AND (SELECT yes FROM all_new)") for w in WRITES)
                  + "\nSELECT id FROM knocks")
HISTORY_PG = """
SELECT turf_id, action, at FROM turf_history
WHERE campaign_id = :campaign AND user_id = :user AND turf_id = ANY(CAST(:turfs AS integer[]))
ORDER BY turf_id, at, id"""
DOORS_PG = """
SELECT h.id, h.precinct_id, h.knocks, h.first_knock_at, h.contacted_at, h.last_result_at, s.turf_id, s.removed,
       s.knocks, s.contacted
FROM household AS h LEFT JOIN walk_stop AS s ON s.household_id = h.id
WHERE h.campaign_id = :campaign AND h.id = ANY(CAST(:ids AS integer[]))"""


class PostgresStore(Store):
    async def lock(self, session: AsyncSession, campaign_id: int) -> None:
        # Knocks get server sequence numbers in commit order (a feed reading "after seq N" then misses nothing),
        # and counters are read and written under the lock.
        await pg_fetch(session, "SELECT pg_advisory_xact_lock(:lock, :campaign)",
                       {"lock": SYNC_LOCK, "campaign": campaign_id})

    async def _doors(self, session: AsyncSession, campaign_id: int, ids: list[int]) -> Any:
        return await pg_fetch(session, DOORS_PG, {"campaign": campaign_id, "ids": ids})

    async def _history(self, session: AsyncSession, campaign_id: int, user_id: UUID, turfs: list[int]) -> Any:
        return await pg_fetch(session, HISTORY_PG, {"campaign": campaign_id, "user": user_id, "turfs": turfs})

    async def store(self, session: AsyncSession, shared: dict[str, Any], rows: list[dict[str, Any]],
                    fresh: list[Item], state: State) -> set[UUID]:
        # One statement when every knock is new (the usual batch).
        if not fresh:
            return set()
        moved = counters.deltas(shared["campaign_id"], fresh, state, shared["user_id"], shared["received_at"])
        params = shared | {"knocks": _json(rows), "expected": len(fresh)} | {k: _json(v) for k, v in moved.items()}
        inserted = {row[0] for row in await pg_fetch(session, POSTGRES_STORE, params)}
        if len(inserted) < len(fresh):
            # Some were stored before (a resend): the statement left the counters alone; count the new ones only.
            accepted = [i for i in fresh if i.knock.id in inserted]
            if accepted:
                moved = counters.deltas(shared["campaign_id"], accepted, state, shared["user_id"],
                                        shared["received_at"])
                await pg_fetch(session, POSTGRES_COUNT, {k: _json(v) for k, v in moved.items()})
        return inserted


def _statement(write: Update | Upsert) -> TextClause:
    """One of counters.WRITES as a statement run once a row (an executemany), each `v.` field a parameter."""
    if isinstance(write, Upsert):
        sql = (f"INSERT INTO {write.table} ({', '.join(write.fields)}) "
               f"VALUES ({', '.join(f'v.{f}' for f in write.fields)}) {write.conflict}")
    else:
        # The turfs were updated first, in this transaction: the turf holds its new version.
        version = f"(SELECT version FROM {TURFS.table} WHERE id = v.{write.stamp})"
        sql = f"UPDATE {write.table} AS t SET {write.sets.format(version=version)} WHERE {write.where}"
    return text(re.sub(r"\bv\.(\w+)", r":\1", sql)).bindparams(
        *(bindparam(f, type_=t) for f, t in write.fields.items()))


_history, _door, _stop = TurfHistory.__table__.c, Household.__table__.c, WalkStop.__table__.c
# Built once (building statements per batch cost more than running them).
HISTORY = (select(_history.turf_id, _history.action, _history.at)
           .where(_history.campaign_id == bindparam("campaign"), _history.user_id == bindparam("user"),
                  _history.turf_id.in_(bindparam("turfs", expanding=True)))
           .order_by(_history.turf_id, _history.at, _history.id))
DOORS = (select(_door.id, _door.precinct_id, _door.knocks, _door.first_knock_at, _door.contacted_at,
                _door.last_result_at, _stop.turf_id, _stop.removed, _stop.knocks, _stop.contacted)
         .select_from(Household.__table__.outerjoin(WalkStop.__table__, _stop.household_id == _door.id))
         .where(_door.campaign_id == bindparam("campaign"), _door.id.in_(bindparam("ids", expanding=True))))
SQLITE_INSERT = (sqlite.insert(DoorKnock).on_conflict_do_nothing(index_elements=["id"])
                 .returning(DoorKnock.__table__.c.id))
SQLITE_WRITES = [(w.name, _statement(w)) for w in WRITES]


class SqliteStore(Store):
    """The writer's lock (app.db.begin_write) already serialises every write transaction: no lock of its own."""

    async def _doors(self, session: AsyncSession, campaign_id: int, ids: list[int]) -> Any:
        return (await session.execute(DOORS, {"campaign": campaign_id, "ids": ids})).all()

    async def _history(self, session: AsyncSession, campaign_id: int, user_id: UUID, turfs: list[int]) -> Any:
        return (await session.execute(HISTORY, {"campaign": campaign_id, "user": user_id, "turfs": turfs})).all()

    async def store(self, session: AsyncSession, shared: dict[str, Any], rows: list[dict[str, Any]],
                    fresh: list[Item], state: State) -> set[UUID]:
        if not fresh:
            return set()
        connection = await session.connection()
        inserted = set((await connection.execute(SQLITE_INSERT, [shared | row for row in rows])).scalars())
        accepted = [i for i in fresh if i.knock.id in inserted]
        if accepted:
            moved = counters.deltas(shared["campaign_id"], accepted, state, shared["user_id"], shared["received_at"])
            for name, statement in SQLITE_WRITES:
                await connection.execute(statement, moved[name])
        return inserted


STORES: dict[str, Store] = {"postgresql": PostgresStore(), "sqlite": SqliteStore()}


async def store_for(session: AsyncSession) -> Store:
    """The storage of the session's database."""
    return STORES[(await session.connection()).dialect.name]
