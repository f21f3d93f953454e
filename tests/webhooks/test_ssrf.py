"""Webhooks reach only the public internet: loopback, private and other non-global targets are refused at
registration in every spelling, and again at delivery on the address connected to (a name that resolves elsewhere
since), and a delivery records the status or a short class of failure, never the library's words."""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from app.campaigns.models import Campaign
from app.db import utcnow
from app.webhooks.models import Webhook, WebhookDelivery
from app.webhooks.targets import FAILURES
from tests.conftest import app_client
from tests.factories import HOME as SLUG
from tests.sync.helpers import HOME
from tests.sync.test_durability import free_port
from tests.test_errors import assert_problem
from tests.webhooks.test_webhooks import FAST, receiving, small_turf, until

EVENTS = ["turf.assigned"]


def fullwidth(text: str) -> str:
    """`text` in full-width forms (U+FF01 to U+FF5E), which IDNA maps back to ASCII."""
    return text.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})


FULL_127 = fullwidth("127.0.0.1")
# Every spelling of a loopback, private or otherwise non-global target: the OS resolver reads the odd IPv4 forms
# (inet_aton), so they are caught by checking what it resolves them to.
LOOPBACK_V4 = ["http://127.0.0.1/hook", "http://127.1/hook", "http://2130706433/hook", "http://0x7f000001/hook",
               "http://0x7f.1/hook", "http://0177.0.0.1/hook", "http://017700000001/hook", "http://127.255.255.254:8080/",
               "https://127.0.0.1:443/"]
OTHER_V4 = ["http://0/", "http://0.0.0.0/", "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://224.0.0.1/",
            "http://240.0.0.1/", "http://255.255.255.255/", "http://192.0.0.8/", "http://198.18.0.1/",
            "http://0xa9fea9fe/", "http://192.168.1/"]
V6 = ["http://[::1]/", "http://[::]/", "http://[0:0:0:0:0:0:0:1]/", "http://[::ffff:127.0.0.1]/",
      "http://[::ffff:7f00:1]/", "http://[::ffff:a9fe:a9fe]/", "http://[::127.0.0.1]/", "http://[2002:7f00:1::]/",
      "http://[2002:c0a8:101::1]/", "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::a00:1]/",
      "http://[fe80::1%25eth0]/", "http://[fe80::1]/", "http://[fc00::1]/", "http://[fd12:3456::1]/",
      "http://[fec0::1]/", "http://[ff02::1]/", "http://[2001:db8::1]/", "http://[2001::1]/", "http://[3fff::1]/",
      "http://[64:ff9b:1::a00:1]/"]
SAID = {"http://2130706433/hook": "2130706433 resolves to 127.0.0.1, not an address on the public internet",
        "http://0x7f.1/hook": "0x7f.1 resolves to 127.0.0.1, not an address on the public internet",
        "http://127.1/hook": "127.1 resolves to 127.0.0.1, not an address on the public internet",
        "http://[::ffff:7f00:1]/": "::ffff:7f00:1 is not an address on the public internet",
        "http://no-such-host.invalid/": "no-such-host.invalid does not resolve",
        "http://Bücher.invalid/": "xn--bcher-kva.invalid does not resolve",  # resolved as IDNA writes it
        "http://ⓛocalhost/": "localhost names this machine, not a host on the public internet",
        f"http://{FULL_127}/": "127.0.0.1 is not an address on the public internet"}
NAMES = ["http://localhost/", "http://LOCALHOST:8000/", "http://localhost./", "http://localhost../",
         "http://api.localhost/", "http://a.b.localhost./", "http://ⓛocalhost/", f"http://{fullwidth('LOCALHOST')}/",
         "http://localhost。/", f"http://{FULL_127}/", "http://no-such-host.invalid/",
         "http://Bücher.invalid/"]
FORMS = ["http://user:pass@example.org/", "http://user@8.8.8.8/", "http://@8.8.8.8/", "http://8.8.8.8\\@127.0.0.1/",
         "http://127.0.0.1:80@8.8.8.8/", "ftp://8.8.8.8/", "file:///etc/passwd", "gopher://8.8.8.8:25/",
         "http:///hook", "http://[::1/", "javascript:alert(1)"]


async def webhook_count(session) -> int:
    await session.rollback()
    return await session.scalar(select(func.count()).select_from(Webhook)) or 0


async def refused(client, world, urls: list[str]) -> dict[str, str]:
    """POST each URL; each must be a 422 naming `url`. Their messages, by URL."""
    out = {}
    for url in urls:
        r = await client.post(f"{HOME}/webhooks", json={"url": url, "events": EVENTS}, headers=world.headers("admin"))
        body = assert_problem(r, 422)
        assert [e["field"] for e in body["errors"]] == ["url"], (url, body)
        out[url] = body["errors"][0]["message"]
    return out


class TestRegistration:
    @pytest.mark.parametrize("urls", [LOOPBACK_V4, OTHER_V4, V6, NAMES], ids=["loopback-v4", "other-v4", "v6", "names"])
    async def test_every_spelling_of_a_non_public_target_is_refused(self, db_url, session, world, urls):
        async with app_client(db_url) as client:
            messages = await refused(client, world, urls)
        assert await webhook_count(session) == 0
        # The problem says what the host is or resolved to, so a surprised admin sees why.
        for url, said in SAID.items():
            if url in messages:
                assert messages[url] == said, url

    async def test_urls_with_a_user_or_not_http_are_refused_even_when_private_targets_are_allowed(
            self, db_url, session, world):
        async with app_client(db_url, webhook_allow_private_targets=True) as client:
            messages = await refused(client, world, FORMS)
        assert await webhook_count(session) == 0
        assert messages["http://user:pass@example.org/"] == "a URL without a user name or password"
        assert messages["http://8.8.8.8\\@127.0.0.1/"] == "a URL without a user name or password"
        assert messages["ftp://8.8.8.8/"] == "an http or https URL"

    async def test_public_addresses_are_taken_and_private_ones_only_when_allowed(self, db_url, session, world):
        public = ["https://8.8.8.8/hook", "http://[2606:4700:4700::1111]:8443/x", "http://[64:ff9b::808:808]/"]
        async with app_client(db_url) as client:
            for url in public:
                r = await client.post(f"{HOME}/webhooks", json={"url": url, "events": EVENTS},
                                      headers=world.headers("admin"))
                assert r.status_code == 201, r.text
                assert r.json()["url"] == url
        async with app_client(db_url, webhook_allow_private_targets=True) as client:
            for url in ["http://localhost:8000/hook", "http://127.1/", "http://[::1]/", "http://10.1.2.3/"]:
                r = await client.post(f"{HOME}/webhooks", json={"url": url, "events": EVENTS},
                                      headers=world.headers("admin"))
                assert r.status_code == 201, r.text
            # Allowed private is still not multicast, unspecified or reserved: they name no receiver.
            await refused(client, world, ["http://0.0.0.0/", "http://[ff02::1]/", "http://240.0.0.1/"])
        await session.rollback()
        assert set((await session.execute(select(Webhook.url))).scalars()) == {
            *public, "http://localhost:8000/hook", "http://127.1/", "http://[::1]/", "http://10.1.2.3/"}


async def campaign_id(session) -> int:
    await session.rollback()
    return await session.scalar(select(Campaign.id).where(Campaign.slug == SLUG))


async def add_hook(session, url: str) -> None:
    """A webhook written straight into the database, as if its name had resolved elsewhere when registered."""
    session.add(Webhook(campaign_id=await campaign_id(session), url=url, events="turf.assigned",
                        secret=secrets.token_hex(32)))
    await session.commit()


async def ledgers(client, world) -> dict[str, list[dict]]:
    """Each webhook's deliveries, by URL."""
    hooks = (await client.get(f"{HOME}/webhooks", headers=world.headers("admin"))).json()
    return {h["url"]: (await client.get(f"{HOME}/webhooks/{h['id']}/deliveries", headers=world.headers("admin"))
                       ).json() for h in hooks}


async def settled(client, world) -> dict[str, list[dict]]:
    """The ledgers once every webhook has a delivery and each is delivered or given up."""
    deadline = time.monotonic() + 15
    while True:
        found = await ledgers(client, world)
        if all(found.values()) and all(d["delivered_at"] or d["failed_at"] for ds in found.values() for d in ds):
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)


@asynccontextmanager
async def tcp_server(handler) -> AsyncIterator[str]:
    """A raw TCP server on 127.0.0.1 running `handler(reader, writer)`; yields its host:port."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


class TestDelivery:
    @pytest.mark.own_database  # the webhook worker delivers in the background
    async def test_a_name_resolving_to_loopback_at_delivery_is_blocked_and_never_contacted(
            self, cut_db_url, cut_session, world):
        async with receiving() as receiver:
            port = receiver.port
            urls = [f"http://localhost:{port}/hook", f"http://2130706433:{port}/hook",
                    f"http://[::ffff:127.0.0.1]:{port}/hook", f"http://127.0.0.1:{port}/hook"]
            for url in urls:
                await add_hook(cut_session, url)
            async with app_client(cut_db_url, webhook_max_attempts=1, **{**FAST,
                                  "webhook_allow_private_targets": False}) as client:
                await small_turf(client, world)
                found = await settled(client, world)
            assert receiver.requests == []
        assert set(found) == set(urls)
        for url, deliveries in found.items():
            assert [(d["event"], d["attempts"], d["last_status"], d["last_error"], d["delivered_at"])
                    for d in deliveries] == [("turf.assigned", 1, None, "blocked", None)], url
        await cut_session.rollback()
        rows = (await cut_session.execute(select(WebhookDelivery))).scalars().all()
        assert len(rows) == 4 and {r.last_error for r in rows} == {"blocked"}
        assert all(r.failed_at is not None and r.next_attempt_at is None for r in rows)

    @pytest.mark.own_database  # the webhook worker delivers in the background
    async def test_failures_are_recorded_by_class_not_by_message(self, cut_db_url, cut_session, world):
        async def silent(reader, writer) -> None:
            await reader.read()  # never answers, until the sender hangs up
            writer.close()

        async def garbage(reader, writer) -> None:
            await reader.read(100)
            writer.write(b"hello, this is not HTTP\r\n\r\n")
            await writer.drain()
            writer.close()

        closed = f"http://127.0.0.1:{free_port()}/hook"
        async with receiving() as receiver, tcp_server(silent) as quiet, tcp_server(garbage) as babbler, \
                app_client(cut_db_url, webhook_max_attempts=1, webhook_timeout_s=0.5, **FAST) as client:
            expected = {closed: "refused", f"http://{quiet}/hook": "timed out",
                        f"https://127.0.0.1:{receiver.port}/hook": "tls",  # TLS spoken to plain HTTP
                        f"http://{babbler}/hook": "protocol",
                        f"http://localhost:{receiver.port}/hook": None}
            for url in expected:
                made = await client.post(f"{HOME}/webhooks", json={"url": url, "events": EVENTS},
                                         headers=world.headers("admin"))
                assert made.status_code == 201, made.text
            # A user in the URL, written straight into the database: still never sent, private targets or not.
            with_user = f"http://doorstep:secret@127.0.0.1:{receiver.port}/hook"
            await add_hook(cut_session, with_user)
            expected[with_user] = "blocked"

            await small_turf(client, world)
            found = await settled(client, world)
            # Only the well-formed URL reached the receiver: over loopback, connecting to the address checked,
            # and with the URL's name as the Host.
            await until(lambda: len(receiver.requests) == 1)
            assert receiver.requests[0][0]["host"] == f"localhost:{receiver.port}"
            assert "authorization" not in receiver.requests[0][0]
        for url, error in expected.items():
            [delivery] = found[url]
            assert delivery["last_error"] == error, (url, delivery)
            assert delivery["last_status"] == (204 if error is None else None)
        await cut_session.rollback()
        errors = set((await cut_session.execute(select(WebhookDelivery.last_error))).scalars())
        assert errors == {"refused", "timed out", "tls", "protocol", "blocked", None}

    @pytest.mark.own_database  # the webhook worker delivers in the background
    async def test_a_non_2xx_answer_is_its_status(self, cut_db_url, world):
        async with receiving(failures=1) as receiver, app_client(cut_db_url, webhook_max_attempts=1,
                                                                   **FAST) as client:
            await client.post(f"{HOME}/webhooks", json={"url": receiver.url, "events": EVENTS},
                              headers=world.headers("admin"))
            await small_turf(client, world)
            [delivery] = (await settled(client, world))[receiver.url]
            assert len(receiver.requests) == 1
        assert (delivery["attempts"], delivery["last_status"], delivery["last_error"]) == (1, 500, "status")
        assert delivery["failed_at"] and not delivery["delivered_at"]

    async def test_messages_recorded_before_are_shown_as_their_class(self, db_url, session, world):
        await add_hook(session, "https://8.8.8.8/hook")
        hook = await session.scalar(select(Webhook.id))
        now = utcnow()
        old = ["ConnectError: [Errno 111] Connection refused", "ReadTimeout: timed out", "HTTP 500", None,
               "ConnectError: [Errno -2] Name or service not known"]
        # Given up before (no next attempt): into the table itself, as an insert of the model (the ORM's bulk
        # insert) would leave out the None and let the column's default make them due, for the worker to retry.
        await session.execute(insert(WebhookDelivery.__table__), [
            {"webhook_id": hook, "event": "turf.assigned", "payload": "{}", "attempts": 3,
             "created_at": now - timedelta(minutes=i), "next_attempt_at": None, "failed_at": now,
             "last_status": 500 if text == "HTTP 500" else None, "last_error": text} for i, text in enumerate(old)])
        await session.commit()
        async with app_client(db_url) as client:
            shown = [d["last_error"] for d in (await ledgers(client, world))["https://8.8.8.8/hook"]]
        assert shown == ["refused", "timed out", "status", None, "unreachable"]
        assert set(shown) - {None} <= set(FAILURES)

