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
from sqlalchemy import bindparam, delete, func, insert, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses.models import Household, Person
from app.auth.service import Access
from app.campaigns.models import Role
from app.db import begin_write, utcnow
from app.organizing.models import TurfHistory, TurfHolding
from app.precincts.models import Precinct
from app.scripts.models import ScriptVersion
from app.scripts.service import STANDARD_RESULTS
from app.sync.models import DoorKnock, ResultTally
from app.sync.schemas import KnockIn, KnockOutcome, SyncBatch, SyncResult
from app.turfs.models import Turf
from app.walklists.models import WalkStop
from app.walklists.service import note_results

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


async def sync_batch(session: AsyncSession, access: Access, batch: SyncBatch) -> SyncResult:
    """Store a batch of knocks in one transaction; the outcome of each, in the order sent."""
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

    outcomes: list[KnockOutcome] = []
    items: list[_Item] = []
    seen: dict[UUID, str] = {}
    for index, raw in enumerate(batch.knocks):
        shown = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") is not None else ""
        try:
            knock = _knock.validate_python(raw)
        except ValidationError as exc:
            outcomes.append(KnockOutcome(id=shown, status="rejected", problem=_validation(index, exc)))
            continue
        item = _Item(index, knock, digest(knock), min(knock.knocked_at + offset, received_at))
        outcomes.append(KnockOutcome(id=str(knock.id), status="accepted"))
        if knock.id in seen:
            # The same knock twice in one batch: the first stands.
            outcomes[-1] = _repeat(item, seen[knock.id])
            continue
        seen[knock.id] = item.digest
        items.append(item)

    problems = await _check(session, campaign_id, user_id, staff, items)
    stored = await _stored_digests(session, [i.knock.id for i in items if i.index not in problems])
    fresh: list[_Item] = []
    for item in items:
        if item.index in problems:
            outcomes[item.index] = KnockOutcome(id=str(item.knock.id), status="rejected",
                                                problem=problems[item.index])
        elif item.knock.id in stored:
            outcomes[item.index] = _repeat(item, stored[item.knock.id])
        else:
            fresh.append(item)

    inserted = await _insert(session, access, batch, fresh, received_at, offset, suspect, postgres)
    for item in fresh:
        if item.knock.id not in inserted:
            # Stored by another campaign's sync meanwhile (ids are global): compare with what is there.
            outcomes[item.index] = _repeat(item, (await _stored_digests(session, [item.knock.id]))[item.knock.id])
    accepted = [i for i in fresh if i.knock.id in inserted]
    await _derive(session, campaign_id, accepted)
    if accepted:
        await session.execute(update(TurfHolding).where(
            TurfHolding.user_id == user_id, TurfHolding.turf_id.in_({i.knock.turf_id for i in accepted}))
            .values(last_activity_at=received_at))
    await session.commit()
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("accepted", "duplicate", "rejected")}
    return SyncResult(batch_id=batch.batch_id, received_at=received_at, clock_offset_s=offset.total_seconds(),
                      clock_suspect=suspect, knocks=outcomes, **counts)


def _repeat(item: _Item, stored_digest: str) -> KnockOutcome:
    if stored_digest == item.digest:
        return KnockOutcome(id=str(item.knock.id), status="duplicate")
    return KnockOutcome(id=str(item.knock.id), status="rejected", problem=_problem(
        409, "Conflict", "conflict", f"knock {item.knock.id} was stored before with other content; the stored "
                                     "knock stands", f"knocks[{item.index}].id"))


async def _stored_digests(session: AsyncSession, ids: Sequence[UUID]) -> dict[UUID, str]:
    if not ids:
        return {}
    return dict((await session.execute(select(DoorKnock.id, DoorKnock.digest)
                                       .where(DoorKnock.id.in_(list(ids))))).all())


async def _check(session: AsyncSession, campaign_id: int, user_id: UUID, staff: bool,
                 items: list[_Item]) -> dict[int, dict[str, Any]]:
    """Problems of knocks that can't be stored, by index; fills in the rest's precinct, script and contact."""
    if not items:
        return {}
    household_ids = {i.knock.household_id for i in items}
    households = dict((await session.execute(select(Household.id, Household.precinct_id).where(
        Household.campaign_id == campaign_id, Household.id.in_(household_ids)))).all())
    turf_ids = {i.knock.turf_id for i in items}
    turfs = set((await session.execute(select(Turf.id).where(Turf.campaign_id == campaign_id,
                                                             Turf.id.in_(turf_ids)))).scalars())
    # A door was on a turf if the turf's walk list ever held it (removed doors stay as removed stops).
    on_turf = {(t, h) for t, h in (await session.execute(select(WalkStop.turf_id, WalkStop.household_id).where(
        WalkStop.household_id.in_(household_ids), WalkStop.turf_id.in_(turf_ids)))).all()}
    person_ids = {i.knock.person_id for i in items if i.knock.person_id is not None}
    people = dict((await session.execute(select(Person.id, Person.household_id)
                                          .where(Person.id.in_(person_ids)))).all()) if person_ids else {}
    wanted = {(i.knock.script_id, i.knock.script_version) for i in items if i.knock.script_id is not None}
    versions = {(v.script_id, v.version): v for v in (await session.execute(
        select(ScriptVersion.id, ScriptVersion.script_id, ScriptVersion.version, ScriptVersion.questions,
               ScriptVersion.result_codes).where(ScriptVersion.campaign_id == campaign_id,
                                                 tuple_(ScriptVersion.script_id, ScriptVersion.version)
                                                 .in_(list(wanted))))).all()} if wanted else {}
    codes = {key: ({c["code"]: c["contacted"] for c in orjson.loads(v.result_codes)}, orjson.loads(v.questions))
             for key, v in versions.items()}
    holdings = {} if staff else await _holdings(session, campaign_id, user_id, turf_ids)

    problems: dict[int, dict[str, Any]] = {}
    for item in items:
        k, i = item.knock, item.index
        if k.household_id not in households:
            problems[i] = _invalid(i, "household_id", f"no household {k.household_id} in this campaign")
        elif k.turf_id not in turfs:
            problems[i] = _invalid(i, "turf_id", f"no turf {k.turf_id} in this campaign")
        elif (k.turf_id, k.household_id) not in on_turf:
            problems[i] = _invalid(i, "household_id", f"household {k.household_id} was never on turf {k.turf_id}")
        elif k.person_id is not None and people.get(k.person_id) != k.household_id:
            problems[i] = _invalid(i, "person_id", f"person {k.person_id} doesn't live in household "
                                                   f"{k.household_id}")
        elif k.script_id is not None and (k.script_id, k.script_version) not in codes:
            problems[i] = _invalid(i, "script_version", f"script {k.script_id} has no version {k.script_version}")
        elif k.script_id is None and k.answers:
            problems[i] = _invalid(i, "answers", "answers need the script_id and script_version they answer")
        else:
            results, questions = codes.get((k.script_id, k.script_version), (STANDARD, []))
            if k.result not in results:
                problems[i] = _invalid(i, "result", f"{k.result!r} is not a result code of this script version")
            elif (bad := _check_answers(item, questions)) is not None:
                problems[i] = bad
            elif not staff and not _held(holdings.get(k.turf_id, []), item.corrected_at):
                problems[i] = _problem(
                    403, "Forbidden", "forbidden", f"you didn't hold turf {k.turf_id} at "
                    f"{item.corrected_at.isoformat(timespec='seconds')} (the knock's time by the server's clock)",
                    f"knocks[{i}].turf_id")
            else:
                item.precinct_id = households[k.household_id]
                item.contacted = results[k.result]
                version = versions.get((k.script_id, k.script_version))
                item.script_version_id = version.id if version is not None else None
    return problems


async def _insert(session: AsyncSession, access: Access, batch: SyncBatch, fresh: list[_Item],
                  received_at: datetime, offset: timedelta, suspect: bool, postgres: bool) -> set[UUID]:
    """Insert the knocks; the ids stored (one already stored elsewhere is skipped, not an error)."""
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
    dialect = postgresql if postgres else sqlite
    statement = dialect.insert(DoorKnock).on_conflict_do_nothing(index_elements=["id"]).returning(DoorKnock.id)
    return set((await session.execute(statement, rows)).scalars())


async def _derive(session: AsyncSession, campaign_id: int, knocks: list[_Item]) -> None:
    """Move the counters on by the newly stored knocks only: doors, turfs, precincts and result tallies."""
    if not knocks:
        return
    households = {h.id: h for h in (await session.execute(
        select(Household.id, Household.knocks, Household.first_knock_at, Household.contacted_at)
        .where(Household.id.in_({k.knock.household_id for k in knocks})))).all()}
    pairs = {(k.knock.turf_id, k.knock.household_id) for k in knocks}
    stops = {(s.turf_id, s.household_id): s for s in (await session.execute(
        select(WalkStop.turf_id, WalkStop.household_id, WalkStop.knocks, WalkStop.contacted)
        .where(tuple_(WalkStop.turf_id, WalkStop.household_id).in_(list(pairs))))).all()}

    door_updates, stop_updates = [], []
    turf_delta: dict[int, list[Any]] = defaultdict(lambda: [0, 0, 0, None])  # knocks, attempted, contacted, last
    precinct_delta: dict[int, list[Any]] = defaultdict(lambda: [0, 0, 0, None])
    tally: dict[tuple[int, int, str], int] = defaultdict(int)
    by_door: dict[int, list[_Item]] = defaultdict(list)
    by_stop: dict[tuple[int, int], list[_Item]] = defaultdict(list)
    for k in knocks:
        by_door[k.knock.household_id].append(k)
        by_stop[(k.knock.turf_id, k.knock.household_id)].append(k)
        tally[(k.knock.turf_id, k.precinct_id, k.knock.result)] += 1
        for delta, key in ((turf_delta, k.knock.turf_id), (precinct_delta, k.precinct_id)):
            delta[key][0] += 1
            delta[key][3] = max(filter(None, (delta[key][3], k.corrected_at)))
    for household_id, made in by_door.items():
        door = households[household_id]
        first = min(k.corrected_at for k in made)
        contacts = [k.corrected_at for k in made if k.contacted]
        contacted_at = min(filter(None, (door.contacted_at, *contacts)), default=None)
        precinct = made[0].precinct_id
        precinct_delta[precinct][1] += door.knocks == 0
        precinct_delta[precinct][2] += door.contacted_at is None and contacted_at is not None
        door_updates.append({"h": household_id, "n": door.knocks + len(made), "contacted_at": contacted_at,
                             "first": min(filter(None, (door.first_knock_at, first)))})
    for (turf_id, household_id), made in by_stop.items():
        stop = stops[(turf_id, household_id)]
        contacted = stop.contacted or any(k.contacted for k in made)
        turf_delta[turf_id][1] += stop.knocks == 0
        turf_delta[turf_id][2] += not stop.contacted and contacted
        stop_updates.append({"t": turf_id, "h": household_id, "n": stop.knocks + len(made), "c": contacted})

    table = Household.__table__
    await session.execute(update(table).where(table.c.id == bindparam("h")).values(
        knocks=bindparam("n"), first_knock_at=bindparam("first"), contacted_at=bindparam("contacted_at")),
        door_updates)
    table = WalkStop.__table__
    await session.execute(update(table).where(table.c.turf_id == bindparam("t"), table.c.household_id == bindparam("h"))
                          .values(knocks=bindparam("n"), contacted=bindparam("c")), stop_updates)
    for model, delta in ((Turf, turf_delta), (Precinct, precinct_delta)):
        current = dict((await session.execute(select(model.id, model.last_knock_at)
                                              .where(model.id.in_(list(delta))))).all())
        table = model.__table__
        await session.execute(
            update(table).where(table.c.id == bindparam("i")).values(
                knocks=table.c.knocks + bindparam("n"), doors_attempted=table.c.doors_attempted + bindparam("a"),
                doors_contacted=table.c.doors_contacted + bindparam("c"), last_knock_at=bindparam("last")),
            [{"i": key, "n": d[0], "a": d[1], "c": d[2], "last": max(filter(None, (current[key], d[3])))}
             for key, d in delta.items()])
    stored = {(t, p, r): n for t, p, r, n in (await session.execute(
        select(ResultTally.turf_id, ResultTally.precinct_id, ResultTally.result, ResultTally.knocks)
        .where(tuple_(ResultTally.turf_id, ResultTally.precinct_id, ResultTally.result).in_(list(tally))))).all()}
    table = ResultTally.__table__
    new = [{"turf_id": t, "precinct_id": p, "result": r, "campaign_id": campaign_id, "knocks": n}
           for (t, p, r), n in tally.items() if (t, p, r) not in stored]
    if new:
        await session.execute(insert(table), new)
    changed = [{"t": t, "p": p, "r": r, "n": stored[(t, p, r)] + n} for (t, p, r), n in tally.items()
               if (t, p, r) in stored]
    if changed:
        await session.execute(update(table).where(table.c.turf_id == bindparam("t"),
                                                  table.c.precinct_id == bindparam("p"),
                                                  table.c.result == bindparam("r")).values(knocks=bindparam("n")),
                              changed)
    # The latest result at each door, by corrected time; walk lists holding changed doors move on.
    await note_results(session, [(k.knock.household_id, k.knock.result, k.corrected_at) for k in knocks])


async def rebuild_progress(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Recompute every counter of the campaign from its knocks, in one transaction; what it counted."""
    await begin_write(session)
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
