"""Webhooks against a real receiver on 127.0.0.1: signed deliveries of knock.accepted, turf.completed and
turf.assigned, retried with backoff while the receiver fails, and never in the way of the sync that caused them."""

import asyncio
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
import uvicorn
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.webhooks.models import WebhookDelivery
from tests.conftest import app_client
from tests.sync.helpers import HOME, batch, doors, knock, send
from tests.sync.test_durability import free_port
from tests.test_errors import assert_problem

# The receiver is on loopback, so private targets are allowed here (tests/webhooks/test_ssrf.py: not by default).
FAST = {"webhook_poll_s": 0.05, "webhook_backoff_s": 0.05, "webhook_allow_private_targets": True}


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and fails the first `failures` with a 500."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"

    async def hook(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        return Response(status_code=500 if len(self.requests) <= self.failures else 204)

    def delivered(self, event: str) -> list[dict]:
        return [orjson.loads(body) for headers, body in self.requests if headers["x-doorstep-event"] == event]


@asynccontextmanager
async def receiving(failures: int = 0) -> AsyncIterator[Receiver]:
    receiver = Receiver(failures)
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])]),
                                           host="127.0.0.1", port=receiver.port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn's Server has no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task


async def until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def small_turf(client, world) -> dict:
    """Assign the canvasser the turf with the fewest doors (two or more), and return its walk list."""
    turfs = (await client.get(f"{HOME}/turfs", params={"limit": 1000}, headers=world.headers("organizer"))).json()
    turf = min((t for t in turfs["items"] if t["doors"] >= 2), key=lambda t: t["doors"])
    r = await client.post(f"{HOME}/turfs/{turf['id']}/assignments", json={"user_ids": [str(world.users["canvasser"])]},
                          headers=world.headers("organizer"))
    assert r.status_code == 201, r.text
    return (await client.get(f"{HOME}/turfs/{turf['id']}/walklist", headers=world.headers("canvasser"))).json()


class TestDeliveries:
    async def test_events_are_signed_and_retried_while_the_receiver_fails(self, cut_db_url, cut_session, world):
        async with receiving(failures=2) as receiver, app_client(cut_db_url, **FAST) as client:
            made = await client.post(f"{HOME}/webhooks", json={
                "url": receiver.url, "events": ["knock.accepted", "turf.completed", "turf.assigned"]},
                headers=world.headers("key_all"))
            assert made.status_code == 201, made.text
            secret = made.json()["secret"]

            walk = await small_turf(client, world)
            knocks = [knock(walk, i, "contacted" if i == 0 else "not_home") for i in range(len(doors(walk)))]
            started = time.monotonic()
            answer = await send(client, world, batch(knocks))
            # The sync is answered at once, whatever the receiver does.
            assert answer.json()["accepted"] == len(knocks) and time.monotonic() - started < 2.0

            await until(lambda: len({h["x-doorstep-event"] for h, _ in receiver.requests[2:]}) == 3)
            assigned = receiver.delivered("turf.assigned")
            assert assigned[-1]["turf_id"] == walk["turf"]["id"] and assigned[-1]["action"] == "assigned"
            accepted = receiver.delivered("knock.accepted")[-1]
            assert [k["id"] for k in accepted["knocks"]] == [k["id"] for k in knocks]
            assert "person_name" not in orjson.dumps(accepted).decode()
            assert receiver.delivered("turf.completed")[-1]["turf"]["id"] == walk["turf"]["id"]

            # Every request is signed: HMAC-SHA256 of "<timestamp>.<body>" with the webhook's secret.
            for headers, body in receiver.requests:
                expected = hmac.new(secret.encode(), headers["x-doorstep-timestamp"].encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
                assert headers["x-doorstep-signature"] == f"sha256={expected}"
            # What failed was sent again under the same delivery id until delivered, and the ledger says so (once
            # the worker has recorded the last answers: it writes them after the receiver has answered).
            async def ledger_of() -> dict[str, dict]:
                return {d["id"]: d for d in (await client.get(f"{HOME}/webhooks/{made.json()['id']}/deliveries",
                                                              headers=world.headers("key_all"))).json()}
            deadline = time.monotonic() + 10
            ledger = await ledger_of()
            while not all(d["delivered_at"] for d in ledger.values()):
                assert time.monotonic() < deadline, ledger
                await asyncio.sleep(0.05)
                ledger = await ledger_of()
            received = Counter(h["x-doorstep-delivery"] for h, _ in receiver.requests)
            failed = {h["x-doorstep-delivery"] for h, _ in receiver.requests[:2]}
            assert set(ledger) == set(received) and len(ledger) == 3
            for delivery in failed:
                row = ledger[delivery]
                assert received[delivery] >= 2 and row["attempts"] == received[delivery]
                assert row["delivered_at"] and row["last_status"] == 204

    async def test_a_dead_receiver_is_given_up_after_its_attempts_and_syncs_go_on(self, cut_db_url, cut_session,
                                                                                 world):
        dead = f"http://127.0.0.1:{free_port()}/hook"
        async with app_client(cut_db_url, webhook_max_attempts=3, **FAST) as client:
            made = (await client.post(f"{HOME}/webhooks", json={"url": dead, "events": ["knock.accepted"]},
                                      headers=world.headers("admin"))).json()
            walk = await small_turf(client, world)
            for i in range(2):
                assert (await send(client, world, batch([knock(walk, i)]))).json()["accepted"] == 1

            async def given_up() -> list:
                await cut_session.rollback()
                return list((await cut_session.execute(select(WebhookDelivery).where(
                    WebhookDelivery.failed_at.is_not(None)))).scalars())
            deadline = time.monotonic() + 10
            while len(failed := await given_up()) < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            assert all(d.attempts == 3 and d.next_attempt_at is None and d.delivered_at is None for d in failed)
            assert all(d.last_error == "refused" and d.last_status is None for d in failed)
            listed = (await client.get(f"{HOME}/webhooks", headers=world.headers("admin"))).json()
            assert [w["id"] for w in listed] == [made["id"]] and "secret" not in listed[0]
            assert (await client.delete(f"{HOME}/webhooks/{made['id']}",
                                        headers=world.headers("admin"))).status_code == 204
            assert (await client.get(f"{HOME}/webhooks", headers=world.headers("admin"))).json() == []

    async def test_bad_registrations_name_their_field(self, cut_client, world):
        h = world.headers("key_all")
        body = assert_problem(await cut_client.post(f"{HOME}/webhooks", json={
            "url": "ftp://example.org/x", "events": ["knock.accepted"]}, headers=h), 422)
        assert [e["field"] for e in body["errors"]] == ["url"]
        body = assert_problem(await cut_client.post(f"{HOME}/webhooks", json={
            "url": "https://example.org/x", "events": ["knock.deleted"]}, headers=h), 422)
        assert [e["field"] for e in body["errors"]] == ["events"]
        assert_problem(await cut_client.post(f"{HOME}/webhooks", json={
            "url": "https://example.org/x", "events": ["knock.accepted"]}, headers=world.headers("key_progress")), 403)


# A database of its own: the webhook worker delivers in the background.
pytestmark = pytest.mark.own_database
