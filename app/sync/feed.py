"""The results feed: a campaign's knocks in the order the server stored them (its sequence, never a clock), so a
tool copies every result exactly once and resumes where it stopped; and the same as CSV for a time window.

Sync stores a campaign's batches one at a time (PostgreSQL's advisory lock, SQLite's single writer), so
sequence numbers become visible in order: a reader that has seen N never later finds a knock below N.
"""

import io
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import csvsafe
from app.addresses.models import Household, Person
from app.precincts.models import Precinct
from app.sync.models import DoorKnock

MAX_PAGE = 5000
CSV_CHUNK = 2000


def _columns(names: bool) -> list[Any]:
    knock = DoorKnock.__table__.c
    columns = [knock.seq, knock.id, knock.turf_id, Precinct.code.label("precinct"), knock.household_id,
               Household.external_id.label("household_ref"), Household.number, Household.street, Household.unit,
               knock.person_id, knock.result, knock.contacted, knock.answers, knock.note,
               knock.knocked_at, knock.corrected_at, knock.received_at, knock.clock_suspect]
    if names:
        columns += [Person.external_id.label("person_ref"), Person.first_name, Person.last_name]
    return columns


def _query(campaign_id: int, after: int, names: bool, since: datetime | None = None,
           until: datetime | None = None) -> Any:
    knock = DoorKnock.__table__.c
    query = (select(*_columns(names)).select_from(DoorKnock.__table__)
             .join(Precinct, Precinct.id == knock.precinct_id).join(Household, Household.id == knock.household_id)
             .where(knock.campaign_id == campaign_id, knock.seq > after).order_by(knock.seq))
    if names:
        query = query.outerjoin(Person, Person.id == knock.person_id)
    if since is not None:
        query = query.where(knock.corrected_at >= since)
    if until is not None:
        query = query.where(knock.corrected_at < until)
    return query


def _item(row: Any, names: bool) -> dict[str, Any]:
    item = {"seq": row.seq, "id": str(row.id), "turf_id": row.turf_id, "precinct": row.precinct,
            "household_id": row.household_id, "household_ref": row.household_ref,
            "address": " ".join(part for part in (row.number, row.street, row.unit) if part),
            "person_id": row.person_id,
            "result": row.result, "contacted": row.contacted, "answers": orjson.loads(row.answers),
            "note": row.note if names else None, "knocked_at": row.knocked_at, "corrected_at": row.corrected_at,
            "received_at": row.received_at, "clock_suspect": row.clock_suspect}
    if names:
        # The voter's file id and name, like the canvasser's note above (free text, often about the people at
        # the door): for callers with people:read only (organizers, keys with the scope).
        item["person_ref"] = row.person_ref
        item["person_name"] = f"{row.first_name} {row.last_name}" if row.first_name is not None else None
    return item


async def page(session: AsyncSession, campaign_id: int, *, after: int, limit: int, names: bool
               ) -> tuple[list[dict[str, Any]], int]:
    """Up to `limit` knocks stored after sequence number `after`, and the sequence number to resume after."""
    rows = (await session.execute(_query(campaign_id, after, names).limit(limit))).all()
    return [_item(row, names) for row in rows], rows[-1].seq if rows else after


CSV_FIELDS = ["seq", "id", "turf_id", "precinct", "household_id", "household_ref", "address", "person_id", "result",
              "contacted", "answers", "note", "knocked_at", "corrected_at", "received_at", "clock_suspect"]


async def csv_rows(maker: async_sessionmaker[AsyncSession], campaign_id: int, *, since: datetime | None,
                   until: datetime | None, names: bool, seen: Callable[[int], None] | None = None
                   ) -> AsyncIterator[bytes]:
    """The window's knocks as CSV, a chunk of rows at a time (each chunk its own short read), header first;
    `seen` hears how many knocks each chunk holds."""
    fields = CSV_FIELDS + (["person_ref", "person_name"] if names else [])
    buffer = io.StringIO()
    writer = csvsafe.DictWriter(buffer, fields)  # notes and voter-file names are anyone's text
    writer.writeheader()
    after = 0
    while True:
        async with maker() as session:
            rows = (await session.execute(_query(campaign_id, after, names, since, until).limit(CSV_CHUNK))).all()
        if seen is not None:
            seen(len(rows))
        for row in rows:
            item = _item(row, names)
            item["answers"] = orjson.dumps(item["answers"]).decode()
            for key in ("knocked_at", "corrected_at", "received_at"):
                item[key] = item[key].isoformat()
            writer.writerow(item)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < CSV_CHUNK:
            return
        after = rows[-1].seq
