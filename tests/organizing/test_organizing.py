"""Volunteers organize themselves: assignment, self-claim under concurrency, lapses, join codes, canvass launches."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from app.auth.passwords import hash_password
from app.campaigns.models import Campaign, Membership, User
from app.db import begin_write
from app.organizing.models import EventAttendee, JoinCode, TurfHistory, TurfHolding
from app.turfs.models import Turf
from tests.cli import doorstep, ok
from tests.conftest import SECRET
from tests.factories import PASSWORD
from tests.test_errors import assert_problem

HOME = "/v1/campaigns/cambridge"
# Near the middle of precinct 9-1 (Sparks St).
HERE = {"lon": -71.1303, "lat": 42.3758}


def later(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def turf_ids(client, world, who: str) -> list[int]:
    body = (await client.get(f"{HOME}/turfs", params={"limit": 1000}, headers=world.headers(who))).json()
    return [t["id"] for t in body["items"]]


async def actions(session, turf_id: int) -> list[tuple[str, object]]:
    await session.rollback()
    rows = (await session.execute(select(TurfHistory.action, TurfHistory.user_id).where(
        TurfHistory.turf_id == turf_id).order_by(TurfHistory.id))).all()
    return [tuple(r) for r in rows]


class TestAssignments:
    async def test_organizer_assigns_a_pair_and_takes_the_turf_back(self, cut_client, world, cut_session):
        turf = (await turf_ids(cut_client, world, "organizer"))[0]
        pair = [str(world.users["canvasser"]), str(world.users["dual"])]
        r = await cut_client.post(f"{HOME}/turfs/{turf}/assignments", json={"user_ids": pair},
                                  headers=world.headers("organizer"))
        assert r.status_code == 201
        assert sorted(h["user_id"] for h in r.json()) == sorted(pair) and {h["via"] for h in r.json()} == {"assigned"}
        # The canvasser now sees that turf, and only it.
        assert await turf_ids(cut_client, world, "canvasser") == [turf]
        detail = (await cut_client.get(f"{HOME}/turfs/{turf}", headers=world.headers("canvasser"))).json()
        assert detail["holders"] == 2 and len(detail["households"]) == detail["doors"]
        other = (await turf_ids(cut_client, world, "organizer"))[1]
        assert_problem(await cut_client.get(f"{HOME}/turfs/{other}", headers=world.headers("canvasser")), 404)
        held = (await cut_client.get(f"{HOME}/assignments", params={"turf": turf},
                                     headers=world.headers("key_all"))).json()
        assert len(held) == 2
        r = await cut_client.delete(f"{HOME}/turfs/{turf}/assignments/{pair[0]}", headers=world.headers("organizer"))
        assert r.status_code == 204
        assert await turf_ids(cut_client, world, "canvasser") == []
        history = await actions(cut_session, turf)
        assert [a for a, _ in history] == ["assigned", "assigned", "unassigned"]
        rows = (await cut_client.get(f"{HOME}/turf-history", params={"turf": turf},
                                     headers=world.headers("organizer"))).json()
        assert rows[-1]["by_user_id"] == str(world.users["organizer"]) and rows[-1]["user_id"] == pair[0]
        assert_problem(await cut_client.delete(f"{HOME}/turfs/{turf}/assignments/{pair[0]}",
                                               headers=world.headers("organizer")), 404)

    async def test_only_members_get_turf(self, cut_client, world, cut_session):
        turf = (await turf_ids(cut_client, world, "organizer"))[0]
        r = await cut_client.post(f"{HOME}/turfs/{turf}/assignments",
                                  json={"user_ids": [str(world.users["foreign_admin"])]},
                                  headers=world.headers("organizer"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "user_ids"
        assert (await actions(cut_session, turf)) == []


class TestClaims:
    async def test_claim_gives_the_nearest_free_turf_and_a_retry_the_same(self, cut_client, world, cut_session):
        r = await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("canvasser"))
        assert r.status_code == 201 and r.json()["precinct_id"] == "9-1" and r.json()["new"]
        first = r.json()["turf_id"]
        again = await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("canvasser"))
        assert again.status_code == 200 and again.json()["turf_id"] == first and not again.json()["new"]
        # Someone else nearby gets another turf.
        other = (await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("dual"))).json()
        assert other["turf_id"] != first
        r = await cut_client.post(f"{HOME}/turfs/{first}/release", headers=world.headers("canvasser"))
        assert r.status_code == 204
        assert [a for a, _ in await actions(cut_session, first)] == ["claimed", "released"]
        assert_problem(await cut_client.post(f"{HOME}/turfs/{first}/release", headers=world.headers("canvasser")), 404)

    async def test_the_least_worked_turf_goes_first(self, cut_client, world, cut_session):
        nearest = (await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("canvasser"))).json()
        await cut_client.post(f"{HOME}/turfs/{nearest['turf_id']}/release", headers=world.headers("canvasser"))
        await begin_write(cut_session)
        await cut_session.execute(update(Turf).where(Turf.id == nearest["turf_id"]).values(knocks=12))
        await cut_session.commit()
        r = await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("canvasser"))
        assert r.json()["turf_id"] != nearest["turf_id"]

    @pytest.mark.own_database  # claims raced on several connections
    async def test_fifty_concurrent_claims_never_share_a_turf(self, cut_client, world, cut_session):
        cid = await cut_session.scalar(select(Campaign.id).where(Campaign.slug == "cambridge"))
        await begin_write(cut_session)
        password = await hash_password(PASSWORD)
        users = (await cut_session.execute(insert(User).returning(User.id), [
            {"email": f"claimer{i}@cambridge.test", "name": f"Claimer {i}", "password_hash": password}
            for i in range(50)])).scalars().all()
        await cut_session.execute(insert(Membership), [{"campaign_id": cid, "user_id": u, "role": "canvasser"}
                                                       for u in users])
        await cut_session.commit()
        from app.auth.service import issue_token

        async def claim(user_id) -> int:
            token = issue_token(user_id, secret=SECRET, minutes=10)
            r = await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 201, r.text
            return r.json()["turf_id"]

        claimed = await asyncio.gather(*(claim(u) for u in users))
        assert len(set(claimed)) == 50
        await cut_session.rollback()
        holders = dict((await cut_session.execute(select(TurfHolding.turf_id, func.count()).where(
            TurfHolding.turf_id.in_(claimed)).group_by(TurfHolding.turf_id))).all())
        assert set(holders.values()) == {1} and len(holders) == 50
        counted = (await cut_session.execute(select(Turf.holders).where(Turf.id.in_(claimed)))).scalars().all()
        assert set(counted) == {1}
        assert await cut_session.scalar(select(func.count()).select_from(TurfHistory)
                                        .where(TurfHistory.action == "claimed")) == 50

    async def test_a_quiet_claim_lapses_back_to_the_pool(self, cut_client, world, cut_session):
        mine = (await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("canvasser"))).json()
        await begin_write(cut_session)
        await cut_session.execute(update(TurfHolding).where(TurfHolding.turf_id == mine["turf_id"]).values(
            last_activity_at=datetime.now(UTC) - timedelta(hours=49)))
        await cut_session.commit()
        theirs = (await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("dual"))).json()
        assert theirs["turf_id"] == mine["turf_id"] and theirs["new"]
        history = await actions(cut_session, mine["turf_id"])
        assert history == [("claimed", world.users["canvasser"]), ("lapsed", world.users["canvasser"]),
                           ("claimed", world.users["dual"])]
        assert await turf_ids(cut_client, world, "canvasser") == []


class TestJoinCodes:
    async def test_a_code_signs_people_up_until_it_is_used_up(self, cut_client, world, cut_session):
        r = await cut_client.post(f"{HOME}/join-codes", json={"role": "canvasser", "expires_at": later(24),
                                                              "max_uses": 2}, headers=world.headers("organizer"))
        code = r.json()["code"]
        assert r.status_code == 201 and len(code) == 10
        for i in range(2):
            r = await cut_client.post("/v1/join", json={"code": code.lower(), "name": f"New {i}",
                                                        "email": f"new{i}@example.org", "password": "a good password"})
            assert r.status_code == 201 and r.json()["role"] == "canvasser" and r.json()["new_account"]
            me = (await cut_client.get("/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}))
            assert me.json()["memberships"] == [{"campaign_id": "cambridge", "campaign_name": "Cambridge",
                                                 "role": "canvasser"}]
        await cut_session.rollback()
        users = await cut_session.scalar(select(func.count()).select_from(User))
        r = await cut_client.post("/v1/join", json={"code": code, "name": "Late", "email": "late@example.org",
                                                    "password": "a good password"})
        assert "used up" in assert_problem(r, 410)["detail"]
        await cut_session.rollback()
        assert await cut_session.scalar(select(func.count()).select_from(User)) == users
        listed = (await cut_client.get(f"{HOME}/join-codes", headers=world.headers("organizer"))).json()
        assert [c["uses"] for c in listed if c["code"] == code] == [2]

    async def test_revoked_expired_and_unknown_codes_create_nothing(self, cut_client, world, cut_session):
        make = {"role": "canvasser", "expires_at": later(1)}
        revoked = (await cut_client.post(f"{HOME}/join-codes", json=make, headers=world.headers("admin"))).json()
        await cut_client.delete(f"{HOME}/join-codes/{revoked['id']}", headers=world.headers("admin"))
        expired = (await cut_client.post(f"{HOME}/join-codes", json=make, headers=world.headers("admin"))).json()
        await begin_write(cut_session)
        await cut_session.execute(update(JoinCode).where(JoinCode.id == expired["id"]).values(
            expires_at=datetime.now(UTC) - timedelta(minutes=1)))
        await cut_session.commit()
        person = {"name": "X", "email": "x@example.org", "password": "a good password"}
        assert "revoked" in assert_problem(await cut_client.post("/v1/join", json={"code": revoked["code"], **person}),
                                           410)["detail"]
        assert "expired" in assert_problem(await cut_client.post("/v1/join", json={"code": expired["code"], **person}),
                                           410)["detail"]
        assert_problem(await cut_client.post("/v1/join", json={"code": "NOSUCHCODE", **person}), 404)
        await cut_session.rollback()
        assert await cut_session.scalar(select(func.count()).select_from(User)
                                        .where(User.email == "x@example.org")) == 0
        r = await cut_client.post(f"{HOME}/join-codes", json={"role": "canvasser", "expires_at": later(-1)},
                                  headers=world.headers("admin"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "expires_at"

    async def test_an_existing_account_joins_with_its_password_and_keeps_its_role(self, cut_client, world):
        code = (await cut_client.post(f"{HOME}/join-codes", json={"role": "canvasser", "expires_at": later(1)},
                                      headers=world.headers("organizer"))).json()["code"]
        wrong = await cut_client.post("/v1/join", json={"code": code, "name": "Org", "password": "not the password",
                                                        "email": world.emails["organizer"]})
        assert_problem(wrong, 401)
        r = await cut_client.post("/v1/join", json={"code": code, "name": "Org", "password": PASSWORD,
                                                    "email": world.emails["organizer"]})
        assert r.json()["role"] == "organizer" and not r.json()["new_account"]
        foreign = await cut_client.post("/v1/join", json={"code": code, "name": "F", "password": PASSWORD,
                                                          "email": world.emails["foreign_admin"]})
        assert foreign.json()["role"] == "canvasser"
        me = (await cut_client.get("/v1/me", headers=world.headers("foreign_admin"))).json()
        assert {(m["campaign_id"], m["role"]) for m in me["memberships"]} == {("somerville", "admin"),
                                                                              ("cambridge", "canvasser")}

    async def test_a_host_grants_only_canvasser(self, cut_client, world):
        r = await cut_client.post(f"{HOME}/join-codes", json={"role": "organizer", "expires_at": later(1)},
                                  headers=world.headers("host"))
        assert_problem(r, 403)


class TestEvents:
    async def make_event(self, client, world, *, capacity=4, turfs=3, who="host"):
        body = {"title": "Saturday launch", "starts_at": later(0), "ends_at": later(4), **HERE,
                "capacity": capacity, "turfs": turfs}
        r = await client.post(f"{HOME}/events", json=body, headers=world.headers(who))
        assert r.status_code == 201, r.text
        return r.json()

    @pytest.mark.own_database  # check-ins raced on several connections
    async def test_a_launch_reserves_nearby_turfs_and_hands_them_out_once(self, cut_client, world, cut_session):
        event = await self.make_event(cut_client, world)
        assert len(event["turfs"]) == 3 and event["code"] and event["attendees"] == []
        pool = {t["id"] for t in event["turfs"]}
        # The pool can't be claimed while the event runs.
        claim = (await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("organizer"))).json()
        assert claim["turf_id"] not in pool
        tokens = []
        for i in range(4):
            r = await cut_client.post("/v1/join", json={"code": event["code"], "name": f"A{i}",
                                                        "email": f"a{i}@example.org", "password": "a good password"})
            assert r.json()["event_id"] == event["id"]
            tokens.append({"Authorization": f"Bearer {r.json()['access_token']}"})
        got = await asyncio.gather(*(cut_client.post(f"{HOME}/events/{event['id']}/check-ins", json={}, headers=t)
                                     for t in tokens))
        statuses = sorted(r.status_code for r in got)
        assert statuses == [200, 200, 200, 409]
        handed = [r.json()["turf_id"] for r in got if r.status_code == 200]
        assert sorted(handed) == sorted(pool)
        # The host pairs the fourth attendee with the first.
        waiting = next(i for i, r in enumerate(got) if r.status_code == 409)
        first = next(r.json() for r in got if r.status_code == 200)
        me = (await cut_client.get("/v1/me", headers=tokens[waiting])).json()
        r = await cut_client.post(f"{HOME}/events/{event['id']}/check-ins",
                                  json={"user_id": me["id"], "pair_with": first["user_id"]},
                                  headers=world.headers("host"))
        assert r.json()["turf_id"] == first["turf_id"]
        seen = (await cut_client.get(f"{HOME}/events/{event['id']}", headers=world.headers("host"))).json()
        assert len(seen["attendees"]) == 4 and all(a["turf_id"] for a in seen["attendees"])
        assert all(t["checked_out_at"] for t in seen["turfs"])
        # The host sees the pool's turfs; a canvasser who holds one sees that one.
        assert pool <= set(await turf_ids(cut_client, world, "host"))
        assert (await cut_client.get(f"{HOME}/turfs", headers=tokens[0])).json()["items"][0]["id"] in pool

    async def test_turfs_never_checked_out_go_back_when_it_ends(self, cut_client, world, cut_session):
        event = await self.make_event(cut_client, world, capacity=2, turfs=2)
        pool = {t["id"] for t in event["turfs"]}
        from app.organizing.models import Event

        await begin_write(cut_session)
        await cut_session.execute(update(Event).where(Event.id == event["id"]).values(
            ends_at=datetime.now(UTC) - timedelta(minutes=1)))
        await cut_session.commit()
        r = await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("canvasser"))
        assert r.json()["turf_id"] in pool

    async def test_hosts_see_only_their_events(self, cut_client, world, cut_session):
        event = await self.make_event(cut_client, world, who="organizer")
        assert_problem(await cut_client.get(f"{HOME}/events/{event['id']}", headers=world.headers("host")), 404)
        assert (await cut_client.get(f"{HOME}/events", headers=world.headers("host"))).json() == []
        assert [e["id"] for e in (await cut_client.get(f"{HOME}/events",
                                                       headers=world.headers("organizer"))).json()] == [event["id"]]
        assert_problem(await cut_client.get(f"{HOME}/events", headers=world.headers("canvasser")), 403)
        await cut_session.rollback()
        assert await cut_session.scalar(select(func.count()).select_from(EventAttendee)) == 0

    async def test_times_out_of_order_are_refused(self, cut_client, world):
        body = {"title": "Backwards", "starts_at": later(3), "ends_at": later(1), **HERE, "capacity": 5}
        r = await cut_client.post(f"{HOME}/events", json=body, headers=world.headers("host"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "ends_at"


@pytest.mark.own_database  # the CLI connects on its own
class TestCli:
    async def test_assign_and_list_events(self, cut_db_url, world, tmp_path):
        done = ok(await doorstep(cut_db_url, tmp_path, "turfs", "assign", "9-1-T01", world.emails["canvasser"],
                                 "--campaign", "cambridge"))
        assert done.out.strip().startswith("9-1-T01 (turf ") and world.emails["canvasser"] in done.out
        bad = await doorstep(cut_db_url, tmp_path, "turfs", "assign", "9-1-T01", "nobody@example.org", "--campaign",
                             "cambridge")
        assert bad.code == 2 and bad.err.strip() == "doorstep: no user nobody@example.org", bad
        listed = ok(await doorstep(cut_db_url, tmp_path, "events", "list", "--campaign", "cambridge"))
        assert "Events of cambridge" in listed.out


class TestSettings:
    async def test_admin_sets_the_lapse_time_and_claims_follow_it(self, cut_client, world, cut_session):
        r = await cut_client.patch(HOME, json={"claim_lapse_hours": 2}, headers=world.headers("admin"))
        assert r.json()["claim_lapse_hours"] == 2
        assert_problem(await cut_client.patch(HOME, json={"claim_lapse_hours": 5},
                                              headers=world.headers("organizer")), 403)
        assert_problem(await cut_client.patch(HOME, json={"claim_lapse_hours": 0}, headers=world.headers("admin")), 422)
        mine = (await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("canvasser"))).json()
        await begin_write(cut_session)
        await cut_session.execute(update(TurfHolding).where(TurfHolding.turf_id == mine["turf_id"]).values(
            last_activity_at=datetime.now(UTC) - timedelta(hours=3)))
        await cut_session.commit()
        theirs = (await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("dual"))).json()
        assert theirs["turf_id"] == mine["turf_id"]


class TestHistoryKeepsTurfs:
    async def test_a_turf_once_held_is_archived_not_deleted(self, cut_client, world, cut_session):
        turf = (await turf_ids(cut_client, world, "organizer"))[0]
        user = str(world.users["canvasser"])
        await cut_client.post(f"{HOME}/turfs/{turf}/assignments", json={"user_ids": [user]},
                              headers=world.headers("organizer"))
        await cut_client.delete(f"{HOME}/turfs/{turf}/assignments/{user}", headers=world.headers("organizer"))
        r = await cut_client.delete(f"{HOME}/turfs/{turf}", headers=world.headers("organizer"))
        assert r.json() == {"id": turf, "outcome": "archived"}
        assert [a for a, _ in await actions(cut_session, turf)] == ["assigned", "unassigned"]

    @pytest.mark.own_database  # the cut runs in the background
    async def test_a_recut_archives_released_turfs_and_keeps_their_history(self, cut_client, world, cut_session):
        claimed = (await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("canvasser"))).json()
        await cut_client.post(f"{HOME}/turfs/{claimed['turf_id']}/release", headers=world.headers("canvasser"))
        r = await cut_client.post(f"{HOME}/turf-cuts", json={"precincts": ["9-1"]}, headers=world.headers("organizer"))
        for _ in range(600):
            job = (await cut_client.get(r.headers["location"], headers=world.headers("organizer"))).json()
            if job["state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.1)
        assert job["state"] == "done"
        old = (await cut_client.get(f"{HOME}/turfs/{claimed['turf_id']}", headers=world.headers("organizer"))).json()
        assert (old["status"], old["doors"]) == ("archived", 0)
        assert [a for a, _ in await actions(cut_session, claimed["turf_id"])] == ["claimed", "released"]


class TestPrivacyAndPools:
    async def test_keys_see_who_holds_what_without_emails(self, cut_client, world):
        turf = (await turf_ids(cut_client, world, "organizer"))[0]
        await cut_client.post(f"{HOME}/turfs/{turf}/assignments", json={"user_ids": [str(world.users["canvasser"])]},
                              headers=world.headers("organizer"))
        by_key = (await cut_client.get(f"{HOME}/assignments", headers=world.headers("key_all"))).json()
        by_organizer = (await cut_client.get(f"{HOME}/assignments", headers=world.headers("organizer"))).json()
        assert [h["email"] for h in by_key] == [None]
        assert [h["email"] for h in by_organizer] == [world.emails["canvasser"]]

    async def test_an_event_can_reserve_no_turfs(self, cut_client, world):
        body = {"title": "Phone bank", "starts_at": later(0), "ends_at": later(2), **HERE, "capacity": 12, "turfs": 0}
        event = (await cut_client.post(f"{HOME}/events", json=body, headers=world.headers("host"))).json()
        assert event["turfs"] == []

