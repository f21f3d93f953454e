"""The results feed: every knock exactly once, in the server's order, across pages and syncs; and CSV."""

import csv
import io

from sqlalchemy import func, select

from app.auth import service as auth_service
from app.auth.scopes import Scope
from app.precincts.models import Precinct
from app.sync.models import DoorKnock
from tests.sync.helpers import HOME, batch, doors, hold, knock, later, send
from tests.test_errors import assert_problem


async def _read_all(client, headers, after: str | None, limit: int) -> tuple[list[dict], str | None]:
    items = []
    while True:
        params = {"limit": limit} | ({"after": after} if after else {})
        page = (await client.get(f"{HOME}/door-knocks", params=params, headers=headers)).json()
        items += page["items"]
        if page["next"] == after or not page["items"]:
            return items, page["next"]
        after = page["next"]


class TestFeed:
    async def test_every_knock_exactly_once_while_syncs_go_on_between_pages(self, cut_client, world):
        walk = await hold(cut_client, world)
        h = world.headers("key_all")
        sent, seen, after = [], [], None
        for round_ in range(4):
            knocks = [knock(walk, (round_ * 5 + i) % len(doors(walk)), "not_home") for i in range(5)]
            assert (await send(cut_client, world, batch(knocks))).json()["accepted"] == 5
            sent += [k["id"] for k in knocks]
            # Read a page of 3, sync again, read on from where the last page stopped.
            page = (await cut_client.get(f"{HOME}/door-knocks", params={"limit": 3} | (
                {"after": after} if after else {}), headers=h)).json()
            seen += page["items"]
            after = page["next"]
        rest, after = await _read_all(cut_client, h, after, 4)
        seen += rest
        assert [k["id"] for k in seen] == sent
        assert [k["seq"] for k in seen] == sorted({k["seq"] for k in seen})
        # Up to date: the same cursor gives an empty page and itself back.
        again = (await cut_client.get(f"{HOME}/door-knocks", params={"after": after}, headers=h)).json()
        assert again == {"items": [], "next": after}
        # A resent batch stores nothing, so the feed has nothing new.
        first = seen[0]
        assert first["turf_id"] == walk["turf"]["id"] and first["result"] == "not_home"
        assert first["address"] and first["household_ref"] and first["precinct"]

    async def test_names_only_for_callers_with_people_read(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        person = doors(walk)[0]["people"][0]
        await send(cut_client, world, batch([knock(walk, 0, "contacted", person_id=person["id"])]))
        for who in ("organizer", "key_all"):
            item = (await cut_client.get(f"{HOME}/door-knocks", headers=world.headers(who))).json()["items"][0]
            assert item["person_id"] == person["id"] and item["person_name"] == person["name"], who
            assert item["person_ref"]
        campaign_id = (await cut_session.execute(select(Precinct.campaign_id).where(
            Precinct.id == select(DoorKnock.precinct_id).limit(1).scalar_subquery()))).scalar_one()
        _, results_only = await auth_service.create_api_key(cut_session, campaign_id, name="results",
                                                            scopes=[Scope.results_read], created_by=None)
        item = (await cut_client.get(f"{HOME}/door-knocks", headers={"X-API-Key": results_only})).json()["items"][0]
        assert item["person_id"] == person["id"] and "person_name" not in item and "person_ref" not in item
        text = (await cut_client.get(f"{HOME}/door-knocks.csv", headers={"X-API-Key": results_only})).text
        assert "person_name" not in text and person["name"] not in text
        assert person["name"] in (await cut_client.get(f"{HOME}/door-knocks.csv",
                                                       headers=world.headers("organizer"))).text

    async def test_csv_of_a_time_window(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world, "organizer")
        times = [later(minutes=-m) for m in (170, 130, 90, 50, 10)]
        knocks = [knock(walk, i, "refused", at=at) for i, at in enumerate(times)]
        assert (await send(cut_client, world, batch(knocks), "organizer")).json()["accepted"] == 5
        since, until = later(minutes=-140), later(minutes=-30)
        r = await cut_client.get(f"{HOME}/door-knocks.csv", params={"since": since.isoformat(),
                                                                   "until": until.isoformat()},
                                 headers=world.headers("organizer"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        await cut_session.rollback()
        inside = await cut_session.scalar(select(func.count()).select_from(DoorKnock).where(
            DoorKnock.corrected_at >= since, DoorKnock.corrected_at < until))
        assert len(rows) == inside == 3
        assert [row["id"] for row in rows] == [k["id"] for k in knocks[1:4]]
        assert all(row["result"] == "refused" and row["answers"] == "{}" for row in rows)

    async def test_bad_cursor_and_window_name_their_field(self, cut_client, world):
        h = world.headers("organizer")
        body = assert_problem(await cut_client.get(f"{HOME}/door-knocks", params={"after": "nonsense!"},
                                                   headers=h), 422)
        assert [e["field"] for e in body["errors"]] == ["after"]
        body = assert_problem(await cut_client.get(f"{HOME}/door-knocks.csv", params={
            "since": later().isoformat(), "until": later(hours=-1).isoformat()}, headers=h), 422)
        assert [e["field"] for e in body["errors"]] == ["until"]
        r = await cut_client.get(f"{HOME}/door-knocks", params={"limit": 100000}, headers=h)
        assert r.status_code == 422 and "limit" in r.text
