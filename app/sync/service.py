"""Sync: store door knocks from phones exactly once, whatever the network and the phone's clock did, and keep
the counters progress reads in the same transaction.

A batch is one transaction. Each knock is checked on its own (a bad one is rejected with a problem naming its
field, the others go in); its id is its identity, so a resent knock is a duplicate and changes nothing.
"""

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Boolean, String, bindparam, case, delete, func, insert, select, text, tuple_, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses.models import Household, Person
from app.auth.service import Access
from app.campaigns.models import Role
from app.campaigns.service import note_change
from app.db import UTCDateTime, begin_write, fetch_rows, pg_fetch, utcnow
from app.organizing.models import TurfHistory, TurfHolding
from app.precincts.models import Precinct
from app.scripts.models import ScriptVersion
from app.scripts.service import STANDARD_RESULTS
from app.sync.models import DoorKnock, ResultTally
from app.sync.schemas import KnockIn, SyncBatch
from app.turfs.models import Turf
from app.values import EARLIEST, LATEST, sane_time
from app.walklists.models import WalkStop
from app.webhooks import service as webhooks

# An offset this large is no clock drift but a wrong clock (a reset, a wrong date): stored, and flagged.
SUSPECT_OFFSET = timedelta(hours=24)
# Slack around a holding's start and end, for what clock correction can't know (the phone's drift offline).
HOLDING_GRACE = timedelta(minutes=15)
START_ACTIONS = frozenset({"assigned", "claimed", "checked_out"})
END_ACTIONS = frozenset({"unassigned", "released", "lapsed", "returned"})
# Ties a PostgreSQL advisory lock to syncing (the second key is the campaign).
SYNC_LOCK = 7001
STANDARD = {r["code"]: r["contacted"] for r in STANDARD_RESULTS}
_knock = TypeAdapter(KnockIn)


def _problem(status: int, title: str, slug: str, detail: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    if field is not None:
        body["errors"] = [{"field": field, "message": detail}]
    return body


def _invalid(index: int, field: str, detail: str) -> dict[str, Any]:
    return _problem(422, "Invalid knock", "invalid", detail, f"knocks[{index}].{field}")


def _validation(index: int, exc: ValidationError) -> dict[str, Any]:
    errors = [{"field": f"knocks[{index}]" + "".join(f".{p}" for p in e["loc"]), "message": e["msg"]}
              for e in exc.errors(include_input=False)]
    return {**_problem(422, "Invalid knock", "validation", "; ".join(f"{e['field']}: {e['message']}"
                                                                       for e in errors)), "errors": errors}


def _times(knocked_at: datetime, offset: timedelta, received_at: datetime,
           suspect: bool) -> tuple[datetime, datetime, bool]:
    """A knock's corrected time, its phone time to store, and whether its clock is suspect.

    A knock is never lost to its phone's clock: a time outside the sane range (a reset clock, year 1 or 9999) is
    stored as sent and flagged. Its corrected time is at most when the server received it (a knock can't come
    from the future); one the offset can't bring into the sane range (or past arithmetic: 9999 plus an offset)
    is that too, the best the server knows.
    """
    try:
        corrected = knocked_at + offset
    except OverflowError:
        corrected = received_at
    corrected = min(corrected, received_at) if sane_time(corrected) else received_at
    try:
        stored = knocked_at.astimezone(UTC)
    except OverflowError:
        # Year 1 east of Greenwich, or 9999 west of it: no UTC time to keep, so the nearest sane one.
        stored = EARLIEST if knocked_at < EARLIEST else LATEST - timedelta(microseconds=1)
    return corrected, stored, suspect or not sane_time(knocked_at)


def digest(knock: KnockIn) -> str:
    """What identifies a knock's content: the same id sent with another digest is a conflict."""
    return hashlib.sha256(orjson.dumps(knock.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class _Item:
    index: int
    knock: KnockIn
    digest: str
    corrected_at: datetime
    knocked_at: datetime  # the phone's time in UTC, as sent (the nearest sane one when UTC has none)
    suspect: bool  # the phone's clock was wrong when it made this knock (or sent the batch)
    precinct_id: int = 0
    script_version_id: int | None = None
    contacted: bool = False


@dataclass
class _Stop:
    removed: bool
    knocks: int
    contacted: bool


class _Door(NamedTuple):
    precinct_id: int
    knocks: int
    first_knock_at: datetime | None
    contacted_at: datetime | None
    last_result_at: datetime | None


@dataclass
class _State:
    """What the checks and the counters need, read once under the sync lock."""

    households: dict[int, _Door]
    stops: dict[tuple[int, int], _Stop]  # (turf, household)
    people: dict[int, int]  # person -> household
    versions: dict[tuple[int, int | None], Any]  # (script, version) -> row
    turfs: set[int]
    holdings: dict[int, list[tuple[datetime, datetime | None]]]


def _held(intervals: list[tuple[datetime, datetime | None]], at: datetime) -> bool:
    return any(start <= at and (end is None or at <= end) for start, end in intervals)


# The two reads every canvasser's batch makes, built once: Core on SQLite, and on PostgreSQL the same SQL
# straight through asyncpg with one array parameter (SQLAlchemy's work per statement, an expanding IN rendered
# anew for each batch size, cost more than the queries).
_history, _door, _stop = TurfHistory.__table__.c, Household.__table__.c, WalkStop.__table__.c
HOLDINGS = (select(_history.turf_id, _history.action, _history.at)
            .where(_history.campaign_id == bindparam("campaign"), _history.user_id == bindparam("user"),
                   _history.turf_id.in_(bindparam("turfs", expanding=True)))
            .order_by(_history.turf_id, _history.at, _history.id))
HOLDINGS_PG = """
SELECT turf_id, action, at FROM turf_history
WHERE campaign_id = :campaign AND user_id = :user AND turf_id = ANY(CAST(:turfs AS integer[]))
ORDER BY turf_id, at, id"""
# Each door with every stop it has (columns in _Door's order, then the stop's).
DOORS = (select(_door.id, _door.precinct_id, _door.knocks, _door.first_knock_at, _door.contacted_at,
                _door.last_result_at, _stop.turf_id, _stop.removed, _stop.knocks, _stop.contacted)
         .select_from(Household.__table__.outerjoin(WalkStop.__table__, _stop.household_id == _door.id))
         .where(_door.campaign_id == bindparam("campaign"), _door.id.in_(bindparam("ids", expanding=True))))
DOORS_PG = """
SELECT h.id, h.precinct_id, h.knocks, h.first_knock_at, h.contacted_at, h.last_result_at, s.turf_id, s.removed,
       s.knocks, s.contacted
FROM household AS h LEFT JOIN walk_stop AS s ON s.household_id = h.id
WHERE h.campaign_id = :campaign AND h.id = ANY(CAST(:ids AS integer[]))"""


async def _holdings(session: AsyncSession, campaign_id: int, user_id: UUID,
                    turf_ids: set[int]) -> dict[int, list[tuple[datetime, datetime | None]]]:
    """When the user held each of these turfs, from the append-only history: (start, end or None) intervals,
    each widened by HOLDING_GRACE."""
    rows = await fetch_rows(session, HOLDINGS, HOLDINGS_PG, {"campaign": campaign_id, "user": user_id,
                                                          "turfs": list(turf_ids)})
    intervals: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    open_since: dict[int, datetime] = {}
    for turf_id, action, at in rows:
        if action in START_ACTIONS:
            open_since.setdefault(turf_id, at)
        elif action in END_ACTIONS and turf_id in open_since:
            intervals[turf_id].append((open_since.pop(turf_id) - HOLDING_GRACE, at + HOLDING_GRACE))
    for turf_id, start in open_since.items():
        intervals[turf_id].append((start - HOLDING_GRACE, None))
    return intervals


def _check_answers(item: _Item, questions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A problem for answers that don't fit the script version's questions, else None."""
    kinds = {q["id"]: q for q in questions}
    for qid, answer in item.knock.answers.items():
        field = f"answers.{qid}"
        question = kinds.get(qid)
        if question is None:
            return _invalid(item.index, field, f"the script has no question {qid!r}")
        choices = {c["id"] for c in question["choices"]}
        if question["kind"] == "text" and not isinstance(answer, str):
            return _invalid(item.index, field, "this question takes text")
        if question["kind"] == "single" and (not isinstance(answer, str) or answer not in choices):
            return _invalid(item.index, field, f"not one of the choices {sorted(choices)}")
        if question["kind"] == "multiple" and (not isinstance(answer, list) or not set(answer) <= choices
                                               or len(set(answer)) != len(answer)):
            return _invalid(item.index, field, f"a list of distinct choices from {sorted(choices)}")
    return None


def _outcome(knock_id: str, status: str, problem: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": knock_id, "status": status, "problem": problem}


async def sync_batch(session: AsyncSession, access: Access, batch: SyncBatch) -> dict[str, Any]:
    """Store a batch of knocks in one transaction; the outcome of each, in the order sent (a SyncResult).

    Built for throughput (phones sync all evening): six round trips a batch, whatever its size.
    """
    await begin_write(session)
    campaign_id = access.campaign_id
    connection = await session.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        # One sync at a time per campaign: knocks get server sequence numbers in commit order (a feed reading
        # "after seq N" then misses nothing), and counters are read and written under the lock.
        # The same round trip tells whether any webhook listens (most campaigns: none, and no more is read).
        hooked = (await pg_fetch(session, "SELECT pg_advisory_xact_lock(:lock, :campaign), (SELECT count(*) "
                                          "FROM webhook WHERE campaign_id = :campaign)",
                                 {"lock": SYNC_LOCK, "campaign": campaign_id}))[0][1] > 0
    else:
        hooked = True
    received_at = utcnow()
    # Aware times subtract without converting to UTC, so even year 1 or 9999 makes an offset, not an overflow.
    offset = received_at - batch.sent_at
    suspect = abs(offset) >= SUSPECT_OFFSET or not sane_time(batch.sent_at)
    user_id = access.caller.user_id
    assert user_id is not None
    staff = access.role in (Role.admin, Role.organizer)

    outcomes: list[dict[str, Any]] = []
    items: list[_Item] = []
    seen: dict[UUID, str] = {}
    for index, raw in enumerate(batch.knocks):
        try:
            # Anything may stand in the list (a number, null, a list): each is checked here, alone.
            knock = _knock.validate_python(raw)
        except ValidationError as exc:
            shown = raw.get("id") if isinstance(raw, dict) else None
            outcomes.append(_outcome(str(shown) if shown is not None else "", "rejected", _validation(index, exc)))
            continue
        item = _Item(index, knock, digest(knock), *_times(knock.knocked_at, offset, received_at, suspect))
        if knock.id in seen:
            # The same knock twice in one batch: the first stands.
            outcomes.append(_repeat(item, seen[knock.id]))
            continue
        outcomes.append(_outcome(str(knock.id), "accepted"))
        seen[knock.id] = item.digest
        items.append(item)

    state = await _load(session, campaign_id, user_id, staff, items)
    fresh: list[_Item] = []
    for item in items:
        problem = _check(item, state, staff)
        if problem is not None:
            outcomes[item.index] = _outcome(str(item.knock.id), "rejected", problem)
        else:
            fresh.append(item)
    shared, rows = _rows(access, batch, fresh, received_at, offset, suspect)
    store = _store_postgres if postgres else _store_sqlite
    inserted = await store(session, campaign_id, shared, rows, fresh, state)
    # Ids stored before (a resend), or by another sync meanwhile: identical is a duplicate, else a conflict.
    stored = await _stored_digests(session, [i.knock.id for i in fresh if i.knock.id not in inserted])
    for item in fresh:
        if item.knock.id in stored:
            outcomes[item.index] = _repeat(item, stored[item.knock.id])
    accepted = [i for i in fresh if i.knock.id in inserted]
    if hooked and accepted:
        await _webhook_events(session, access, accepted, state)
    await session.commit()
    counts = {s: sum(1 for o in outcomes if o["status"] == s) for s in ("accepted", "duplicate", "rejected")}
    return {"batch_id": batch.batch_id, "received_at": received_at, "clock_offset_s": offset.total_seconds(),
            "clock_suspect": suspect, **counts, "knocks": outcomes}


async def _webhook_events(session: AsyncSession, access: Access, accepted: list[_Item], state: _State) -> None:
    """Write the batch's webhook deliveries into the outbox, in its transaction: one `knock.accepted` with its
    knocks (no names), and a `turf.completed` for each turf whose last unknocked door this batch reached."""
    hooks = await webhooks.subscribed(session, access.campaign_id)
    if hooks.get("knock.accepted"):
        knocks = [{"id": str(i.knock.id), "turf_id": i.knock.turf_id, "household_id": i.knock.household_id,
                   "person_id": i.knock.person_id, "result": i.knock.result, "contacted": i.contacted,
                   "answers": i.knock.answers, "knocked_at": i.knocked_at, "corrected_at": i.corrected_at}
                  for i in accepted]
        await webhooks.enqueue(session, hooks["knock.accepted"], "knock.accepted",
                               [{"campaign": access.campaign.slug, "knocks": knocks}])
    if hooks.get("turf.completed"):
        # Doors of each turf knocked for the first time in this batch: the turf was complete before if its
        # count of attempted doors, less these, already reached its doors.
        first: dict[int, set[int]] = defaultdict(set)
        for i in accepted:
            if state.stops[(i.knock.turf_id, i.knock.household_id)].knocks == 0:
                first[i.knock.turf_id].add(i.knock.household_id)
        done = [t for t in (await session.execute(
            select(Turf.id, Turf.name, Turf.doors, Turf.doors_attempted).where(Turf.id.in_(list(first))))).all()
            if t.doors and t.doors_attempted >= t.doors > t.doors_attempted - len(first[t.id])]
        await webhooks.enqueue(session, hooks["turf.completed"], "turf.completed", [
            {"campaign": access.campaign.slug, "turf": {"id": t.id, "name": t.name, "doors": t.doors}}
            for t in done])


def _repeat(item: _Item, stored_digest: str) -> dict[str, Any]:
    if stored_digest == item.digest:
        return _outcome(str(item.knock.id), "duplicate")
    return _outcome(str(item.knock.id), "rejected", _problem(
        409, "Conflict", "conflict", f"knock {item.knock.id} was stored before with other content; the stored "
                                     "knock stands", f"knocks[{item.index}].id"))


async def _stored_digests(session: AsyncSession, ids: Sequence[UUID]) -> dict[UUID, str]:
    if not ids:
        return {}
    return dict((await session.execute(select(DoorKnock.id, DoorKnock.digest)
                                       .where(DoorKnock.id.in_(list(ids))))).all())


async def _load(session: AsyncSession, campaign_id: int, user_id: UUID, staff: bool, items: list[_Item]) -> _State:
    """Read what the batch's knocks touch, in as few statements as the batch allows (two, for a canvasser's
    batch of plain results: the doors with their stops, and the holdings)."""
    if not items:
        return _State({}, {}, {}, {}, set(), {})
    # Each door with every stop it has: on the knock's turf (was the door ever there?) and on the turf holding
    # it now. A stop's turf is the door's campaign's, so the stops also tell which turfs exist.
    rows = await fetch_rows(session, DOORS, DOORS_PG, {"campaign": campaign_id,
                                                   "ids": list({i.knock.household_id for i in items})})
    households = {r[0]: _Door(r[1], r[2], r[3], r[4], r[5]) for r in rows}
    stops = {(r[6], r[0]): _Stop(r[7], r[8], r[9]) for r in rows if r[6] is not None}
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
    versions = {(v.script_id, v.version): v for v in (await session.execute(
        select(ScriptVersion.id, ScriptVersion.script_id, ScriptVersion.version, ScriptVersion.questions,
               ScriptVersion.result_codes).where(ScriptVersion.campaign_id == campaign_id,
                                                 tuple_(ScriptVersion.script_id, ScriptVersion.version)
                                                 .in_(list(wanted))))).all()} if wanted else {}
    parsed = {key: ({c["code"]: c["contacted"] for c in orjson.loads(v.result_codes)}, orjson.loads(v.questions),
                    v.id) for key, v in versions.items()}
    holdings = {} if staff else await _holdings(session, campaign_id, user_id, {i.knock.turf_id for i in items})
    return _State(households, stops, people, parsed, turfs, holdings)


def _check(item: _Item, state: _State, staff: bool) -> dict[str, Any] | None:
    """The problem that stops this knock being stored, or None; fills in its precinct, script and contact."""
    k, i = item.knock, item.index
    if k.household_id not in state.households:
        return _invalid(i, "household_id", f"no household {k.household_id} in this campaign")
    if k.turf_id not in state.turfs:
        return _invalid(i, "turf_id", f"no turf {k.turf_id} in this campaign")
    # A door was on a turf if the turf's walk list ever held it (removed doors stay as removed stops).
    if (k.turf_id, k.household_id) not in state.stops:
        return _invalid(i, "household_id", f"household {k.household_id} was never on turf {k.turf_id}")
    if k.person_id is not None and state.people.get(k.person_id) != k.household_id:
        return _invalid(i, "person_id", f"person {k.person_id} doesn't live in household {k.household_id}")
    if k.script_id is not None and (k.script_id, k.script_version) not in state.versions:
        return _invalid(i, "script_version", f"script {k.script_id} has no version {k.script_version}")
    if k.script_id is None and k.answers:
        return _invalid(i, "answers", "answers need the script_id and script_version they answer")
    results, questions, version_id = state.versions.get((k.script_id, k.script_version), (STANDARD, [], None))
    if k.result not in results:
        return _invalid(i, "result", f"{k.result!r} is not a result code of this script version")
    if (bad := _check_answers(item, questions)) is not None:
        return bad
    if not staff and not _held(state.holdings.get(k.turf_id, []), item.corrected_at):
        return _problem(403, "Forbidden", "forbidden", f"you didn't hold turf {k.turf_id} at "
                        f"{item.corrected_at.isoformat(timespec='seconds')} (the knock's time by the server's clock)",
                        f"knocks[{i}].turf_id")
    item.precinct_id = state.households[k.household_id].precinct_id
    item.contacted = results[k.result]
    item.script_version_id = version_id
    return None


def _rows(access: Access, batch: SyncBatch, fresh: list[_Item], received_at: datetime, offset: timedelta,
          suspect: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The door_knock rows of the checked knocks: what the batch shares, and what each knock has."""
    rows = [{"id": i.knock.id, "turf_id": i.knock.turf_id, "household_id": i.knock.household_id,
             "precinct_id": i.precinct_id, "person_id": i.knock.person_id, "script_version_id": i.script_version_id,
             "result": i.knock.result, "contacted": i.contacted, "answers": orjson.dumps(i.knock.answers).decode(),
             "note": i.knock.note, "lon": i.knock.lon, "lat": i.knock.lat, "knocked_at": i.knocked_at,
             "corrected_at": i.corrected_at, "clock_suspect": i.suspect, "digest": i.digest} for i in fresh]
    return {"campaign_id": access.campaign_id, "user_id": access.caller.user_id, "device_id": batch.device_id,
            "batch_id": batch.batch_id, "clock_offset_s": offset.total_seconds(),
            "received_at": received_at}, rows


async def _store_postgres(session: AsyncSession, campaign_id: int, shared: dict[str, Any],
                          rows: list[dict[str, Any]], fresh: list[_Item], state: _State) -> set[UUID]:
    """Insert the knocks and move the counters on, in one statement when every knock is new (the usual
    batch); the ids stored."""
    if not fresh:
        return set()
    counters = _counters(campaign_id, fresh, state)
    params = (shared | {"knocks": _json(rows)} | _counter_params(counters, shared["user_id"], shared["received_at"])
              | {"expected": len(fresh)})
    inserted = {row[0] for row in await pg_fetch(session, POSTGRES_STORE, params)}
    if len(inserted) < len(fresh):
        # Some were stored before (a resend): the statement left the counters alone; count the new ones only.
        accepted = [i for i in fresh if i.knock.id in inserted]
        if accepted:
            await pg_fetch(session, POSTGRES_DERIVE, _counter_params(
                _counters(campaign_id, accepted, state), shared["user_id"], shared["received_at"]))
    return inserted


async def _store_sqlite(session: AsyncSession, campaign_id: int, shared: dict[str, Any],
                        rows: list[dict[str, Any]], fresh: list[_Item], state: _State) -> set[UUID]:
    """Insert the knocks, then move the counters on by those stored; the ids stored."""
    if not fresh:
        return set()
    connection = await session.connection()
    inserted = set((await connection.execute(SQLITE_INSERT, [shared | row for row in rows])).scalars())
    accepted = [i for i in fresh if i.knock.id in inserted]
    if accepted:
        await _write_sqlite(session, _counters(campaign_id, accepted, state), shared["user_id"],
                            shared["received_at"])
    return inserted


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


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b < a) else a


def _counters(campaign_id: int, knocks: list[_Item], state: _State) -> dict[str, list[Any]]:
    """How newly stored knocks move the counters on, as rows a table: doors, stops, turfs, precincts, result
    tallies, each door's latest result (by corrected time; walk lists holding a changed door move on), and
    the turfs whose holdings saw activity ("held")."""
    by_door: dict[int, list[_Item]] = defaultdict(list)
    by_stop: dict[tuple[int, int], list[_Item]] = defaultdict(list)
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

    tables: dict[str, list[Any]] = {
        "turfs": [{"i": key, "n": d[0], "a": d[1], "c": d[2], "last": d[3], "v": d[4]}
                  for key, d in turf_delta.items()],
        "doors": door_updates, "stops": stop_updates,
        "precincts": [{"i": key, "n": d[0], "a": d[1], "c": d[2], "last": d[3]} for key, d in precinct_delta.items()],
        "tallies": [{"turf_id": t, "precinct_id": p, "result": r, "campaign_id": campaign_id, "knocks": n}
                    for (t, p, r), n in tally.items()]}
    return {**tables, "held": sorted({turf_id for turf_id, _ in by_stop})}


def _json(rows: list[dict[str, Any]]) -> str:
    """Rows as the JSON text json_to_recordset takes back apart (datetimes as RFC 3339, UUIDs as text)."""
    return orjson.dumps(rows).decode()


# PostgreSQL moves a batch's counters on in one statement of data-modifying CTEs, each table's rows as one JSON
# parameter (json_to_recordset takes them apart): one round trip whatever the batch. The stops are stamped with
# the version the turf update returns, so a concurrent bump of the turf (a reshape, say) is never lost: the turf
# row stays locked until commit. {guard} is where the combined statement below makes the counters wait on the insert.
_COUNTER_CTES = """
turfs AS (
    UPDATE turf AS t SET knocks = t.knocks + v.n, doors_attempted = t.doors_attempted + v.a,
        doors_contacted = t.doors_contacted + v.c, last_knock_at = GREATEST(t.last_knock_at, v.last),
        version = t.version + v.v
    FROM json_to_recordset(CAST(:turfs AS json)) AS v(i integer, n integer, a integer, c integer, last timestamptz,
                                                       v integer)
    WHERE t.id = v.i {guard}
    RETURNING t.id, t.version
), doors AS (
    UPDATE household AS h SET knocks = v.n, first_knock_at = v.first, contacted_at = v.contacted_at,
        last_result = CASE WHEN v.keep THEN h.last_result ELSE v.result END,
        last_result_at = CASE WHEN v.keep THEN h.last_result_at ELSE v.at END
    FROM json_to_recordset(CAST(:doors AS json)) AS v(h integer, n integer, first timestamptz,
                                                       contacted_at timestamptz, keep boolean, result varchar,
                                                       at timestamptz)
    WHERE h.id = v.h {guard}
    RETURNING 1
), stops AS (
    UPDATE walk_stop AS s SET knocks = v.n, contacted = v.c,
        changed = CASE WHEN v.s THEN turfs.version ELSE s.changed END
    FROM json_to_recordset(CAST(:stops AS json)) AS v(t integer, h integer, n integer, c boolean, s boolean)
         JOIN turfs ON turfs.id = v.t
    WHERE s.turf_id = v.t AND s.household_id = v.h {guard}
    RETURNING 1
), precincts AS (
    UPDATE precinct AS p SET knocks = p.knocks + v.n, doors_attempted = p.doors_attempted + v.a,
        doors_contacted = p.doors_contacted + v.c, last_knock_at = GREATEST(p.last_knock_at, v.last)
    FROM json_to_recordset(CAST(:precincts AS json)) AS v(i integer, n integer, a integer, c integer,
                                                           last timestamptz)
    WHERE p.id = v.i {guard}
    RETURNING 1
), tallies AS (
    INSERT INTO result_tally (turf_id, precinct_id, result, campaign_id, knocks)
    SELECT v.turf_id, v.precinct_id, v.result, v.campaign_id, v.knocks
    FROM json_to_recordset(CAST(:tallies AS json)) AS v(turf_id integer, precinct_id integer, result varchar,
                                                         campaign_id integer, knocks integer)
    WHERE true {guard}
    ON CONFLICT (turf_id, precinct_id, result) DO UPDATE SET knocks = result_tally.knocks + excluded.knocks
    RETURNING 1
), changes AS (
    UPDATE campaign SET changes = changes + 1 WHERE id = :campaign {guard}
    RETURNING 1
), holdings AS (
    UPDATE turf_holding SET last_activity_at = :received_at
    WHERE user_id = :user_id AND turf_id = ANY(CAST(:held AS integer[])) {guard}
    RETURNING 1
)"""
# The counter moved (a `changes` row): every server process hears of it at commit (app.progress.live).
_NOTIFY = "(SELECT pg_notify('doorstep_progress', CAST(:campaign AS text)) FROM changes)"
POSTGRES_DERIVE = "WITH " + _COUNTER_CTES.format(guard="") + f"\nSELECT {_NOTIFY}"
# The knocks and their counters at once, the counters only if every knock was new (else nothing counts them
# and the caller moves the counters on by the knocks stored).
POSTGRES_STORE = f"""
WITH knocks AS ({POSTGRES_INSERT}
), all_new AS (SELECT count(*) = :expected AS yes FROM knocks
), {_COUNTER_CTES.format(guard="AND (SELECT yes FROM all_new)")}
SELECT id, {_NOTIFY} FROM knocks"""


def _counter_params(counters: dict[str, list[Any]], user_id: UUID, received_at: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {"user_id": user_id, "held": counters["held"], "received_at": received_at,
                              "campaign": counters["tallies"][0]["campaign_id"]}
    for name, rows in counters.items():  # never empty: every knock has a door, stop, turf and precinct
        if name != "held":
            params[name] = _json(rows)
    return params


def _counter_update(model: Any) -> Any:
    """A turf's or precinct's counters moved on by one row of deltas (`i`, `n`, `a`, `c`, `last`; a turf's `v`)."""
    table = model.__table__
    last = bindparam("last", type_=UTCDateTime())
    values: dict[str, Any] = {
        "knocks": table.c.knocks + bindparam("n"), "doors_attempted": table.c.doors_attempted + bindparam("a"),
        "doors_contacted": table.c.doors_contacted + bindparam("c"),
        "last_knock_at": case((table.c.last_knock_at.is_(None) | (table.c.last_knock_at < last), last),
                              else_=table.c.last_knock_at)}
    if model is Turf:
        values["version"] = table.c.version + bindparam("v")
    return update(table).where(table.c.id == bindparam("i")).values(**values)


# SQLite's writes of a batch's counters, built once (building them per batch cost more than running them): an
# executemany each, on rows _counters makes.
_keep = bindparam("keep", type_=Boolean())
_walk_stop = WalkStop.__table__.c
_tally_upsert = sqlite.insert(ResultTally)
SQLITE_WRITES = {
    "turfs": _counter_update(Turf),
    "precincts": _counter_update(Precinct),
    "doors": update(Household.__table__).where(_door.id == bindparam("h")).values(
        knocks=bindparam("n"), first_knock_at=bindparam("first"), contacted_at=bindparam("contacted_at"),
        last_result=case((_keep, _door.last_result), else_=bindparam("result", type_=String())),
        last_result_at=case((_keep, _door.last_result_at), else_=bindparam("at", type_=UTCDateTime()))),
    # Stamped after the turfs' bump, with the version the turf now has (the writer's lock keeps it).
    "stops": update(WalkStop.__table__).where(
        _walk_stop.turf_id == bindparam("t"), _walk_stop.household_id == bindparam("h")).values(
        knocks=bindparam("n"), contacted=bindparam("c"),
        changed=case((bindparam("s", type_=Boolean()), select(Turf.version).where(Turf.id == _walk_stop.turf_id)
                      .scalar_subquery()), else_=_walk_stop.changed)),
    "tallies": _tally_upsert.on_conflict_do_update(
        index_elements=["turf_id", "precinct_id", "result"],
        set_={"knocks": ResultTally.__table__.c.knocks + _tally_upsert.excluded.knocks}),
}
SQLITE_HOLDINGS = (update(TurfHolding.__table__)
                   .where(TurfHolding.__table__.c.user_id == bindparam("user"),
                          TurfHolding.__table__.c.turf_id.in_(bindparam("held", expanding=True)))
                   .values(last_activity_at=bindparam("at", type_=UTCDateTime())))
SQLITE_INSERT = (sqlite.insert(DoorKnock).on_conflict_do_nothing(index_elements=["id"])
                 .returning(DoorKnock.__table__.c.id))


async def _write_sqlite(session: AsyncSession, tables: dict[str, list[Any]], user_id: UUID,
                        received_at: datetime) -> None:
    connection = await session.connection()
    for name in ("turfs", "precincts", "doors", "stops", "tallies"):
        await connection.execute(SQLITE_WRITES[name], tables[name])
    await note_change(session, tables["tallies"][0]["campaign_id"])
    await connection.execute(SQLITE_HOLDINGS, {"user": user_id, "held": tables["held"], "at": received_at})


async def rebuild_progress(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Recompute every counter of the campaign from its knocks, in one transaction; what it counted."""
    await begin_write(session)
    if (await session.connection()).dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:lock, :campaign)"),
                              {"lock": SYNC_LOCK, "campaign": campaign_id})
    knock = DoorKnock.__table__.c
    door, stop = Household.__table__.c, WalkStop.__table__.c
    mine = DoorKnock.campaign_id == campaign_id

    def of_door(*where: Any) -> Any:
        return select(func.count()).where(knock.household_id == door.id, *where).scalar_subquery()

    # The latest result: by corrected time, the first stored winning a tie (as sync keeps it).
    latest = (select(knock.result, knock.corrected_at).where(knock.household_id == door.id)
              .order_by(knock.corrected_at.desc(), knock.seq).limit(1))
    await session.execute(update(Household).where(Household.campaign_id == campaign_id).values(
        knocks=of_door(),
        first_knock_at=select(func.min(knock.corrected_at)).where(knock.household_id == door.id).scalar_subquery(),
        contacted_at=select(func.min(knock.corrected_at)).where(knock.household_id == door.id, knock.contacted)
        .scalar_subquery(),
        last_result=latest.with_only_columns(knock.result).scalar_subquery(),
        last_result_at=latest.with_only_columns(knock.corrected_at).scalar_subquery()))
    turfs = select(Turf.id).where(Turf.campaign_id == campaign_id)
    at_stop = (knock.turf_id == stop.turf_id, knock.household_id == stop.household_id)
    await session.execute(update(WalkStop).where(WalkStop.turf_id.in_(turfs)).values(
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
    await note_change(session, campaign_id)
    knocks = await session.scalar(select(func.count()).select_from(DoorKnock).where(mine)) or 0
    doors = await session.scalar(select(func.count()).select_from(Household).where(
        Household.campaign_id == campaign_id, Household.knocks > 0)) or 0
    await session.commit()
    return {"knocks": knocks, "doors_attempted": doors}
