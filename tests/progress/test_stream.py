"""Live progress over Server-Sent Events, from real uvicorn processes: on PostgreSQL a sync through one process
reaches a stream served by another within a second (LISTEN/NOTIFY); on SQLite, within the one process."""

import asyncio
import time
from contextlib import AsyncExitStack

import httpx
import orjson
import pytest

from tests.sync.helpers import HOME, batch, hold, knock
from tests.sync.test_durability import serving

STREAM = f"{HOME}/progress/stream"


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

    async def test_who_may_stream(self, cut_client, world):
        # Refusals answer before any stream starts (in process: the ASGI transport can't hold a stream open; the
        # organizer's stream above is the success).
        assert (await cut_client.get(STREAM, headers=world.headers("key_all"), params={"event": "x"})).status_code \
            == 422
        assert (await cut_client.get(STREAM, headers=world.headers("canvasser"))).status_code == 403
        assert (await cut_client.get(STREAM, headers=world.headers("host"))).status_code == 403
        assert (await cut_client.get(STREAM, headers=world.headers("foreign_key"))).status_code == 404
        assert (await cut_client.get(STREAM)).status_code == 401


# A database of its own: streams hear of commits (LISTEN/NOTIFY) from real servers.
pytestmark = pytest.mark.own_database
