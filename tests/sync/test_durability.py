"""Sync survives a crash: an answered batch is committed, and a server killed mid-batch leaves nothing half-written.

The real server (uvicorn in a subprocess, on PostgreSQL) takes a stream of batches from a few phones at once and
is killed with SIGKILL mid-stream. Before it comes back, every batch is stored whole or not at all and the counters
agree with a rebuild; restarted, it takes every unanswered batch again, whole, and the stored knocks are then
exactly the knocks sent, each once.
"""

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.main import create_app
from app.organizing.models import TurfHolding
from app.scripts.service import STANDARD_RESULTS
from app.sync import service as sync_service
from app.sync.models import DoorKnock
from app.turfs.models import Turf
from tests.conftest import SECRET, db_session
from tests.factories import World
from tests.sync.helpers import HOME, counters, doors, hold, knock, now

UVICORN = Path(sys.executable).parent / "uvicorn"
BATCHES, KNOCKS_PER_BATCH, PHONES = 60, 50, 4
# Killed once this many batches are answered: well into the stream, with every phone still sending.
KILL_AFTER = 15
RESULTS = [r["code"] for r in STANDARD_RESULTS]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn serving the app from the database at `url`, as deployed; started, killed and restarted by a test."""

    def __init__(self, url: str, folder: Path, env: dict[str, str] | None = None) -> None:
        self.url = url
        self.folder = folder
        self.env = env or {}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = folder / "uvicorn.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it and wait until it answers; fails with its log if it dies or stays silent for 30 s."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOORSTEP_")}
        env |= {"DOORSTEP_DATABASE_URL": self.url, "DOORSTEP_JWT_SECRET": SECRET, **self.env}
        with self.log.open("ab") as log:
            # In a folder with no `.env`, so the environment above is all the settings it reads.
            self.proc = await asyncio.create_subprocess_exec(
                UVICORN, "app.main:app", "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
                cwd=self.folder, env=env, stdout=log, stderr=log)
        async with httpx.AsyncClient(base_url=self.base, timeout=2) as probe:
            for _ in range(300):
                if self.proc.returncode is not None:
                    break
                try:
                    if (await probe.get("/openapi.json")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        pytest.fail(f"uvicorn didn't come up (exit {self.proc.returncode}):\n{self.log.read_text()}")

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no rollback by the app, open connections cut."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class ServerHere(Server):
    """uvicorn serving the app on this process's event loop, over real sockets, its log (tracebacks and all) in
    `log`: what a test needs of a server but a process of its own, without the seconds a process takes to import
    the app."""

    async def start(self) -> None:
        settings = {name.removeprefix("DOORSTEP_").lower(): value for name, value in self.env.items()}
        app = create_app(Settings(database_url=self.url, jwt_secret=SECRET, _env_file=None, **settings))
        # log_config=None: uvicorn leaves logging as it is, and its records reach the handler below.
        self.uvicorn = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, access_log=False,
                                                     log_config=None, timeout_graceful_shutdown=5))
        self.handler = logging.FileHandler(self.log)
        logging.getLogger().addHandler(self.handler)
        self.task = asyncio.create_task(self.uvicorn.serve())
        while not self.uvicorn.started:
            if self.task.done():
                self._detach()
                pytest.fail(f"uvicorn didn't come up: {self.task.exception()!r}\n{self.log.read_text()}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.uvicorn.should_exit = True
        try:
            await self.task
        finally:
            self._detach()

    def _detach(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        self.handler.close()


@asynccontextmanager
async def serving(url: str, folder: Path, env: dict[str, str] | None = None, *,
                  process: bool = True) -> AsyncIterator[Server]:
    """uvicorn serving the database at `url`, with `env` (settings) beside its URL and secret: in a process of
    its own, or (unless `process`) on this event loop."""
    server = (Server if process else ServerHere)(url, folder, env)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def postgresql_only(backend: str) -> None:
    # Session-scoped and used first, so the SQLite leg skips before it loads the city for nothing.
    if backend == "sqlite":
        pytest.skip("the crash test runs uvicorn on PostgreSQL, as the issue asks")


def ids(body: dict[str, Any]) -> set[str]:
    return {k["id"] for k in body["knocks"]}


def statuses(answer: dict[str, Any]) -> set[str]:
    return {k["status"] for k in answer["knocks"]}


async def stored_ids(session: AsyncSession) -> list[str]:
    await session.rollback()
    return [str(i) for i in (await session.execute(select(DoorKnock.id))).scalars()]


async def counters_agree_with_a_rebuild(session: AsyncSession, campaign_id: int) -> dict[str, Any]:
    """The counters sync kept, asserted equal to those rebuilt from the stored knocks."""
    kept = await counters(session)
    await sync_service.rebuild_progress(session, campaign_id)
    assert await counters(session) == kept
    return kept


async def writer_waiting_on(watch: AsyncSession, pid: int) -> None:
    """Wait until a transaction that has written rows (it has an xid) waits on a lock held by backend `pid`."""
    for _ in range(200):
        # pg_stat_activity is read once per transaction: each look is a new one.
        await watch.rollback()
        if await watch.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid)) "
                                   "AND backend_xid IS NOT NULL"), {"pid": pid}):
            return
        await asyncio.sleep(0.05)
    pytest.fail("no sync transaction that had written came to wait on the held row within 10 s")


async def dead_connections_gone(session: AsyncSession) -> None:
    """Wait until PostgreSQL has dropped the killed server's connections: none can commit anything after."""
    for _ in range(200):
        await session.rollback()
        others = await session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                           "AND pid <> pg_backend_pid()"))
        if others == 0:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{others} connections of the killed server still open after 10 s")


async def send_queue(client: httpx.AsyncClient, headers: dict[str, str], batches: list[dict[str, Any]],
                     queue: list[int], answers: dict[int, dict[str, Any]], *, retry: bool = False,
                     on_answer: Callable[[], None] | None = None) -> int | None:
    """Send one phone's batches in order, as a phone does; the one that got no answer (it stops there), if any.

    With `retry`, a batch that gets no answer is sent again (whole, same ids) until it is answered.
    """
    for i in queue:
        for attempt in range(50 if retry else 1):
            try:
                # A phone stamps each upload when it goes, retries included; the knocks are as it made them.
                r = await client.post(f"{HOME}/sync", json={**batches[i], "sent_at": now().isoformat()},
                                      headers=headers)
                break
            except httpx.TransportError:
                if not retry:
                    return i
                await asyncio.sleep(0.1 * (attempt + 1))
        else:
            pytest.fail(f"batch {i} was never answered")
        assert r.status_code == 200, r.text
        answers[i] = r.json()
        if on_answer is not None:
            on_answer()
    return None


class TestCrash:
    @pytest.mark.usefixtures("postgresql_only")
    async def test_a_server_killed_mid_stream_loses_no_answered_batch_and_half_writes_none(
            self, cut_db_url: str, world: World, tmp_path: Path) -> None:
        headers = world.headers("canvasser")
        async with serving(cut_db_url, tmp_path) as server:
            async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
                walk = await hold(client, world)
            # Made in the last minute, a millisecond apart (no two knocks at a door tie), spread over the turf's doors.
            start = now() - timedelta(minutes=1)
            batches = [{"device_id": f"phone-{b % PHONES}", "batch_id": f"batch-{b}", "knocks": [
                knock(walk, j % len(doors(walk)), RESULTS[j % len(RESULTS)], at=start + timedelta(milliseconds=j))
                for j in range(b * KNOCKS_PER_BATCH, (b + 1) * KNOCKS_PER_BATCH)]} for b in range(BATCHES)]
            sent = set().union(*map(ids, batches))
            assert len(sent) == BATCHES * KNOCKS_PER_BATCH
            queues = [list(range(p, BATCHES, PHONES)) for p in range(PHONES)]

            # The stream. Once KILL_AFTER batches are answered the canvasser's holding row is held, so the batch being
            # stored stops at its last write (moving the holding's last activity), everything else written but not
            # committed: the kill lands there, for certain.
            answered: dict[int, dict[str, Any]] = {}
            enough = asyncio.Event()

            def count_answer() -> None:
                if len(answered) >= KILL_AFTER:
                    enough.set()

            async with db_session(cut_db_url) as watch:
                async with httpx.AsyncClient(base_url=server.base, timeout=30) as client, \
                        db_session(cut_db_url) as blocker:
                    phones = [asyncio.create_task(send_queue(client, headers, batches, q, answered,
                                                             on_answer=count_answer)) for q in queues]
                    await asyncio.wait_for(enough.wait(), timeout=30)
                    # FOR NO KEY UPDATE: stops the holding's update, not the foreign key checks on the way.
                    await blocker.execute(select(TurfHolding.id).where(
                        TurfHolding.turf_id == walk["turf"]["id"], TurfHolding.user_id == world.users["canvasser"])
                        .with_for_update(key_share=True))
                    await writer_waiting_on(watch, await blocker.scalar(text("SELECT pg_backend_pid()")))
                    await server.kill()
                    await blocker.rollback()
                    cut_off = [i for i in await asyncio.gather(*phones) if i is not None]
                assert cut_off, "no batch was in flight when the server died"
                assert len(answered) < BATCHES
                for i, answer in answered.items():
                    assert answer["accepted"] == KNOCKS_PER_BATCH and ids(answer) == ids(batches[i]), answer

                # Down: each batch stored whole or not at all, the answered ones whole, counters as a rebuild has them.
                await dead_connections_gone(watch)
                campaign_id = (await watch.get(Turf, walk["turf"]["id"])).campaign_id
                at_crash = set(await stored_ids(watch))
                whole = {i for i, b in enumerate(batches) if ids(b) <= at_crash}
                assert all(ids(b).isdisjoint(at_crash) for i, b in enumerate(batches) if i not in whole)
                assert set(answered) <= whole and at_crash == set().union(*(ids(batches[i]) for i in whole))
                # The batch caught half-written is one of those cut off, and left nothing.
                assert any(i not in whole for i in cut_off), (cut_off, sorted(whole))
                await counters_agree_with_a_rebuild(watch, campaign_id)

            # Back up on the same database: each phone resends what got no answer, whole, in order.
            await server.start()
            retried: dict[int, dict[str, Any]] = {}
            async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
                await asyncio.gather(*(send_queue(client, headers, batches, [i for i in q if i not in answered],
                                                  retried, retry=True) for q in queues))
        assert set(retried) == set(range(BATCHES)) - set(answered)
        for i, answer in retried.items():
            # Stored before the crash: all duplicates; lost with it: all accepted now. Never a mix.
            assert statuses(answer) == ({"duplicate"} if i in whole else {"accepted"}), (i, answer)

        async with db_session(cut_db_url) as session:
            rows = await stored_ids(session)
            # Each knock once: every id sent, no other, none twice.
            assert set(rows) == sent and len(rows) == len(sent)
            assert set().union(*(ids(batches[i]) for i in answered)) <= set(rows)
            kept = await counters_agree_with_a_rebuild(session, campaign_id)
            assert sum(t[1] for t in kept["turfs"]) == len(sent)


# A database of its own: servers in processes of their own, killed mid-stream.
pytestmark = pytest.mark.own_database
