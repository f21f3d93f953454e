"""Live progress: which campaigns changed, told to every server process within a second.

A change is announced when its transaction commits (app/progress/handlers.py): on PostgreSQL by NOTIFY (sent by
the writing transaction, delivered by the server only at commit, to every process LISTENing, whichever worker
wrote); on SQLite, where one process serves, straight to this process's hub after the commit. Streams subscribe
to the hub.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

import asyncpg
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.campaigns.models import Campaign
from app.db import pg_fetch

CHANNEL = "doorstep_progress"
log = logging.getLogger("doorstep")


class Hub:
    """This process's subscribers, per campaign: each a queue that gets the campaign's id on a change."""

    def __init__(self) -> None:
        self.queues: dict[int, set[asyncio.Queue[int]]] = defaultdict(set)

    def subscribe(self, campaign_id: int) -> asyncio.Queue[int]:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=100)
        self.queues[campaign_id].add(queue)
        return queue

    def unsubscribe(self, campaign_id: int, queue: asyncio.Queue[int]) -> None:
        self.queues[campaign_id].discard(queue)

    def publish(self, campaign_id: int) -> None:
        for queue in self.queues.get(campaign_id, ()):
            # A stream that fell behind needs only to know that something changed since: one entry is enough.
            if queue.empty():
                queue.put_nowait(campaign_id)


HUB = Hub()


# The counter moved on and every process told in one round trip (a sync batch makes a handful).
CHANGED_PG = """
WITH moved AS (UPDATE campaign SET changes = changes + 1 WHERE id = :campaign RETURNING id)
SELECT pg_notify(:channel, CAST(id AS text)) FROM moved"""


async def changed(session: AsyncSession, campaign_id: int) -> None:
    """Move the campaign's change counter on (progress ETags are made of it) and, on PostgreSQL, tell every
    server process: NOTIFY is delivered at commit."""
    if (await session.connection()).dialect.name == "postgresql":
        await pg_fetch(session, CHANGED_PG, {"campaign": campaign_id, "channel": CHANNEL})
    else:
        await session.execute(update(Campaign).where(Campaign.id == campaign_id)
                              .values(changes=Campaign.changes + 1).execution_options(synchronize_session=False))


def committed(session: Session, campaign_id: int) -> None:
    """After the commit of a change to the campaign: on SQLite, where one process serves, tell its streams
    (PostgreSQL's NOTIFY tells every process, this one too)."""
    if session.get_bind().dialect.name != "postgresql":
        HUB.publish(campaign_id)


async def listen(database_url: str, stop: asyncio.Event) -> None:
    """Feed the hub from PostgreSQL's NOTIFY until `stop`; reconnects when the connection drops. On SQLite there
    is nothing to hear: one process serves, and its commits tell its streams (`committed`)."""
    if make_url(database_url).get_backend_name() != "postgresql":
        return
    url = make_url(database_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)

    def heard(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            HUB.publish(int(payload))

    while not stop.is_set():
        lost = asyncio.Event()
        try:
            connection = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("progress listener can't connect (%s); retrying", exc)
            await _wait(stop, 1.0)
            continue
        connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
        await connection.add_listener(CHANNEL, heard)
        try:
            done = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())}
            _, pending = await asyncio.wait(done, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        finally:
            with contextlib.suppress(Exception):
                await connection.close()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
