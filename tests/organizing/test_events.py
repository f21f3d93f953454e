"""Canvass launches are bounded and end: a pool no bigger than the launch needs, events changed and cancelled, and
a host reading the walk lists of their launch's turfs only while it is on (issue 14)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from app.campaigns.models import Campaign
from app.db import begin_write
from app.organizing.models import Event, EventAttendee, EventTurf, JoinCode, TurfHolding
from app.turfs.models import Turf
from tests.test_errors import assert_problem

HOME = "/v1/campaigns/cambridge"
HERE = {"lon": -71.1303, "lat": 42.3758}  # near the middle of precinct 9-1
PASSWORD = "walking the ward at dawn"


def at(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def launch(**overrides: object) -> dict[str, object]:
    return {"title": "Saturday launch", "starts_at": at(0), "ends_at": at(4), **HERE, "capacity": 4} | overrides


async def make_event(client, world, who: str = "host", **overrides: object) -> dict:
    r = await client.post(f"{HOME}/events", json=launch(**overrides), headers=world.headers(who))
    assert r.status_code == 201, r.text
    return r.json()


def field_of(r) -> str:
    """The field a 422 names; the body's schema names it `body.<field>`, a service `<field>`."""
    return assert_problem(r, 422)["errors"][0]["field"].removeprefix("body.")


async def pool(session, event_id: int) -> dict[int, datetime | None]:
    """The event's pool as stored: turf id -> when it was checked out."""
    await session.rollback()
    rows = (await session.execute(select(EventTurf.turf_id, EventTurf.checked_out_at)
                                  .where(EventTurf.event_id == event_id))).all()
    await session.rollback()
    return dict(rows)


async def attend(session, event_id: int, *user_ids) -> None:
    """World members join the event (as its join code would make them)."""
    await begin_write(session)
    session.add_all([EventAttendee(event_id=event_id, user_id=u) for u in user_ids])
    await session.commit()


async def check_in(client, world, event_id: int, who: str) -> int:
    r = await client.post(f"{HOME}/events/{event_id}/check-ins", json={}, headers=world.headers(who))
    assert r.status_code == 200, r.text
    return r.json()["turf_id"]


async def move(session, event_id: int, **times: datetime) -> None:
    """Set an event's times behind the API (into the past, which the API refuses)."""
    await begin_write(session)
    await session.execute(update(Event).where(Event.id == event_id).values(**times))
    await session.commit()


class TestPoolBounds:
    async def test_the_whole_city_attack_reserves_at_most_event_max_turfs(self, cut_client, world, cut_session):
        active = await cut_session.scalar(select(func.count()).select_from(Turf).where(Turf.status == "active"))
        await cut_session.rollback()
        assert active > 500
        # As the attacker asked, but a day long: a capacity of 1000 no longer means 1000 turfs.
        event = await make_event(cut_client, world, capacity=1000, ends_at=at(24))
        assert len(event["turfs"]) == 20 and event["capacity"] == 1000
        assert len(await pool(cut_session, event["id"])) == 20
        for body, field in ((launch(capacity=1000, turfs=507), "turfs"), (launch(capacity=40, turfs=21), "turfs"),
                            (launch(capacity=3, turfs=4), "turfs"), (launch(ends_at=at(24 * 365)), "ends_at"),
                            (launch(ends_at=at(25)), "ends_at"),
                            (launch(starts_at=at(24 * 60), ends_at=at(24 * 60 + 2)), "starts_at"),
                            (launch(starts_at="0001-01-01T00:00:00+05:00"), "starts_at"),
                            (launch(ends_at="9999-12-31T23:59:59-05:00"), "ends_at")):
            r = await cut_client.post(f"{HOME}/events", json=body, headers=world.headers("host"))
            assert field_of(r) == field, (body, r.text)
        assert await cut_session.scalar(select(func.count()).select_from(Event)) == 1
        assert await cut_session.scalar(select(func.count()).select_from(EventTurf)) == 20
        await cut_session.rollback()
        # Self-claims go on, beside the pool.
        claim = await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("canvasser"))
        assert claim.status_code == 201 and claim.json()["turf_id"] not in {t["id"] for t in event["turfs"]}

    async def test_one_hosts_live_events_together_reserve_at_most_the_bound(self, cut_client, world, cut_session):
        # Many events of 20 each would reserve the city again: a host's live events share the bound.
        first = await make_event(cut_client, world, capacity=15)
        second = await make_event(cut_client, world, capacity=15)
        assert (len(first["turfs"]), len(second["turfs"])) == (15, 5)
        r = await cut_client.post(f"{HOME}/events", json=launch(capacity=3), headers=world.headers("host"))
        assert "reserve 20 turfs" in assert_problem(r, 409)["detail"]
        r = await cut_client.patch(f"{HOME}/events/{second['id']}", json={"turfs": 6}, headers=world.headers("host"))
        assert field_of(r) == "turfs" and "at most 5" in r.json()["detail"]
        # Cancelling one frees its share; field staff are bound per event only.
        assert (await cut_client.delete(f"{HOME}/events/{first['id']}", headers=world.headers("host"))).status_code \
            == 200
        assert len((await make_event(cut_client, world, capacity=15))["turfs"]) == 15
        assert len((await make_event(cut_client, world, "organizer", capacity=20))["turfs"]) == 20
        await cut_session.rollback()
        live = await cut_session.scalar(select(func.count()).select_from(EventTurf).join(Event).where(
            Event.host_id == world.users["host"], Event.cancelled_at.is_(None)))
        assert live == 20

    async def test_a_host_takes_no_turf_at_their_own_event(self, cut_client, world, cut_session):
        # Else create, check in, cancel, again: a turf (and its walk list) kept for good each round (red team).
        event = await make_event(cut_client, world, capacity=2)
        await attend(cut_session, event["id"], world.users["host"])
        r = await cut_client.post(f"{HOME}/events/{event['id']}/check-ins", json={}, headers=world.headers("host"))
        assert "host runs this event" in assert_problem(r, 409)["detail"]
        r = await cut_client.post(f"{HOME}/events/{event['id']}/check-ins", json={"user_id": str(
            world.users["host"])}, headers=world.headers("organizer"))
        assert_problem(r, 409)
        await cut_session.rollback()
        assert await cut_session.scalar(select(func.count()).select_from(TurfHolding).where(
            TurfHolding.user_id == world.users["host"])) == 0

    async def test_an_admin_sets_event_max_turfs_and_others_cannot(self, cut_client, world, cut_session):
        shown = (await cut_client.get(HOME, headers=world.headers("host"))).json()
        assert shown["event_max_turfs"] == 20
        r = await cut_client.patch(HOME, json={"event_max_turfs": 3}, headers=world.headers("admin"))
        assert r.status_code == 200 and r.json()["event_max_turfs"] == 3
        for who in ("organizer", "host"):
            assert_problem(await cut_client.patch(HOME, json={"event_max_turfs": 50}, headers=world.headers(who)),
                           403)
        assert field_of(await cut_client.patch(HOME, json={"event_max_turfs": -1},
                                               headers=world.headers("admin"))) == "event_max_turfs"
        assert await cut_session.scalar(select(Campaign.event_max_turfs).where(Campaign.slug == "cambridge")) == 3
        await cut_session.rollback()
        event = await make_event(cut_client, world, capacity=10)
        assert len(event["turfs"]) == 3
        r = await cut_client.post(f"{HOME}/events", json=launch(capacity=10, turfs=4), headers=world.headers("host"))
        assert "at most 3" in assert_problem(r, 422)["detail"]


class TestChangingAnEvent:
    async def test_the_pool_shrinks_and_grows_and_the_code_follows(self, cut_client, world, cut_session):
        event = await make_event(cut_client, world, capacity=6, turfs=4)
        eid, path = event["id"], f"{HOME}/events/{event['id']}"
        await attend(cut_session, eid, world.users["canvasser"])
        out = await check_in(cut_client, world, eid, "canvasser")
        r = await cut_client.patch(path, json={"turfs": 2, "title": "  Sunday launch "},
                                   headers=world.headers("host"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["title"] == "Sunday launch" and body["code"] == event["code"]
        stored = await pool(cut_session, eid)
        assert len(body["turfs"]) == len(stored) == 2 and stored[out] is not None, "the turf out stays in the pool"
        released = {t["id"] for t in event["turfs"]} - set(stored)
        assert len(released) == 2
        # One out: the pool can't go below it.
        r = await cut_client.patch(path, json={"turfs": 0}, headers=world.headers("organizer"))
        assert field_of(r) == "turfs" and len(await pool(cut_session, eid)) == 2
        # Growing takes the free turfs nearest the meeting point: the two just released.
        end = datetime.now(UTC) + timedelta(hours=6)
        r = await cut_client.patch(path, json={"turfs": 4, "capacity": 8, "ends_at": end.isoformat()},
                                   headers=world.headers("admin"))
        assert r.status_code == 200, r.text
        assert {t["id"] for t in r.json()["turfs"]} == {t["id"] for t in event["turfs"]}
        assert (r.json()["capacity"], datetime.fromisoformat(r.json()["ends_at"])) == (8, end)
        code = (await cut_session.execute(select(JoinCode.expires_at, JoinCode.max_uses, JoinCode.revoked_at)
                                          .where(JoinCode.event_id == eid))).one()
        await cut_session.rollback()
        assert tuple(code) == (end, 8, None)
        # A lower capacity with no pool size asked for shrinks the pool to it.
        r = await cut_client.patch(path, json={"capacity": 3}, headers=world.headers("host"))
        assert len(r.json()["turfs"]) == 3 and len(await pool(cut_session, eid)) == 3
        r = await cut_client.patch(path, json={"turfs": 21, "capacity": 100}, headers=world.headers("host"))
        assert field_of(r) == "turfs"

    async def test_bad_times_another_hosts_event_and_a_cancelled_one_are_refused(self, cut_client, world,
                                                                                  cut_session):
        mine = await make_event(cut_client, world, turfs=2)
        path = f"{HOME}/events/{mine['id']}"
        for body, field in (({"ends_at": at(30)}, "ends_at"), ({"starts_at": at(5)}, "starts_at"),
                            ({"starts_at": at(24 * 40)}, "starts_at"), ({"ends_at": at(-1)}, "ends_at"),
                            ({"capacity": 0}, "capacity"), ({"lat": 91}, "lat")):
            assert field_of(await cut_client.patch(path, json=body, headers=world.headers("host"))) == field, body
        theirs = await make_event(cut_client, world, who="organizer", turfs=2)
        r = await cut_client.patch(f"{HOME}/events/{theirs['id']}", json={"title": "Mine now"},
                                   headers=world.headers("host"))
        assert_problem(r, 404)
        assert_problem(await cut_client.patch(path, json={"title": "x"}, headers=world.headers("canvasser")), 403)
        assert_problem(await cut_client.patch(f"/v1/campaigns/somerville/events/{mine['id']}", json={"title": "x"},
                                              headers=world.headers("foreign_admin")), 404)
        titles = (await cut_session.execute(select(Event.title).order_by(Event.id))).scalars().all()
        await cut_session.rollback()
        assert titles == ["Saturday launch", "Saturday launch"]
        assert (await cut_client.delete(path, headers=world.headers("host"))).status_code == 200
        assert "cancelled" in assert_problem(await cut_client.patch(path, json={"title": "Back on"},
                                                                    headers=world.headers("host")), 409)["detail"]
        await move(cut_session, theirs["id"], starts_at=datetime.now(UTC) - timedelta(hours=3),
                   ends_at=datetime.now(UTC) - timedelta(hours=1))
        r = await cut_client.patch(f"{HOME}/events/{theirs['id']}", json={"ends_at": at(3)},
                                   headers=world.headers("organizer"))
        assert "over" in assert_problem(r, 409)["detail"]


class TestCancelling:
    async def test_cancelling_releases_the_unhanded_pool_and_revokes_the_code(self, cut_client, world, cut_session):
        event = await make_event(cut_client, world, capacity=3, turfs=3)
        eid, path = event["id"], f"{HOME}/events/{event['id']}"
        await attend(cut_session, eid, world.users["canvasser"], world.users["dual"])
        out = await check_in(cut_client, world, eid, "canvasser")
        assert_problem(await cut_client.delete(path, headers=world.headers("canvasser")), 403)
        other = await make_event(cut_client, world, who="organizer", turfs=1)
        assert_problem(await cut_client.delete(f"{HOME}/events/{other['id']}", headers=world.headers("host")), 404)
        assert len(await pool(cut_session, other["id"])) == 1
        r = await cut_client.delete(path, headers=world.headers("host"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["id"], body["title"], body["capacity"]) == (eid, "Saturday launch", 3) and body["cancelled_at"]
        # The turf out stays with its holder; the rest are free at once.
        stored = await pool(cut_session, eid)
        assert list(stored) == [out] and stored[out] is not None
        holders = (await cut_session.execute(select(TurfHolding.turf_id, TurfHolding.via).where(
            TurfHolding.user_id == world.users["canvasser"]))).all()
        cancelled_at, revoked = (await cut_session.execute(
            select(Event.cancelled_at, JoinCode.revoked_at).join(JoinCode, JoinCode.event_id == Event.id)
            .where(Event.id == eid))).one()
        await cut_session.rollback()
        assert [tuple(h) for h in holders] == [(out, "event")]
        assert cancelled_at == revoked == datetime.fromisoformat(body["cancelled_at"])
        released = {t["id"] for t in event["turfs"]} - {out}
        claim = await cut_client.post(f"{HOME}/turfs:claim", json=HERE, headers=world.headers("organizer"))
        assert claim.status_code == 201 and claim.json()["turf_id"] in released
        r = await cut_client.post("/v1/join", json={"code": event["code"], "name": "Late", "password": PASSWORD,
                                                    "email": "late@example.org"})
        assert "revoked" in assert_problem(r, 410)["detail"]
        r = await cut_client.post(f"{path}/check-ins", json={}, headers=world.headers("dual"))
        assert "cancelled" in assert_problem(r, 409)["detail"]
        r = await cut_client.post(f"{HOME}/join-codes", json={"role": "canvasser", "expires_at": at(2),
                                                              "event_id": eid}, headers=world.headers("host"))
        assert_problem(r, 409)
        # Again: nothing more happens.
        again = await cut_client.delete(path, headers=world.headers("organizer"))
        assert again.status_code == 200 and again.json()["cancelled_at"] == body["cancelled_at"]
        seen = (await cut_client.get(path, headers=world.headers("host"))).json()
        assert (seen["code"], seen["cancelled_at"], [t["id"] for t in seen["turfs"]]) == (
            None, body["cancelled_at"], [out])
        assert_problem(await cut_client.delete(f"/v1/campaigns/somerville/events/{eid}",
                                               headers=world.headers("foreign_admin")), 404)

    async def test_an_ended_events_pool_is_free_again(self, cut_client, world, cut_session):
        event = await make_event(cut_client, world, capacity=2, turfs=2)
        await attend(cut_session, event["id"], world.users["dual"])
        await move(cut_session, event["id"], starts_at=datetime.now(UTC) - timedelta(hours=3),
                   ends_at=datetime.now(UTC) - timedelta(minutes=1))
        r = await cut_client.post(f"{HOME}/events/{event['id']}/check-ins", json={}, headers=world.headers("dual"))
        assert "over" in assert_problem(r, 409)["detail"]
        # A new event near the same spot reserves the turfs the old one held.
        again = await make_event(cut_client, world, capacity=2, turfs=2)
        assert {t["id"] for t in again["turfs"]} == {t["id"] for t in event["turfs"]}


class TestHostReadsWalkLists:
    async def test_only_turfs_out_at_their_event_while_it_is_on(self, cut_client, world, cut_session):
        event = await make_event(cut_client, world, starts_at=at(3), ends_at=at(6), capacity=3, turfs=3)
        eid, host = event["id"], world.headers("host")
        await attend(cut_session, eid, world.users["canvasser"])
        out = await check_in(cut_client, world, eid, "canvasser")
        idle = next(t["id"] for t in event["turfs"] if t["id"] != out)

        async def reads(turf_id: int) -> tuple[int, int]:
            walk = await cut_client.get(f"{HOME}/turfs/{turf_id}/walklist", headers=host)
            detail = await cut_client.get(f"{HOME}/turfs/{turf_id}", headers=host)
            return walk.status_code, detail.status_code

        # Three hours ahead: too early, even for the turf out.
        assert await reads(out) == (404, 404)
        # The pool's names and counts, to run the launch, are there all along.
        listed = (await cut_client.get(f"{HOME}/turfs", headers=host)).json()["items"]
        assert {(t["id"], t["name"], t["doors"]) for t in listed} == {(t["id"], t["name"], t["doors"])
                                                                      for t in event["turfs"]}
        # Under an hour before the start: the turf out, not the one in the pool.
        r = await cut_client.patch(f"{HOME}/events/{eid}", json={"starts_at": at(0.5)}, headers=host)
        assert r.status_code == 200, r.text
        assert await reads(out) == (200, 200) and await reads(idle) == (404, 404)
        walk = (await cut_client.get(f"{HOME}/turfs/{out}/walklist", headers=host)).json()
        doors = await cut_session.scalar(select(Turf.doors).where(Turf.id == out))
        await cut_session.rollback()
        households = [h for b in walk["buildings"] for h in b["households"]]
        assert walk["turf"]["id"] == out and len(households) == doors > 0
        assert any(p["name"] for h in households for p in h["people"])
        # After the end: nothing, and the pool is no longer listed.
        await move(cut_session, eid, starts_at=datetime.now(UTC) - timedelta(hours=4),
                   ends_at=datetime.now(UTC) - timedelta(seconds=1))
        assert await reads(out) == (404, 404)
        assert (await cut_client.get(f"{HOME}/turfs", headers=host)).json()["items"] == []
        # The canvasser holding it still reads it; organizers read every turf.
        r = await cut_client.get(f"{HOME}/turfs/{out}/walklist", headers=world.headers("canvasser"))
        assert r.status_code == 200 and r.json()["turf"]["id"] == out
        assert (await cut_client.get(f"{HOME}/turfs/{idle}/walklist", headers=world.headers("organizer"))
                ).status_code == 200

    async def test_a_cancelled_event_shows_nothing_but_what_the_host_holds(self, cut_client, world, cut_session):
        event = await make_event(cut_client, world, capacity=2, turfs=2)
        eid, host = event["id"], world.headers("host")
        await attend(cut_session, eid, world.users["canvasser"])
        out = await check_in(cut_client, world, eid, "canvasser")
        assert (await cut_client.get(f"{HOME}/turfs/{out}/walklist", headers=host)).status_code == 200
        await cut_client.delete(f"{HOME}/events/{eid}", headers=host)
        assert_problem(await cut_client.get(f"{HOME}/turfs/{out}/walklist", headers=host), 404)
        assert_problem(await cut_client.get(f"{HOME}/turfs/{out}", headers=host), 404)
        # A turf the host holds themselves, they read whatever their events do.
        mine = next(t["id"] for t in (await cut_client.get(f"{HOME}/turfs", params={"limit": 5},
                                                           headers=world.headers("organizer"))).json()["items"])
        r = await cut_client.post(f"{HOME}/turfs/{mine}/assignments", json={"user_ids": [str(world.users["host"])]},
                                  headers=world.headers("organizer"))
        assert r.status_code == 201
        assert [t["id"] for t in (await cut_client.get(f"{HOME}/turfs", headers=host)).json()["items"]] == [mine]
        walk = await cut_client.get(f"{HOME}/turfs/{mine}/walklist", headers=host)
        assert walk.status_code == 200 and walk.json()["turf"]["id"] == mine
        assert (await cut_client.get(f"{HOME}/turfs/{mine}", headers=host)).json()["id"] == mine
