"""Sync's checks: what a knock must be to be stored, and each knock's outcome. Pure: the state they read is
loaded beforehand (app/sync/store.py), so nothing here touches the database.

A knock is checked on its own (a bad one is rejected with a problem naming its field, the others go in).
"""

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from pydantic import TypeAdapter, ValidationError

from app.errors import problem_body
from app.organizing.models import ASSIGNED, TAKEN_BACK
from app.scripts.service import STANDARD_RESULTS
from app.sync.schemas import KnockIn
from app.values import EARLIEST, LATEST, sane_time

# An offset this large is no clock drift but a wrong clock (a reset, a wrong date): stored, and flagged.
SUSPECT_OFFSET = timedelta(hours=24)
# Slack around a holding's start and end, for what clock correction can't know (the phone's drift offline).
HOLDING_GRACE = timedelta(minutes=15)
STANDARD = {r["code"]: r["contacted"] for r in STANDARD_RESULTS}
_knock = TypeAdapter(KnockIn)
Intervals = list[tuple[datetime, datetime | None]]


@dataclass
class Item:
    """A knock that parsed, with what the server made of its times; the checks fill in the rest."""

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
class Stop:
    removed: bool
    knocks: int
    contacted: bool


class Door(NamedTuple):
    precinct_id: int
    knocks: int
    first_knock_at: datetime | None
    contacted_at: datetime | None
    last_result_at: datetime | None


@dataclass
class State:
    """What the checks and the counters need, read once under the sync lock."""

    households: dict[int, Door]
    stops: dict[tuple[int, int], Stop]  # (turf, household)
    people: dict[int, int]  # person -> household
    versions: dict[tuple[int, int | None], Any]  # (script, version) -> (results, questions, version id)
    turfs: set[int]
    holdings: dict[int, Intervals]


def outcome(knock_id: str, status: str, problem: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": knock_id, "status": status, "problem": problem}


def _invalid(index: int, field: str, detail: str) -> dict[str, Any]:
    return problem_body(422, "Invalid input", "invalid", detail,
                        errors=[{"field": f"knocks[{index}].{field}", "message": detail}])


def _validation(index: int, exc: ValidationError) -> dict[str, Any]:
    errors = [{"field": f"knocks[{index}]" + "".join(f".{p}" for p in e["loc"]), "message": e["msg"]}
              for e in exc.errors(include_input=False)]
    return problem_body(422, "Invalid input", "invalid", "; ".join(f"{e['field']}: {e['message']}"
                                                                     for e in errors), errors=errors)


def times(knocked_at: datetime, offset: timedelta, received_at: datetime,
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
    content = knock.model_dump(mode="json")
    # Left out when not asked for, as before the field was: a knock stored earlier and sent again is the same.
    if not content["do_not_contact"]:
        del content["do_not_contact"]
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def parse(knocks: list[Any], offset: timedelta, received_at: datetime,
          suspect: bool) -> tuple[list[dict[str, Any]], list[Item]]:
    """Each knock sent, parsed alone: the outcomes in the order sent (accepted until a later check says
    otherwise), and the knocks to check further (a repeat within the batch is not one: the first stands)."""
    outcomes: list[dict[str, Any]] = []
    items: list[Item] = []
    seen: dict[UUID, str] = {}
    for index, raw in enumerate(knocks):
        try:
            # Anything may stand in the list (a number, null, a list): each is checked here, alone.
            knock = _knock.validate_python(raw)
        except ValidationError as exc:
            shown = raw.get("id") if isinstance(raw, dict) else None
            outcomes.append(outcome(str(shown) if shown is not None else "", "rejected", _validation(index, exc)))
            continue
        item = Item(index, knock, digest(knock), *times(knock.knocked_at, offset, received_at, suspect))
        if knock.id in seen:
            outcomes.append(repeat(item, seen[knock.id]))
            continue
        outcomes.append(outcome(str(knock.id), "accepted"))
        seen[knock.id] = item.digest
        items.append(item)
    return outcomes, items


def repeat(item: Item, stored_digest: str) -> dict[str, Any]:
    """The outcome of a knock whose id was stored before: identical is a duplicate, else a conflict."""
    if stored_digest == item.digest:
        return outcome(str(item.knock.id), "duplicate")
    detail = f"knock {item.knock.id} was stored before with other content; the stored knock stands"
    return outcome(str(item.knock.id), "rejected", problem_body(
        409, "Conflict", "conflict", detail, errors=[{"field": f"knocks[{item.index}].id", "message": detail}]))


def intervals(history: Iterable[tuple[int, str, datetime]]) -> dict[int, Intervals]:
    """When a user held each turf, from their turf history rows (turf, action, at) in order of time: (start,
    end or None) intervals, each widened by HOLDING_GRACE."""
    held: dict[int, Intervals] = defaultdict(list)
    open_since: dict[int, datetime] = {}
    for turf_id, action, at in history:
        if action in ASSIGNED:
            open_since.setdefault(turf_id, at)
        elif action in TAKEN_BACK and turf_id in open_since:
            held[turf_id].append((open_since.pop(turf_id) - HOLDING_GRACE, at + HOLDING_GRACE))
    for turf_id, start in open_since.items():
        held[turf_id].append((start - HOLDING_GRACE, None))
    return held


def _held(spans: Intervals, at: datetime) -> bool:
    return any(start <= at and (end is None or at <= end) for start, end in spans)


def _check_answers(item: Item, questions: list[dict[str, Any]]) -> dict[str, Any] | None:
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


def check(item: Item, state: State, staff: bool) -> dict[str, Any] | None:
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
        detail = (f"you didn't hold turf {k.turf_id} at {item.corrected_at.isoformat(timespec='seconds')} "
                  "(the knock's time by the server's clock)")
        return problem_body(403, "Forbidden", "forbidden", detail,
                            errors=[{"field": f"knocks[{i}].turf_id", "message": detail}])
    item.precinct_id = state.households[k.household_id].precinct_id
    item.contacted = results[k.result]
    item.script_version_id = version_id
    return None


def accepted_payloads(accepted: list[Item]) -> tuple[dict[str, Any], ...]:
    """The knocks as `knock.accepted` webhooks carry them (no names)."""
    return tuple({"id": str(i.knock.id), "turf_id": i.knock.turf_id, "household_id": i.knock.household_id,
                  "person_id": i.knock.person_id, "result": i.knock.result, "contacted": i.contacted,
                  "answers": i.knock.answers, "knocked_at": i.knocked_at, "corrected_at": i.corrected_at}
                 for i in accepted)


def first_doors(accepted: list[Item], state: State) -> dict[int, int]:
    """Per turf, how many of its doors these knocks reached for the first time (their stop had no knock)."""
    first: dict[int, set[int]] = defaultdict(set)
    for i in accepted:
        if state.stops[(i.knock.turf_id, i.knock.household_id)].knocks == 0:
            first[i.knock.turf_id].add(i.knock.household_id)
    return {turf_id: len(doors) for turf_id, doors in first.items()}


def contact_marks(accepted: list[Item]) -> tuple[dict[int, str], dict[int, str]]:
    """What accepted knocks say of whom not to knock again: people and doors, each with the reason (the first
    knock's, in the batch's order). A door that asked (`do_not_contact`) is `refused`; a `deceased` or `moved`
    result marks the person spoken to, or the door when nobody was named."""
    people: dict[int, str] = {}
    doors: dict[int, str] = {}
    for item in accepted:
        k = item.knock
        if k.result in ("deceased", "moved"):
            if k.person_id is not None:
                people.setdefault(k.person_id, k.result)
            else:
                doors.setdefault(k.household_id, k.result)
        if k.do_not_contact:
            doors.setdefault(k.household_id, "refused")
    return people, doors


def answer_tags(accepted: list[Item], state: State) -> set[tuple[int, str]]:
    """The (person, tag) pairs accepted knocks' answers set: a choice with a tag, given by the person spoken to."""
    pairs = set()
    for item in accepted:
        k = item.knock
        if k.person_id is None or not k.answers:
            continue
        _, questions, _ = state.versions.get((k.script_id, k.script_version), (STANDARD, [], None))
        for question in questions:
            answer = k.answers.get(question["id"])
            given = set(answer) if isinstance(answer, list) else {answer}
            pairs |= {(k.person_id, c["tag"]) for c in question.get("choices", ()) if c.get("tag") and c["id"] in given}
    return pairs
