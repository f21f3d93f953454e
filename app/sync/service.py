"""Sync: store door knocks from phones exactly once, whatever the network and the phone's clock did, and keep
the counters progress reads in the same transaction.

A batch is one transaction. Each knock is checked on its own (a bad one is rejected with a problem naming its
field, the others go in); its id is its identity, so a resent knock is a duplicate and changes nothing.
"""

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Boolean, Integer, String, bindparam, case, delete, func, insert, select, text, tuple_, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses.models import Household, Person
from app.auth.service import Access
from app.campaigns.models import Role
from app.db import UTCDateTime, begin_write, utcnow
from app.organizing.models import TurfHistory, TurfHolding
from app.precincts.models import Precinct
from app.scripts.models import ScriptVersion
from app.scripts.service import STANDARD_RESULTS
from app.sync.models import DoorKnock, ResultTally
from app.sync.schemas import KnockIn, SyncBatch
from app.turfs.models import Turf
from app.walklists.models import WalkStop

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
    errors = [{"field": f"knocks[{index}]." + ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
              for e in exc.errors(include_input=False)]
    return {**_problem(422, "Invalid knock", "validation", "; ".join(f"{e['field']}: {e['message']}"
                                                                       for e in errors)), "errors": errors}


def digest(knock: KnockIn) -> str:
    """What identifies a knock's content: the same id sent with another digest is a conflict."""
    return hashlib.sha256(orjson.dumps(knock.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class _Item:
    index: int
    knock: KnockIn
    digest: str
    corrected_at: datetime
    precinct_id: int = 0
    script_version_id: int | None = None
    contacted: bool = False


@dataclass
class _State:
    """What the checks and the counters need, read once under the sync lock."""

    households: dict[int, Any]  # id -> (precinct_id, knocks, first_knock_at, contacted_at, last_result_at)
    stops: dict[tuple[int, int], Any]  # (turf, household) -> (removed, knocks, contacted)
    people: dict[int, int]  # person -> household
    versions: dict[tuple[int, int | None], Any]  # (script, version) -> row
    turfs: set[int]
    holdings: dict[int, list[tuple[datetime, datetime | None]]]


def _held(intervals: list[tuple[datetime, datetime | None]], at: datetime) -> bool:
    return any(start - HOLDING_GRACE <= at and (end is None or at <= end + HOLDING_GRACE) for start, end in intervals)


async def _holdings(session: AsyncSession, campaign_id: int, user_id: UUID,
                    turf_ids: set[int]) -> dict[int, list[tuple[datetime, datetime | None]]]:
    """When the user held each of these turfs, from the append-only history: (start, end or None) intervals."""
    rows = (await session.execute(select(TurfHistory.turf_id, TurfHistory.action, TurfHistory.at).where(
        TurfHistory.campaign_id == campaign_id, TurfHistory.user_id == user_id,
        TurfHistory.turf_id.in_(list(turf_ids))).order_by(TurfHistory.turf_id, TurfHistory.at,
                                                          TurfHistory.id))).all()
    intervals: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    open_since: dict[int, datetime] = {}
    for turf_id, action, at in rows:
        if action in START_ACTIONS:
            open_since.setdefault(turf_id, at)
        elif action in END_ACTIONS and turf_id in open_since:
            intervals[turf_id].append((open_since.pop(turf_id), at))
    for turf_id, start in open_since.items():
        intervals[turf_id].append((start, None))
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

    Built for throughput (phones sync all evening): a dozen set-based statements a batch, whatever its size.
    """
    await begin_write(session)
    campaign_id = access.campaign_id
    connection = await session.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        # One sync at a time per campaign: knocks get server sequence numbers in commit order (a feed reading
        # "after seq N" then misses nothing), and counters are read and written under the lock.
        await session.execute(text("SELECT pg_advisory_xact_lock(:lock, :campaign)"),
                              {"lock": SYNC_LOCK, "campaign": campaign_id})
    received_at = utcnow()
    offset = received_at - batch.sent_at
    suspect = abs(offset) >= SUSPECT_OFFSET
    user_id = access.caller.user_id
    assert user_id is not None
    staff = access.role in (Role.admin, Role.organizer)

    outcomes: list[dict[str, Any]] = []
    items: list[_Item] = []
    seen: dict[UUID, str] = {}
    for index, raw in enumerate(batch.knocks):
        try:
            knock = _knock.validate_python(raw)
        except ValidationError as exc:
            shown = raw.get("id") if isinstance(raw, dict) else None
            outcomes.append(_outcome(str(shown) if shown is not None else "", "rejected", _validation(index, exc)))
            continue
        item = _Item(index, knock, digest(knock), min(knock.knocked_at + offset, received_at))
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
    inserted = await _insert(session, access, batch, fresh, received_at, offset, suspect, postgres)
    # Ids stored before (a resend), or by another sync meanwhile: identical is a duplicate, else a conflict.
    stored = await _stored_digests(session, [i.knock.id for i in fresh if i.knock.id not in inserted])
    for item in fresh:
        if item.knock.id in stored:
            outcomes[item.index] = _repeat(item, stored[item.knock.id])
    accepted = [i for i in fresh if i.knock.id in inserted]
    await _derive(session, campaign_id, accepted, state, postgres)
    if accepted:
        await session.execute(update(TurfHolding).where(
            TurfHolding.user_id == user_id, TurfHolding.turf_id.in_({i.knock.turf_id for i in accepted}))
            .values(last_activity_at=received_at))
    await session.commit()
    counts = {s: sum(1 for o in outcomes if o["status"] == s) for s in ("accepted", "duplicate", "rejected")}
    return {"batch_id": batch.batch_id, "received_at": received_at, "clock_offset_s": offset.total_seconds(),
            "clock_suspect": suspect, **counts, "knocks": outcomes}


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
    """Read what the batch's knocks touch, in as few statements as the batch allows."""
    if not items:
        return _State({}, {}, {}, {}, set(), {})
    household_ids = {i.knock.household_id for i in items}
    households = {h.id: h for h in (await session.execute(
        select(Household.id, Household.precinct_id, Household.knocks, Household.first_knock_at,
               Household.contacted_at, Household.last_result_at)
        .where(Household.campaign_id == campaign_id, Household.id.in_(household_ids)))).all()}
    # Every stop of these doors: on the knock's turf (was the door ever there?) and on the turf holding it now.
    stops = {(s.turf_id, s.household_id): s for s in (await session.execute(
        select(WalkStop.turf_id, WalkStop.household_id, WalkStop.removed, WalkStop.knocks, WalkStop.contacted)
        .where(WalkStop.household_id.in_(list(households))))).all()} if households else {}
    turf_ids = {i.knock.turf_id for i in items}
    turfs = set((await session.execute(select(Turf.id).where(Turf.campaign_id == campaign_id,
                                                             Turf.id.in_(turf_ids)))).scalars())
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
    holdings = {} if staff else await _holdings(session, campaign_id, user_id, turf_ids)
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


async def _insert(session: AsyncSession, access: Access, batch: SyncBatch, fresh: list[_Item],
                  received_at: datetime, offset: timedelta, suspect: bool, postgres: bool) -> set[UUID]:
    """Insert the knocks in one statement; the ids stored (one stored already is skipped, not an error)."""
    if not fresh:
        return set()
    rows = [{"id": i.knock.id, "campaign_id": access.campaign_id, "turf_id": i.knock.turf_id,
             "household_id": i.knock.household_id, "precinct_id": i.precinct_id, "person_id": i.knock.person_id,
             "user_id": access.caller.user_id, "device_id": batch.device_id, "batch_id": batch.batch_id,
             "script_version_id": i.script_version_id, "result": i.knock.result, "contacted": i.contacted,
             "answers": orjson.dumps(i.knock.answers).decode(), "note": i.knock.note, "lon": i.knock.lon,
             "lat": i.knock.lat, "knocked_at": i.knock.knocked_at, "clock_offset_s": offset.total_seconds(),
             "corrected_at": i.corrected_at, "clock_suspect": suspect, "received_at": received_at,
             "digest": i.digest} for i in fresh]
    if postgres:
        return set((await session.execute(text(POSTGRES_INSERT), _arrays(rows))).scalars())
    statement = sqlite.insert(DoorKnock).on_conflict_do_nothing(index_elements=["id"]).returning(DoorKnock.id)
    return set((await session.execute(statement, rows)).scalars())


# The knocks of a batch as arrays, in the order sent (so server sequence numbers follow it).
POSTGRES_INSERT = """
INSERT INTO door_knock (id, campaign_id, turf_id, household_id, precinct_id, person_id, user_id, device_id, batch_id,
                        script_version_id, result, contacted, answers, note, lon, lat, knocked_at, clock_offset_s,
                        corrected_at, clock_suspect, received_at, digest)
SELECT id, campaign_id, turf_id, household_id, precinct_id, person_id, user_id, device_id, batch_id,
       script_version_id, result, contacted, answers, note, lon, lat, knocked_at, clock_offset_s, corrected_at,
       clock_suspect, received_at, digest
FROM unnest(CAST(:id AS uuid[]), CAST(:campaign_id AS integer[]), CAST(:turf_id AS integer[]),
            CAST(:household_id AS integer[]), CAST(:precinct_id AS integer[]), CAST(:person_id AS integer[]),
            CAST(:user_id AS uuid[]), CAST(:device_id AS varchar[]), CAST(:batch_id AS varchar[]),
            CAST(:script_version_id AS integer[]), CAST(:result AS varchar[]), CAST(:contacted AS boolean[]),
            CAST(:answers AS text[]), CAST(:note AS text[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]),
            CAST(:knocked_at AS timestamptz[]), CAST(:clock_offset_s AS float8[]), CAST(:corrected_at AS timestamptz[]),
            CAST(:clock_suspect AS boolean[]), CAST(:received_at AS timestamptz[]), CAST(:digest AS varchar[]))
     WITH ORDINALITY AS k(id, campaign_id, turf_id, household_id, precinct_id, person_id, user_id, device_id,
                          batch_id, script_version_id, result, contacted, answers, note, lon, lat, knocked_at,
                          clock_offset_s, corrected_at, clock_suspect, received_at, digest, n)
ORDER BY n
ON CONFLICT (id) DO NOTHING
RETURNING id"""


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b > a) else a


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b < a) else a


async def _derive(session: AsyncSession, campaign_id: int, knocks: list[_Item], state: _State,
                  postgres: bool) -> None:
    """Move the counters on by the newly stored knocks only: doors, stops, turfs, precincts, result tallies,
    and each door's latest result (by corrected time; walk lists holding a changed door move on)."""
    if not knocks:
        return
    by_door: dict[int, list[_Item]] = defaultdict(list)
    by_stop: dict[tuple[int, int], list[_Item]] = defaultdict(list)
    turf_delta: dict[int, list[Any]] = defaultdict(lambda: [0, 0, 0, None, 0])  # knocks, attempted, contacted,
    precinct_delta: dict[int, list[Any]] = defaultdict(lambda: [0, 0, 0, None, 0])  # last knock, new version
    tally: dict[tuple[int, int, str], int] = defaultdict(int)
    for k in knocks:
        by_door[k.knock.household_id].append(k)
        by_stop[(k.knock.turf_id, k.knock.household_id)].append(k)
        tally[(k.knock.turf_id, k.precinct_id, k.knock.result)] += 1
        for delta, key in ((turf_delta, k.knock.turf_id), (precinct_delta, k.precinct_id)):
            delta[key][0] += 1
            delta[key][3] = _later(delta[key][3], k.corrected_at)

    door_updates, results_changed = [], []
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
            results_changed.append(household_id)
        door_updates.append({
            "h": household_id, "n": door.knocks + len(made), "contacted_at": contacted_at,
            "first": _earlier(door.first_knock_at, min(k.corrected_at for k in made)),
            "result": latest.knock.result if update_result else None,
            "at": latest.corrected_at if update_result else None, "keep": not update_result})

    # Walk lists: a door whose last result changed is stamped with its turf's next version.
    active = {h: t for (t, h), s in state.stops.items() if not s.removed and h in set(results_changed)}
    bumped = sorted(set(active.values()))
    versions = dict((await session.execute(select(Turf.id, Turf.version).where(Turf.id.in_(bumped))
                                           .with_for_update())).all()) if bumped else {}
    for turf_id in bumped:
        turf_delta[turf_id][4] = 1
    stop_updates = []
    for (turf_id, household_id), made in by_stop.items():
        stop = state.stops[(turf_id, household_id)]
        contacted = stop.contacted or any(k.contacted for k in made)
        turf_delta[turf_id][1] += stop.knocks == 0
        turf_delta[turf_id][2] += not stop.contacted and contacted
        changed = versions[turf_id] + 1 if active.get(household_id) == turf_id else None
        stop_updates.append({"t": turf_id, "h": household_id, "n": stop.knocks + len(made), "c": contacted,
                             "v": changed})
    stop_updates += [{"t": t, "h": h, "n": state.stops[(t, h)].knocks, "c": state.stops[(t, h)].contacted,
                      "v": versions[t] + 1} for h, t in active.items() if (t, h) not in by_stop]

    turf_rows = [{"i": key, "n": d[0], "a": d[1], "c": d[2], "last": d[3], "v": d[4]} for key, d in turf_delta.items()]
    precinct_rows = [{"i": key, "n": d[0], "a": d[1], "c": d[2], "last": d[3]} for key, d in precinct_delta.items()]
    tally_rows = [{"turf_id": t, "precinct_id": p, "result": r, "campaign_id": campaign_id, "knocks": n}
                  for (t, p, r), n in tally.items()]
    if postgres:
        await _write_postgres(session, door_updates, stop_updates, turf_rows, precinct_rows, tally_rows)
    else:
        await _write_sqlite(session, door_updates, stop_updates, turf_rows, precinct_rows, tally_rows)


# PostgreSQL takes each batch's updates as arrays, one statement a table: the rows travel once and SQLAlchemy
# processes one parameter per column instead of one per row (several times faster than executemany).
POSTGRES_WRITES = {
    "doors": """
UPDATE household AS h SET knocks = v.n, first_knock_at = v.first, contacted_at = v.contacted_at,
    last_result = CASE WHEN v.keep THEN h.last_result ELSE v.result END,
    last_result_at = CASE WHEN v.keep THEN h.last_result_at ELSE v.at END
FROM unnest(CAST(:h AS integer[]), CAST(:n AS integer[]), CAST(:first AS timestamptz[]),
            CAST(:contacted_at AS timestamptz[]), CAST(:keep AS boolean[]), CAST(:result AS varchar[]),
            CAST(:at AS timestamptz[])) AS v(h, n, first, contacted_at, keep, result, at)
WHERE h.id = v.h""",
    "stops": """
UPDATE walk_stop AS s SET knocks = v.n, contacted = v.c, changed = COALESCE(v.v, s.changed)
FROM unnest(CAST(:t AS integer[]), CAST(:h AS integer[]), CAST(:n AS integer[]), CAST(:c AS boolean[]),
            CAST(:v AS integer[])) AS v(t, h, n, c, v)
WHERE s.turf_id = v.t AND s.household_id = v.h""",
    "turfs": """
UPDATE turf AS t SET knocks = t.knocks + v.n, doors_attempted = t.doors_attempted + v.a,
    doors_contacted = t.doors_contacted + v.c, last_knock_at = GREATEST(t.last_knock_at, v.last),
    version = t.version + v.v
FROM unnest(CAST(:i AS integer[]), CAST(:n AS integer[]), CAST(:a AS integer[]), CAST(:c AS integer[]),
            CAST(:last AS timestamptz[]), CAST(:v AS integer[])) AS v(i, n, a, c, last, v)
WHERE t.id = v.i""",
    "precincts": """
UPDATE precinct AS p SET knocks = p.knocks + v.n, doors_attempted = p.doors_attempted + v.a,
    doors_contacted = p.doors_contacted + v.c, last_knock_at = GREATEST(p.last_knock_at, v.last)
FROM unnest(CAST(:i AS integer[]), CAST(:n AS integer[]), CAST(:a AS integer[]), CAST(:c AS integer[]),
            CAST(:last AS timestamptz[])) AS v(i, n, a, c, last)
WHERE p.id = v.i""",
    "tallies": """
INSERT INTO result_tally (turf_id, precinct_id, result, campaign_id, knocks)
SELECT * FROM unnest(CAST(:turf_id AS integer[]), CAST(:precinct_id AS integer[]), CAST(:result AS varchar[]),
                     CAST(:campaign_id AS integer[]), CAST(:knocks AS integer[]))
ON CONFLICT (turf_id, precinct_id, result) DO UPDATE SET knocks = result_tally.knocks + excluded.knocks""",
}


def _arrays(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {key: [row[key] for row in rows] for key in rows[0]} if rows else {}


async def _write_postgres(session: AsyncSession, *tables: list[dict[str, Any]]) -> None:
    for sql, rows in zip(POSTGRES_WRITES.values(), tables, strict=True):
        if rows:
            await session.execute(text(sql), _arrays(rows))


async def _write_sqlite(session: AsyncSession, doors: list[dict[str, Any]], stops: list[dict[str, Any]],
                        turfs: list[dict[str, Any]], precincts: list[dict[str, Any]],
                        tallies: list[dict[str, Any]]) -> None:
    table = Household.__table__
    keep = bindparam("keep", type_=Boolean())
    await session.execute(update(table).where(table.c.id == bindparam("h")).values(
        knocks=bindparam("n"), first_knock_at=bindparam("first"), contacted_at=bindparam("contacted_at"),
        last_result=case((keep, table.c.last_result), else_=bindparam("result", type_=String())),
        last_result_at=case((keep, table.c.last_result_at), else_=bindparam("at", type_=UTCDateTime()))), doors)
    table = WalkStop.__table__
    await session.execute(
        update(table).where(table.c.turf_id == bindparam("t"), table.c.household_id == bindparam("h")).values(
            knocks=bindparam("n"), contacted=bindparam("c"),
            changed=func.coalesce(bindparam("v", type_=Integer()), table.c.changed)), stops)
    for model, rows in ((Turf, turfs), (Precinct, precincts)):
        table = model.__table__
        last = bindparam("last", type_=UTCDateTime())
        values: dict[str, Any] = {
            "knocks": table.c.knocks + bindparam("n"), "doors_attempted": table.c.doors_attempted + bindparam("a"),
            "doors_contacted": table.c.doors_contacted + bindparam("c"),
            "last_knock_at": case((table.c.last_knock_at.is_(None) | (table.c.last_knock_at < last), last),
                                  else_=table.c.last_knock_at)}
        if model is Turf:
            values["version"] = table.c.version + bindparam("v")
        await session.execute(update(table).where(table.c.id == bindparam("i")).values(**values), rows)
    upsert = sqlite.insert(ResultTally)
    await session.execute(
        upsert.on_conflict_do_update(index_elements=["turf_id", "precinct_id", "result"],
                                     set_={"knocks": ResultTally.__table__.c.knocks + upsert.excluded.knocks}),
        tallies)


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
    knocks = await session.scalar(select(func.count()).select_from(DoorKnock).where(mine)) or 0
    doors = await session.scalar(select(func.count()).select_from(Household).where(
        Household.campaign_id == campaign_id, Household.knocks > 0)) or 0
    await session.commit()
    return {"knocks": knocks, "doors_attempted": doors}
