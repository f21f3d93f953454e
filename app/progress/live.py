"""Live progress: which campaigns changed, told to every server process within a second.

A change is announced when its transaction commits (app/progress/handlers.py): on PostgreSQL by NOTIFY (sent by
the writing transaction, delivered by the server only at commit, to every process LISTENing, whichever worker
wrote); on SQLite, where one process serves, straight to this process's hub after the commit. Streams subscribe
to the hub. A stream outlives a database that goes away and comes back (`watch`), and the listener, reconnected,
has every stream read its counter again, so a change made meanwhile is not lost.
"""

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any

import asyncpg
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.campaigns.models import Campaign
from app.db import UNREACHABLE, pg_fetch, unavailable

CHANNEL = "doorstep_progress"
# How the listening connection shows in pg_stat_activity.
LISTENER_NAME = "doorstep progress listener"
log = logging.getLogger("doorstep")


class TooManyStreams(Exception):
    """The caller has as many streams open as it may."""


class Subscription:
    """A stream's queue in the hub, and its place in its caller's count; `close` may be called more than once
    (the stream's end and the answer's end both call it: a HEAD's stream never starts)."""

    def __init__(self, queue: asyncio.Queue[int], leave: Callable[[], None]) -> None:
        self.queue = queue
        self._leave: Callable[[], None] | None = leave

    def close(self) -> None:
        leave, self._leave = self._leave, None
        if leave is not None:
            leave()


class Hub:
    """This process's subscribers, per campaign: each a queue that gets the campaign's id on a change. Also how
    many streams each caller has open here, and the counter reads in flight, one a campaign."""

    def __init__(self) -> None:
        self.queues: dict[int, set[asyncio.Queue[int]]] = defaultdict(set)
        self.open: Counter[Hashable] = Counter()
        self.reading: dict[int, asyncio.Future[int]] = {}

    def subscribe(self, campaign_id: int) -> asyncio.Queue[int]:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=100)
        self.queues[campaign_id].add(queue)
        return queue

    def unsubscribe(self, campaign_id: int, queue: asyncio.Queue[int]) -> None:
        self.queues[campaign_id].discard(queue)
        if not self.queues[campaign_id]:
            del self.queues[campaign_id]

    def join(self, campaign_id: int, caller: Hashable, *, most: int) -> "Subscription":
        """A stream's subscription, counted against `caller`'s `most` open streams (TooManyStreams past it)."""
        if self.open[caller] >= most:
            raise TooManyStreams
        self.open[caller] += 1
        queue = self.subscribe(campaign_id)

        def leave() -> None:
            self.unsubscribe(campaign_id, queue)
            self.open[caller] -= 1
            if not self.open[caller]:
                del self.open[caller]
        return Subscription(queue, leave)

    async def counter(self, campaign_id: int, read: Callable[[], Awaitable[int]]) -> int:
        """`read` of the campaign's counter, shared by every stream that asks while it runs: a change wakes every
        stream of the campaign at once, and they make one query, not one each."""
        pending = self.reading.get(campaign_id)
        if pending is None:
            pending = asyncio.ensure_future(read())
            self.reading[campaign_id] = pending
            pending.add_done_callback(lambda done: self._read(campaign_id, done))
        # Shielded: a stream that goes away mid-read doesn't cancel the others' read.
        return await asyncio.shield(pending)

    def _read(self, campaign_id: int, done: asyncio.Future[int]) -> None:
        self.reading.pop(campaign_id, None)
        # Taken here: if every stream that asked went away, nobody else would, and asyncio would log it.
        if not done.cancelled():
            done.exception()

    def publish(self, campaign_id: int) -> None:
        for queue in self.queues.get(campaign_id, ()):
            # A stream that fell behind needs only to know that something changed since: one entry is enough.
            if queue.empty():
                queue.put_nowait(campaign_id)

    def publish_all(self) -> None:
        """Tell every subscriber to read its counter again: after the listener was away, changes may have gone
        by unheard (a NOTIFY reaches only who listens when it is sent)."""
        for campaign_id in list(self.queues):
            self.publish(campaign_id)


HUB = Hub()

# After a failed read a stream reads the counter again this soon, twice as late each time up to the most: a
# restarted database is back within seconds, and a try costs one query.
RETRY_FIRST_S, RETRY_MOST_S = 0.5, 5.0


async def watch(read: Callable[[], Awaitable[int]], queue: asyncio.Queue[int], *,
                keep_alive_s: float) -> AsyncIterator[int | None]:
    """A stream's life: the change counter `read` gives, now and whenever it moves on (`queue`, the stream's
    hub subscription, says when to look); None after each `keep_alive_s` of quiet. While the database can't
    be reached the stream goes on: keep-alives as usual, the counter read again with backoff, one line in the
    log, and the counter as soon as it reads again if it moved meanwhile. Other errors end it."""
    loop = asyncio.get_running_loop()
    sent: int | None = None
    pause, retry_at = RETRY_FIRST_S, None
    keep_alive_at = loop.time() + keep_alive_s  # kept across retries: an outage's stream stays alive too
    while True:
        try:
            changes = await read()
        except Exception as exc:
            if not unavailable(exc):
                raise
            if retry_at is None:
                log.warning("a progress stream waits: the database can't be reached (%s)", type(exc).__name__)
            retry_at, pause = loop.time() + pause, min(pause * 2, RETRY_MOST_S)
        else:
            pause, retry_at = RETRY_FIRST_S, None
            # A reconnected listener wakes every stream (publish_all): only a counter that moved is news.
            if changes != sent:
                sent = changes
                yield changes
                keep_alive_at = loop.time() + keep_alive_s
        while True:
            retrying = retry_at is not None and retry_at < keep_alive_at
            if await _heard(queue, (retry_at if retrying else keep_alive_at) - loop.time()) or retrying:
                break
            yield None
            keep_alive_at = loop.time() + keep_alive_s


async def _heard(queue: asyncio.Queue[int], seconds: float) -> bool:
    """Whether `queue` told of a change within `seconds`."""
    try:
        await asyncio.wait_for(queue.get(), max(seconds, 0.0))
    except TimeoutError:
        return False
    return True


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


async def listen(database_url: str, stop: asyncio.Event, *, connect_timeout_s: float = 60.0) -> None:
    """Feed the hub from PostgreSQL's NOTIFY until `stop`; reconnects when the connection drops. On SQLite there
    is nothing to hear: one process serves, and its commits tell its streams (`committed`)."""
    if make_url(database_url).get_backend_name() != "postgresql":
        return
    url = make_url(database_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)

    def heard(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            HUB.publish(int(payload))

    pause, failing = RETRY_FIRST_S, False
    while not stop.is_set():
        lost = asyncio.Event()
        connection = None
        try:
            connection = await asyncpg.connect(dsn, timeout=connect_timeout_s,
                                               server_settings={"application_name": LISTENER_NAME})
            connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
            await connection.add_listener(CHANNEL, heard)
        except (*UNREACHABLE, OSError, asyncpg.PostgresError) as exc:
            if connection is not None:
                connection.terminate()
            if not failing:  # one line an outage
                log.warning("the progress listener can't connect (%s); retrying", exc)
            failing = True
            await _wait(stop, pause)
            pause = min(pause * 2, RETRY_MOST_S)
            continue
        pause, failing = RETRY_FIRST_S, False
        # What changed while nobody listened was announced to nobody: every stream reads its counter again.
        HUB.publish_all()
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
