"""Live progress over Server-Sent Events, from real uvicorn processes: on PostgreSQL a sync through one process
reaches a stream served by another within a second (LISTEN/NOTIFY); on SQLite, within the one process. A stream
outlives the database connections going away, and misses no change made meanwhile."""

import asyncio
import contextlib
import time
from contextlib import AsyncExitStack

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy.engine import make_url

from app.progress import live
from app.progress.live import CHANNEL, LISTENER_NAME
from tests.sync.helpers import HOME, batch, hold, knock
from tests.sync.test_durability import serving

STREAM = f"{HOME}/progress/stream"


@pytest.fixture(scope="session")
def postgresql_only(backend: str) -> None:
    # Session-scoped and used first, so the SQLite leg skips before it loads the city for nothing.
    if backend == "sqlite":
        pytest.skip("a database that drops its connections is PostgreSQL's case: SQLite is a file in the process")


# Ends the server's connections to the test's database (`$1`: only those of that application name), sparing the
# test's own and backend `$2`; answers the application names of those ended, once each is gone. As a restart
# does to the app, while the shared PostgreSQL runs on for the other tests.
END_CONNECTIONS = """
WITH them AS MATERIALIZED (
  SELECT pid, application_name FROM pg_stat_activity
  WHERE datname = current_database() AND pid NOT IN (pg_backend_pid(), $2)
    AND ($1::text IS NULL OR application_name = $1))
SELECT application_name FROM them WHERE pg_terminate_backend(pid, 5000)"""
# A change as the app announces it (app/progress/live.py): the counter moved on, and NOTIFY at commit.
CHANGE = """
WITH moved AS (UPDATE campaign SET changes = changes + 1 WHERE slug = $1 RETURNING id, changes)
SELECT id, changes, pg_notify($2, CAST(id AS text)) FROM moved"""


async def until(check, what: str, within: float = 5.0) -> None:
    """Wait until `check()` is true; fails naming `what` after `within` seconds."""
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{what} within {within} s")


async def logged(server, line: str) -> bool:
    return line in server.log.read_text()


async def next_event(lines, within: float = 5.0) -> dict:
    """The next `progress` event's data, skipping keep-alive comments."""
    async def read() -> dict:
        event = None
        async for line in lines:
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "progress":
                return orjson.loads(line.split(":", 1)[1])
        raise AssertionError("the stream ended")
    return await asyncio.wait_for(read(), within)


class TestStream:
    async def test_a_sync_through_one_worker_reaches_a_stream_on_another_within_a_second(
            self, backend, cut_db_url, world, tmp_path):
        folders = [tmp_path / "writer", tmp_path / "reader"]
        for folder in folders:
            folder.mkdir()
        async with AsyncExitStack() as stack:
            writer = await stack.enter_async_context(serving(cut_db_url, folders[0]))
            # SQLite is served by one process: the stream and the sync share it.
            reader = (await stack.enter_async_context(serving(cut_db_url, folders[1]))
                      if backend == "postgresql" else writer)
            assert backend == "sqlite" or reader.port != writer.port
            sender = await stack.enter_async_context(httpx.AsyncClient(base_url=writer.base, timeout=10))
            listener = await stack.enter_async_context(httpx.AsyncClient(base_url=reader.base, timeout=10))
            response = await stack.enter_async_context(listener.stream("GET", STREAM,
                                                                       headers=world.headers("organizer")))
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            # First how long to wait before reconnecting, should the stream end (a restart, a lost network).
            assert await asyncio.wait_for(anext(lines), 5) == "retry: 5000"
            first = await next_event(lines)

            walk = await hold(sender, world)  # an assignment: progress changes (who holds what)
            assigned = await next_event(lines)
            assert assigned["changes"] > first["changes"]

            body = batch([knock(walk, 0, "contacted")])
            answer = await sender.post(f"{HOME}/sync", json=body, headers=world.headers("canvasser"))
            answered = time.monotonic()
            assert answer.json()["accepted"] == 1
            synced = await next_event(lines, within=1.0)
            assert synced["changes"] > assigned["changes"] and time.monotonic() - answered < 1.0

            # A resent batch changes nothing: no event (the stream stays quiet past a second).
            await sender.post(f"{HOME}/sync", json=body, headers=world.headers("canvasser"))
            try:
                quiet = await next_event(lines, within=1.5)
            except TimeoutError:
                quiet = None
            assert quiet is None

    @pytest.mark.usefixtures("postgresql_only")
    async def test_a_stream_outlives_its_database_connections_and_misses_no_change(self, cut_db_url, world,
                                                                                   tmp_path):
        dsn = make_url(cut_db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(asyncio.timeout(60))
            server = await stack.enter_async_context(serving(cut_db_url, tmp_path))
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=server.base, timeout=10))
            walk = await hold(client, world)  # before the stream: its assignment is not news to it
            response = await stack.enter_async_context(client.stream("GET", STREAM,
                                                                     headers=world.headers("organizer")))
            lines = response.aiter_lines()
            assert await asyncio.wait_for(anext(lines), 5) == "retry: 5000"
            first = await next_event(lines)
            watcher, locker = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
            stack.push_async_callback(watcher.close)
            stack.push_async_callback(locker.close)
            spare = locker.get_server_pid()

            # The listener's connection ends and it can't connect again (the database takes no new connections)
            # while a change commits: its NOTIFY reaches nobody. Back, the listener has the stream look again.
            database = make_url(cut_db_url).database
            gate = await asyncpg.connect(make_url(dsn).set(database="postgres").render_as_string(hide_password=False))
            stack.push_async_callback(gate.close)
            await gate.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            try:
                assert await watcher.fetch(END_CONNECTIONS, LISTENER_NAME, spare)
                await until(lambda: logged(server, "the progress listener can't connect"), "the listener never left")
                unheard = await watcher.fetchrow(CHANGE, "cambridge", CHANNEL)
            finally:
                await gate.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            assert (await next_event(lines))["changes"] == unheard["changes"] > first["changes"]

            # Every connection of the server ends (its pool's, the listener's) while the stream reads the counter
            # (held up by a lock, to be sure of it), as in a restart: the stream says so in a line and reads again
            # once it can; then a sync reaches it.
            async with locker.transaction():
                await locker.execute("LOCK TABLE campaign IN ACCESS EXCLUSIVE MODE")
                await watcher.execute("SELECT pg_notify($1, $2)", CHANNEL, str(unheard["id"]))
                await until(lambda: watcher.fetchval(
                    "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"), "the stream never read the counter")
                ended = [r["application_name"] for r in await watcher.fetch(END_CONNECTIONS, None, spare)]
                assert LISTENER_NAME in ended and len(ended) >= 2, ended
                await until(lambda: logged(server, "a progress stream waits: the database can't be reached"),
                            "the stream logged no outage")
            body = batch([knock(walk, 0, "contacted")])
            for _ in range(20):  # a phone retries a 503 (a dead pooled connection), as told
                answer = await client.post(f"{HOME}/sync", json=body, headers=world.headers("canvasser"))
                if answer.status_code != 503:
                    break
                await asyncio.sleep(0.25)
            assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
            assert (await next_event(lines))["changes"] > unheard["changes"]
            log = server.log.read_text()
        assert "Traceback" not in log, log

    async def test_a_caller_holds_so_many_streams_and_a_revoked_key_loses_its_own(self, cut_db_url, world, tmp_path):
        """Streams are counted per caller (429 past the setting, with when to try again; another caller is not
        held up), and each checks its caller again as it goes: a revoked key's streams end, and its next is 401.
        Whatever ended them, and HEADs, leave no subscription behind."""
        settings = {"DOORSTEP_STREAMS_PER_CALLER": "2", "DOORSTEP_STREAM_KEEP_ALIVE_S": "0.3"}
        key, organizer = world.headers("key_all"), world.headers("organizer")
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(asyncio.timeout(60))
            server = await stack.enter_async_context(serving(cut_db_url, tmp_path, settings, process=False))
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=server.base, timeout=10))
            streams = []
            for _ in range(2):
                response = await stack.enter_async_context(client.stream("GET", STREAM, headers=key))
                lines = response.aiter_lines()
                assert await anext(lines) == "retry: 5000"
                await next_event(lines)
                streams.append(lines)
            refused = await client.get(STREAM, headers=key)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "5", refused.text
            assert refused.json()["type"] == "/problems/rate-limited" and "2 progress streams" in refused.text
            for _ in range(3):  # a HEAD is no stream: not counted, nothing left behind
                assert (await client.head(STREAM, headers=organizer)).status_code == 200
            response = await stack.enter_async_context(client.stream("GET", STREAM, headers=organizer))
            assert response.status_code == 200, "another caller is not held up"
            assert sorted(live.HUB.open.values()) == [1, 2]

            revoked = await client.delete(f"{HOME}/api-keys/{world.key_ids['key_all']}",
                                          headers=world.headers("admin"))
            assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
            for lines in streams:
                async def ends(lines=lines) -> None:
                    async for _ in lines:
                        pass
                await asyncio.wait_for(ends(), 5)
            assert (await client.get(STREAM, headers=key)).status_code == 401
            assert list(live.HUB.open.values()) == [1], "the key's streams are gone from the count"
        assert not live.HUB.open and not live.HUB.queues
        assert "Traceback" not in server.log.read_text()

    async def test_who_may_stream(self, cut_client, world):
        # Refusals answer before any stream starts (in process: the ASGI transport can't hold a stream open; the
        # organizer's stream above is the success).
        assert (await cut_client.get(STREAM, headers=world.headers("key_all"), params={"event": "x"})).status_code \
            == 422
        assert (await cut_client.get(STREAM, headers=world.headers("canvasser"))).status_code == 403
        assert (await cut_client.get(STREAM, headers=world.headers("host"))).status_code == 403
        assert (await cut_client.get(STREAM, headers=world.headers("foreign_key"))).status_code == 404
        assert (await cut_client.get(STREAM)).status_code == 401


class TestWatch:
    """A stream's loop (live.watch) against a reader that fails as a database out of reach does."""

    async def test_an_outage_keeps_the_keep_alives_and_the_counter_comes_once_it_reads(self, caplog):
        db = {"changes": 1, "down": False, "reads": 0}

        async def read() -> int:
            db["reads"] += 1
            if db["down"]:
                raise ConnectionResetError("Connection reset by peer")
            return db["changes"]
        queue: asyncio.Queue[int] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        # A beat longer than the first retries, so reads come between keep-alives.
        async with contextlib.aclosing(live.watch(read, queue, keep_alive_s=0.7)) as stream:
            assert await anext(stream) == 1
            began = loop.time()
            db["down"] = True
            queue.put_nowait(1)  # a change heard, and the read fails
            assert await anext(stream) is None
            assert loop.time() - began < 1.0, "the keep-alive on its beat, whatever the retries"
            db.update(changes=2, down=False)
            seen = []
            while not seen or seen[-1] is None:
                seen.append(await asyncio.wait_for(anext(stream), 6))
            assert seen[-1] == 2
            assert db["reads"] <= 5, "read again with backoff, not in a loop"
            # Woken with nothing new (a reconnected listener wakes every stream): no event, only the beat.
            queue.put_nowait(1)
            assert await anext(stream) is None
        assert [r.getMessage() for r in caplog.records if r.name == "doorstep"] == [
            "a progress stream waits: the database can't be reached (ConnectionResetError)"]

    async def test_the_streams_of_a_campaign_share_one_read_of_its_counter(self):
        hub, reads = live.Hub(), []

        async def read() -> int:
            reads.append(1)
            await asyncio.sleep(0.05)
            return len(reads)
        waiting = [asyncio.ensure_future(hub.counter(1, read)) for _ in range(50)]
        waiting[0].cancel()  # a stream that goes away mid-read: the others still get theirs
        done = await asyncio.gather(*waiting, return_exceptions=True)
        assert isinstance(done[0], asyncio.CancelledError) and done[1:] == [1] * 49 and len(reads) == 1
        assert await hub.counter(1, read) == 2 and not hub.reading, "the next change is read anew"

    async def test_an_error_that_is_no_outage_ends_it(self):
        async def read() -> int:
            raise ValueError("a bug")
        with pytest.raises(ValueError, match="a bug"):
            await anext(live.watch(read, asyncio.Queue(), keep_alive_s=0.1))


# A database of its own: streams hear of commits (LISTEN/NOTIFY) from real servers.
pytestmark = pytest.mark.own_database
