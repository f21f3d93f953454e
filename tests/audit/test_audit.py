"""The audit of voter-data reads: one row per successful read (who, what, when, from where, how many), none for a
refused one; admins read it, newest first; the buffer is written in the background, when full and at shutdown."""

import asyncio
import csv
import io
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth import service as auth_service
from app.auth.scopes import Scope
from app.campaigns import service as campaign_service
from app.db import utcnow
from app.turfs.models import Turf
from tests.conftest import app_client
from tests.sync.helpers import HOME, batch, doors, hold, knock, send
from tests.test_errors import assert_problem

AUDIT = f"{HOME}/audit"
CLIENT = "127.0.0.1"  # httpx's ASGI transport's client address
AGENT = "Doorstep-Phone/3.1 " + "x" * 400  # cut to 200 characters in the audit
HTTPX = f"python-httpx/{httpx.__version__}"  # the user agent of the other requests


def people(walk: dict) -> int:
    return sum(len(h["people"]) for h in doors(walk))


async def audit(client, world, **params) -> list[dict]:
    r = await client.get(AUDIT, params=params, headers=world.headers("admin"))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def row(event: dict) -> tuple:
    return (event["action"], event["subject"], event["user_id"], event["api_key_id"], event["records"],
            event["client"], event["user_agent"])


async def stored(session) -> int:
    await session.rollback()
    count = await session.scalar(select(func.count()).select_from(AuditEvent))
    await session.rollback()
    return count


class TestAuditedReads:
    async def test_each_read_leaves_one_row_saying_who_what_and_how_many(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)  # the canvasser reads the walk list of the turf handed them
        turf = walk["turf"]["id"]
        ua = {"User-Agent": AGENT}
        organizer, canvasser, key = (str(world.users["organizer"]), str(world.users["canvasser"]),
                                     str(world.key_ids["key_all"]))
        person = doors(walk)[0]["people"][0]
        await send(cut_client, world, batch([knock(walk, 0, "contacted", person_id=person["id"], note="Home at 6")]))
        precinct = walk["turf"]["precinct_id"]
        households = (await cut_client.get(f"{HOME}/households", params={"precinct": precinct, "limit": 7},
                                           headers={**world.headers("organizer"), **ua})).json()["items"]
        detail = (await cut_client.get(f"{HOME}/turfs/{turf}", headers=world.headers("organizer"))).json()
        feed = (await cut_client.get(f"{HOME}/door-knocks", headers=world.headers("key_all"))).json()["items"]
        exported = (await cut_client.get(f"{HOME}/door-knocks.csv", params={"since": "2020-01-01T00:00:00Z"},
                                         headers=world.headers("organizer"))).text
        # A results:read key sees no names and no notes: nothing personal, nothing audited.
        home = await campaign_service.get_campaign(cut_session, "cambridge")
        assert home.id is not None
        _, results_only = await auth_service.create_api_key(cut_session, home.id, name="results only",
                                                            scopes=[Scope.results_read], created_by=None)
        r = await cut_client.get(f"{HOME}/door-knocks", headers={"X-API-Key": results_only})
        assert r.status_code == 200 and r.json()["items"]
        assert len(households) == 7 and detail["households"] and len(feed) == 1
        assert len(list(csv.DictReader(io.StringIO(exported)))) == 1
        events = await audit(cut_client, world)
        assert [row(e) for e in events] == [
            ("export.csv", "door-knocks since 2020-01-01T00:00:00+00:00", organizer, None, 1, CLIENT,
             HTTPX),
            ("results.read", "knocks after 0", None, key, 1, CLIENT, HTTPX),
            ("households.read", f"turf {turf}", organizer, None, len(detail["households"]), CLIENT,
             HTTPX),
            ("households.read", f"precinct {precinct}", organizer, None, 7, CLIENT, AGENT[:200]),
            ("walklist.read", f"turf {turf}", canvasser, None, people(walk), CLIENT,
             HTTPX),
        ]
        assert people(walk) > 0
        ats = [e["at"] for e in events]
        assert ats == sorted(ats, reverse=True)
        assert await stored(cut_session) == 5, "the rows are in the database, not only in the answer"

    async def test_refused_and_unchanged_reads_leave_none(self, cut_client, cut_session, world):
        turf = await cut_session.scalar(select(Turf.id).order_by(Turf.id).limit(1))
        await cut_session.rollback()
        for who, path, status in (("canvasser", f"turfs/{turf}/walklist", 404),  # a turf they don't hold
                                  ("foreign_admin", f"turfs/{turf}/walklist", 404),
                                  ("host", "households", 403), ("canvasser", f"turfs/{turf}", 404),
                                  ("key_progress", "door-knocks", 403), ("key_progress", "door-knocks.csv", 403),
                                  ("anonymous", "households", 401), ("organizer", "turfs/999999999/walklist", 404)):
            assert_problem(await cut_client.get(f"{HOME}/{path}", headers=world.headers(who)), status)
        assert_problem(await cut_client.get(f"{HOME}/households", params={"precinct": "nowhere"},
                                            headers=world.headers("organizer")), 404)
        assert await audit(cut_client, world) == []
        # A walk list the phone already has (304) sends no one's data: one row for the read, none for the check.
        r = await cut_client.get(f"{HOME}/turfs/{turf}/walklist", headers=world.headers("organizer"))
        again = await cut_client.get(f"{HOME}/turfs/{turf}/walklist",
                                     headers={**world.headers("organizer"), "If-None-Match": r.headers["ETag"]})
        assert again.status_code == 304
        assert [e["action"] for e in await audit(cut_client, world)] == ["walklist.read"]
        assert await stored(cut_session) == 1

    async def test_a_head_or_a_304_sends_no_ones_data_and_leaves_no_row(self, cut_client, cut_session, world):
        """What GDAL, caches and link checkers send (HEAD, If-None-Match) reads nobody's data out: no row, for the
        walk list, a turf's households, the results feed and the export (which the ETags hold whole to tag)."""
        turf = await cut_session.scalar(select(Turf.id).order_by(Turf.id).limit(1))
        await cut_session.rollback()
        organizer = world.headers("organizer")
        paths = [f"{HOME}/turfs/{turf}/walklist", f"{HOME}/turfs/{turf}", f"{HOME}/door-knocks",
                 f"{HOME}/door-knocks.csv"]
        for path in paths:
            head = await cut_client.head(path, headers=organizer)
            assert (head.status_code, head.content) == (200, b""), path
        assert await audit(cut_client, world) == []
        tags = []
        for path in paths:
            r = await cut_client.get(path, headers=organizer)
            assert r.status_code == 200 and r.content, path
            tags.append(r.headers["etag"])
        read = [e["action"] for e in await audit(cut_client, world)]
        assert sorted(read) == ["export.csv", "households.read", "results.read", "walklist.read"], read
        for path, tag in zip(paths, tags, strict=True):
            again = await cut_client.get(path, headers={**organizer, "If-None-Match": tag})
            assert (again.status_code, again.content) == (304, b""), path
        assert len(await audit(cut_client, world)) == 4
        assert await stored(cut_session) == 4


class TestReadingTheAudit:
    async def test_admins_only(self, cut_client, world):
        await hold(cut_client, world)
        for who in ("organizer", "host", "canvasser", "key_all", "key_progress"):
            assert_problem(await cut_client.get(AUDIT, headers=world.headers(who)), 403)
        for who in ("foreign_admin", "foreign_key"):
            assert_problem(await cut_client.get(AUDIT, headers=world.headers(who)), 404)
        assert_problem(await cut_client.get(AUDIT), 401)
        assert len(await audit(cut_client, world)) == 1
        # Another campaign's admin sees their own campaign's audit, which holds none of these reads.
        r = await cut_client.get("/v1/campaigns/somerville/audit", headers=world.headers("foreign_admin"))
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}

    async def test_filters_and_pages_newest_first(self, cut_client, world):
        walk = await hold(cut_client, world)
        start = utcnow()
        await asyncio.sleep(0.01)
        for limit in (1, 2, 3):
            r = await cut_client.get(f"{HOME}/households", params={"limit": limit}, headers=world.headers("admin"))
            assert len(r.json()["items"]) == limit
        await cut_client.get(f"{HOME}/door-knocks", headers=world.headers("key_all"))
        everything = await audit(cut_client, world)
        assert [(e["action"], e["records"]) for e in everything] == [
            ("results.read", 0), ("households.read", 3), ("households.read", 2), ("households.read", 1),
            ("walklist.read", people(walk))]
        # Page by page, the same rows in the same order.
        seen, cursor = [], None
        while True:
            r = await cut_client.get(AUDIT, params={"limit": 2} | ({"cursor": cursor} if cursor else {}),
                                     headers=world.headers("admin"))
            seen += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
            assert f"cursor={cursor}" in r.headers["Link"]
        assert seen == everything
        assert [e["records"] for e in await audit(cut_client, world, action="households.read")] == [3, 2, 1]
        admin = str(world.users["admin"])
        assert {e["user_id"] for e in await audit(cut_client, world, user=admin)} == {admin}
        assert [e["action"] for e in await audit(cut_client, world, api_key=str(world.key_ids["key_all"]))] == [
            "results.read"]
        assert [e["action"] for e in await audit(cut_client, world, until=start.isoformat())] == ["walklist.read"]
        assert len(await audit(cut_client, world, since=start.isoformat())) == 4
        assert await audit(cut_client, world, since=(utcnow() + timedelta(hours=1)).isoformat()) == []
        body = assert_problem(await cut_client.get(AUDIT, params={"since": start.isoformat(),
                                                                  "until": start.isoformat()},
                                                   headers=world.headers("admin")), 422)
        assert body["errors"][0]["field"] == "until"
        for bad in ("%%%", "WzEsMl0"):  # not base64; a key of the wrong shape ([1,2])
            body = assert_problem(await cut_client.get(AUDIT, params={"cursor": bad}, headers=world.headers("admin")),
                                  422)
            assert body["errors"][0]["field"] == "cursor"
        body = assert_problem(await cut_client.get(AUDIT, params={"user": "someone"}, headers=world.headers("admin")),
                              422)
        assert body["errors"][0]["field"] == "query.user"


class TestWriting:
    @pytest.mark.own_database  # the audit's timer writes in the background
    async def test_written_in_the_background_without_a_read_of_the_audit(self, cut_db_url, cut_session, world):
        async with app_client(cut_db_url, audit_flush_s=0.05) as c:
            await hold(c, world)
            for _ in range(100):
                if await stored(cut_session):
                    break
                await asyncio.sleep(0.05)
            assert await stored(cut_session) == 1

    async def test_written_at_shutdown(self, cut_db_url, cut_session, world):
        async with app_client(cut_db_url, audit_flush_s=3600) as c:
            await hold(c, world)
            await c.get(f"{HOME}/households", headers=world.headers("organizer"))
            assert await stored(cut_session) == 0, "buffered until the next batch"
        assert await stored(cut_session) == 2

    @pytest.mark.own_database  # the audit is written by a session of its own, beside the request's
    async def test_a_full_buffer_is_written_by_the_read_that_fills_it(self, cut_db_url, cut_session, world):
        async with app_client(cut_db_url, audit_flush_s=3600, audit_buffer_max=3) as c:
            for n in range(1, 7):
                await c.get(f"{HOME}/households", params={"limit": n}, headers=world.headers("organizer"))
                assert await stored(cut_session) == n // 3 * 3, n
            await cut_session.rollback()
            rows = (await cut_session.execute(select(AuditEvent.records).order_by(AuditEvent.id))).scalars().all()
            assert rows == [1, 2, 3, 4, 5, 6]
