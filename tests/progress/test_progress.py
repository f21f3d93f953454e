"""Progress: the counters sync keeps, read per turf, per precinct and for the campaign, as JSON and GeoJSON."""

import random
from collections import defaultdict

import shapely
from sqlalchemy import func, select

from app.auth import service as auth_service
from app.auth.scopes import Scope
from app.campaigns.models import Campaign
from app.precincts.models import Precinct
from app.sync.models import DoorKnock
from tests.sync.helpers import HOME, batch, doors, hold, knock, later, send
from tests.test_errors import assert_problem

RESULTS = ("not_home", "contacted", "refused", "moved", "come_back", "not_home")


async def _history(client, world, seed: int = 7) -> list[dict]:
    """A canvasser and an organizer knock two turfs at random doors, results and times, some doors twice, in
    batches; every knock accepted. The canvasser's knocks are from the minutes they have held the turf, the
    organizer's (who may record any turf's) over three hours."""
    rng = random.Random(seed)
    mine = await hold(client, world)
    theirs = await hold(client, world, "organizer", index=3)
    made = []
    for who, walk in (("canvasser", mine), ("organizer", theirs)):
        for _ in range(3):
            knocks = [knock(walk, rng.randrange(len(doors(walk))), rng.choice(RESULTS),
                            at=later(minutes=-rng.randrange(0, 10 if who == "canvasser" else 180)))
                      for _ in range(rng.randrange(3, 9))]
            body = (await send(client, world, batch(knocks), who)).json()
            assert body["accepted"] == len(knocks), body
            made += knocks
    return made


async def _straight(session, key, *where) -> dict[int, dict]:
    """What a count over the knocks says, per `key` (a door_knock column): the yardstick for the counters."""
    await session.rollback()
    out: dict[int, dict] = defaultdict(lambda: {"results": {}})
    for group, knocks, attempted, contacted, last in (await session.execute(
            select(key, func.count(), func.count(func.distinct(DoorKnock.household_id)),
                   func.count(func.distinct(DoorKnock.household_id)).filter(DoorKnock.contacted),
                   func.max(DoorKnock.corrected_at)).where(*where).group_by(key))).all():
        out[group].update(knocks=knocks, doors_attempted=attempted, doors_contacted=contacted, last=last)
    for group, result, knocks in (await session.execute(
            select(key, DoorKnock.result, func.count()).where(*where).group_by(key, DoorKnock.result))).all():
        out[group]["results"][result] = knocks
    return out


def _problem(response, status: int, field: str) -> None:
    body = assert_problem(response, status)
    assert field in [e["field"] for e in body.get("errors", [])], body


async def _event(client, world, who: str, title: str) -> dict:
    """An event (its pool of one turf reserved near Harvard Square) made by `who`."""
    r = await client.post(f"{HOME}/events", json={
        "title": title, "starts_at": later(hours=1).isoformat(), "ends_at": later(hours=4).isoformat(),
        "lon": -71.119, "lat": 42.373, "capacity": 5, "turfs": 1}, headers=world.headers(who))
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["turfs"]) == 1
    return body


def _same(row: dict, straight: dict) -> None:
    assert (row["knocks"], row["doors_attempted"], row["doors_contacted"], row["results"]) == (
        straight["knocks"], straight["doors_attempted"], straight["doors_contacted"], straight["results"]), row
    assert row["share_attempted"] == round(row["doors_attempted"] / row["doors"], 4)


class TestFigures:
    async def test_progress_equals_a_straight_count_over_the_knocks(self, cut_client, cut_session, world):
        await _history(cut_client, world)
        h = world.headers("organizer")
        turfs = (await cut_client.get(f"{HOME}/progress/turfs", headers=h)).json()
        by_turf = await _straight(cut_session, DoorKnock.turf_id)
        worked = [t for t in turfs if t["knocks"]]
        assert {t["id"] for t in worked} == set(by_turf) and len(worked) == 2
        for t in worked:
            _same(t, by_turf[t["id"]])
            assert t["doors"] > 0 and t["last_knock_at"] is not None
        assert all(t["results"] == {} and t["doors_attempted"] == 0 for t in turfs if not t["knocks"])

        precincts = (await cut_client.get(f"{HOME}/progress/precincts", headers=h)).json()
        by_precinct = await _straight(cut_session, DoorKnock.precinct_id)
        codes = dict((await cut_session.execute(select(Precinct.code, Precinct.id).join(
            Campaign, Campaign.id == Precinct.campaign_id).where(Campaign.slug == "cambridge"))).all())
        for p in precincts:
            if codes[p["code"]] in by_precinct:
                _same(p, by_precinct[codes[p["code"]]])
            else:
                assert p["knocks"] == 0 and p["results"] == {}
        total = (await cut_client.get(f"{HOME}/progress", headers=h)).json()
        assert total["knocks"] == sum(s["knocks"] for s in by_turf.values())
        assert total["doors_attempted"] == sum(s["doors_attempted"] for s in by_precinct.values())
        assert total["doors"] == sum(p["doors"] for p in precincts) and total["precincts"] == len(precincts)
        assert total["turfs"] == len(turfs)

    async def test_a_time_window_counts_the_knocks_made_in_it(self, cut_client, cut_session, world):
        made = await _history(cut_client, world, seed=11)
        h = world.headers("organizer")
        since, until = later(minutes=-120), later(minutes=-30)
        params = {"since": since.isoformat(), "until": until.isoformat()}
        turfs = (await cut_client.get(f"{HOME}/progress/turfs", params=params, headers=h)).json()
        straight = await _straight(cut_session, DoorKnock.turf_id, DoorKnock.corrected_at >= since,
                                   DoorKnock.corrected_at < until)
        assert straight and {t["id"] for t in turfs if t["knocks"]} == set(straight)
        for t in turfs:
            if t["id"] in straight:
                _same(t, straight[t["id"]])
        inside = sum(s["knocks"] for s in straight.values())
        assert 0 < inside < len(made)
        total = (await cut_client.get(f"{HOME}/progress", params=params, headers=h)).json()
        assert total["knocks"] == inside
        # Nothing before the first knock.
        empty = (await cut_client.get(f"{HOME}/progress", params={"until": later(hours=-5).isoformat()},
                                      headers=h)).json()
        assert (empty["knocks"], empty["doors_attempted"], empty["results"]) == (0, 0, {})
        # A window holding every knock (from the campaign's first day, say) answers what the counters hold.
        whole = {"since": later(hours=-24 * 30).isoformat()}
        for path in ("progress/turfs", "progress/precincts", "progress"):
            assert (await cut_client.get(f"{HOME}/{path}", params=whole, headers=h)).json() == (
                await cut_client.get(f"{HOME}/{path}", headers=h)).json()

    async def test_filters_by_precinct_and_by_event(self, cut_client, world):
        h = world.headers("organizer")
        event = await _event(cut_client, world, "organizer", "Saturday launch")
        turf_id = event["turfs"][0]["id"]
        turfs = (await cut_client.get(f"{HOME}/progress/turfs", headers=h)).json()
        code = next(t["precinct"] for t in turfs if t["id"] == turf_id)
        only = (await cut_client.get(f"{HOME}/progress/turfs", params={"precinct": code}, headers=h)).json()
        assert only and {t["precinct"] for t in only} == {code}
        assert len(only) == sum(1 for t in turfs if t["precinct"] == code)
        precincts = (await cut_client.get(f"{HOME}/progress/precincts", params={"precinct": code}, headers=h)).json()
        assert [p["code"] for p in precincts] == [code]

        mine = (await cut_client.get(f"{HOME}/progress/turfs", params={"event": event["id"]}, headers=h)).json()
        assert [t["id"] for t in mine] == [turf_id]
        by_event = (await cut_client.get(f"{HOME}/progress/precincts", params={"event": event["id"]},
                                         headers=h)).json()
        assert [p["code"] for p in by_event] == [code] and by_event[0]["doors"] == mine[0]["doors"]

    async def test_bad_filters_are_422_naming_the_field(self, cut_client, world):
        h = world.headers("organizer")
        r = await cut_client.get(f"{HOME}/progress/turfs", params={"precinct": "NOPE"}, headers=h)
        _problem(r, 422, "precinct")
        r = await cut_client.get(f"{HOME}/progress", params={"since": later().isoformat(),
                                                             "until": later(hours=-1).isoformat()}, headers=h)
        _problem(r, 422, "until")
        r = await cut_client.get(f"{HOME}/progress", params={"since": "2026-11-25T10:00:00"}, headers=h)
        assert r.status_code == 422 and "since" in r.text
        r = await cut_client.get(f"{HOME}/progress/turfs", params={"event": 999999}, headers=h)
        assert r.status_code == 404


class TestGeoJSON:
    async def test_turfs_and_precincts_as_feature_collections(self, cut_client, world):
        await _history(cut_client, world, seed=3)
        for path, key in (("turfs", "id"), ("precincts", "code")):
            json_rows = (await cut_client.get(f"{HOME}/progress/{path}", headers=world.headers("organizer"))).json()
            r = await cut_client.get(f"{HOME}/progress/{path}", headers={
                **world.headers("organizer"), "Accept": "application/geo+json"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
            collection = r.json()
            assert collection["type"] == "FeatureCollection"
            assert [f["id"] for f in collection["features"]] == [row[key] for row in json_rows]
            for feature, row in zip(collection["features"], json_rows, strict=True):
                shape = shapely.geometry.shape(feature["geometry"])
                assert feature["type"] == "Feature" and shape.geom_type in ("Polygon", "MultiPolygon")
                assert shape.is_valid and not shape.is_empty
                assert -71.2 < shape.centroid.x < -71.0 and 42.3 < shape.centroid.y < 42.5
                assert feature["properties"] == row
            same = await cut_client.get(f"{HOME}/progress/{path}", params={"format": "geojson"},
                                        headers=world.headers("organizer"))
            assert same.json() == collection


class TestLive:
    async def test_etag_answers_304_until_a_sync_or_an_assignment_changes_progress(self, cut_client, world):
        h = world.headers("organizer")
        walk = await hold(cut_client, world)
        first = await cut_client.get(f"{HOME}/progress/turfs", headers=h)
        etag = first.headers["etag"]
        again = await cut_client.get(f"{HOME}/progress/turfs", headers={**h, "If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        # Another question (a filter, GeoJSON) is another ETag.
        geo = await cut_client.get(f"{HOME}/progress/turfs", headers={**h, "Accept": "application/geo+json"})
        assert geo.headers["etag"] != etag
        await send(cut_client, world, batch([knock(walk, 0, "contacted")]))
        after = await cut_client.get(f"{HOME}/progress/turfs", headers={**h, "If-None-Match": etag})
        assert after.status_code == 200 and after.headers["etag"] != etag
        turf = next(t for t in after.json() if t["id"] == walk["turf"]["id"])
        assert (turf["knocks"], turf["doors_contacted"]) == (1, 1)
        # A resent batch changes nothing, so the ETag stays.
        etag = after.headers["etag"]
        assert (await cut_client.get(f"{HOME}/progress/turfs", headers={**h, "If-None-Match": etag})).status_code == 304
        await hold(cut_client, world, index=5)
        moved = await cut_client.get(f"{HOME}/progress/turfs", headers={**h, "If-None-Match": etag})
        assert moved.status_code == 200


class TestAccess:
    async def test_who_may_read_progress(self, cut_client, cut_session, world):
        for who in ("admin", "organizer", "key_all", "key_progress"):
            r = await cut_client.get(f"{HOME}/progress", headers=world.headers(who))
            assert r.status_code == 200 and r.json()["doors"] > 0, who
        for who in ("canvasser",):
            assert_problem(await cut_client.get(f"{HOME}/progress/turfs", headers=world.headers(who)), 403)
        # A host reads their own event's turfs only.
        assert_problem(await cut_client.get(f"{HOME}/progress/turfs", headers=world.headers("host")), 403)
        hosted = await _event(cut_client, world, "host", "Host's launch")
        other = await _event(cut_client, world, "organizer", "Someone else's")
        mine = await cut_client.get(f"{HOME}/progress/turfs", params={"event": hosted["id"]},
                                    headers=world.headers("host"))
        assert [t["id"] for t in mine.json()] == [hosted["turfs"][0]["id"]]
        r = await cut_client.get(f"{HOME}/progress/turfs", params={"event": other["id"]}, headers=world.headers("host"))
        assert r.status_code == 404
        # A key without progress:read; another campaign's members and keys; nobody.
        campaign_id = (await cut_session.execute(select(Precinct.campaign_id).limit(1))).scalar_one()
        _, results_only = await auth_service.create_api_key(cut_session, campaign_id, name="results only",
                                                            scopes=[Scope.results_read], created_by=None)
        r = await cut_client.get(f"{HOME}/progress", headers={"X-API-Key": results_only})
        assert_problem(r, 403)
        assert "progress:read" in r.json()["detail"]
        for who in ("foreign_admin", "foreign_organizer", "foreign_key"):
            assert (await cut_client.get(f"{HOME}/progress/precincts", headers=world.headers(who))).status_code == 404
        assert (await cut_client.get(f"{HOME}/progress")).status_code == 401
