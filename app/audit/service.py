"""The audit of voter-data reads: each read appends a record to the process's buffer, and a background task
writes the buffer in one INSERT a batch.

Walk lists are the hot path, and SQLite has one writer: a write transaction per read would queue every phone
behind every other. A batch a second costs one transaction however busy the evening is. The buffer is bounded:
a full one is written at once by the read that filled it, so nothing is dropped.
"""

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.models import AuditEvent
from app.db import begin_write, unavailable, utcnow
from app.errors import Invalid
from app.pagination import decode_cursor, encode_cursor

log = logging.getLogger("doorstep")

# The columns' bounds (see AuditEvent): what the caller sent is cut to them, never refused.
SUBJECT_MAX, CLIENT_MAX, USER_AGENT_MAX = 200, 64, 200


class AuditLog:
    """One process's audit buffer and its writer."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], *, buffer_max: int) -> None:
        self.maker = maker
        self.buffer_max = buffer_max
        self._buffer: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()

    def append(self, *, campaign_id: int, user_id: uuid.UUID | None, api_key_id: uuid.UUID | None, action: str,
               subject: str, records: int | None, client: str | None, user_agent: str | None) -> None:
        """Buffer one read; the writer stores it within a flush interval. For where nothing may be awaited (a
        streamed answer's end); `record` is the usual way."""
        self._buffer.append({
            "campaign_id": campaign_id, "at": utcnow(), "user_id": user_id, "api_key_id": api_key_id,
            "action": action, "subject": subject[:SUBJECT_MAX], "records": records,
            "client": client[:CLIENT_MAX] if client else None,
            "user_agent": user_agent[:USER_AGENT_MAX] if user_agent else None})

    async def record(self, **read: Any) -> None:
        """Buffer one read (see `append`), writing the buffer now if it is full."""
        self.append(**read)
        if len(self._buffer) >= self.buffer_max:
            await self.flush()

    async def flush(self) -> int:
        """Write what is buffered, in one transaction; how many reads it wrote. A failed write keeps them
        buffered for the next flush."""
        async with self._lock:
            rows, self._buffer = self._buffer, []
            if not rows:
                return 0
            try:
                async with self.maker() as session:
                    await begin_write(session)
                    await session.execute(insert(AuditEvent), rows)
                    await session.commit()
            except BaseException:
                self._buffer[:0] = rows
                raise
            return len(rows)

    async def run(self, stop: asyncio.Event, interval: float | None) -> None:
        """Flush every `interval` seconds (or only when the buffer fills, if None) until `stop` is set, then once
        more."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            try:
                await self.flush()
            except Exception as exc:
                if unavailable(exc):
                    log.warning("the audit waits: the database can't be reached; its %d reads stay buffered",
                                len(self._buffer))
                else:
                    log.exception("writing the audit failed; its %d reads stay buffered", len(self._buffer))


def _cursor(cursor: str | None) -> tuple[datetime, int] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    try:
        at, event_id = key
        at = datetime.fromisoformat(at)
        if at.tzinfo is None or not isinstance(event_id, int) or isinstance(event_id, bool) or event_id < 0:
            raise ValueError(key)
    except (TypeError, ValueError) as exc:
        raise Invalid("not a cursor this API gave out", field="cursor") from exc
    return at, event_id


async def list_events(session: AsyncSession, campaign_id: int, *, since: datetime | None, until: datetime | None,
                      user_id: uuid.UUID | None, api_key_id: uuid.UUID | None, action: str | None,
                      cursor: str | None, limit: int) -> tuple[list[AuditEvent], str | None]:
    """A page of the campaign's audit, newest first, and the cursor of the next page.

    Reads afresh: the session's open transaction (the caller's access check) is ended first, since on SQLite it
    holds a snapshot from before the flush the route has just made. It wrote nothing, and nothing expires.
    """
    if session.in_transaction():
        await session.commit()
    query = select(AuditEvent).where(AuditEvent.campaign_id == campaign_id)
    for column, value in ((AuditEvent.user_id, user_id), (AuditEvent.api_key_id, api_key_id),
                          (AuditEvent.action, action)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    if (after := _cursor(cursor)) is not None:
        at, event_id = after
        query = query.where(or_(AuditEvent.at < at, and_(AuditEvent.at == at, AuditEvent.id < event_id)))
    events = list((await session.execute(
        query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit + 1))).scalars())
    if len(events) <= limit:
        return events, None
    last = events[limit - 1]
    return events[:limit], encode_cursor([last.at.isoformat(), last.id])
