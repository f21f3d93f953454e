"""Walk lists over the Cambridge cut: every door once in walking order, the route, ETags, deltas and privacy."""

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from sqlalchemy import delete, func, select, update

from app.addresses.models import Household
from app.addresses.service import make_demo_people
from app.db import begin_write
from app.geo.order import building_stops
from app.geo.walk import distances, nearest_neighbour_lengths, path_length
from app.precincts.service import projection
from app.streets.service import load_streets
from app.text import natural_key
from app.turfs.models import Turf
from app.walklists.models import WalkStop
from app.walklists.service import walk_doors
from tests.sync.helpers import batch, send
from tests.test_errors import assert_problem

HOME = "/v1/campaigns/cambridge"
PERSON_KEYS = {"id", "name", "age_band", "language"}
HOUSEHOLD_KEYS = {"id", "unit", "people", "last_result"}


async def get_list(client, world, turf_id: int, who: str = "organizer", *, since: int | None = None,
                   etag: str | None = None):
    headers = world.headers(who)
    if etag:
        headers["If-None-Match"] = etag
    return await client.get(f"{HOME}/turfs/{turf_id}/walklist", headers=headers,
                            params={} if since is None else {"since": since})


async def half(client, world, body: dict, axis: int) -> shapely.Geometry:
    """The turf's polygon up to the median of its buildings along an axis (0: west half, 1: south half).

    From the turf's own geometry: the walk list's is rounded to 10 cm, enough to overlap its neighbours.
    """
    turf = (await client.get(f"{HOME}/turfs/{body['turf']['id']}", headers=world.headers("organizer"))).json()
    polygon = shape(turf["geometry"])
    minx, miny, maxx, maxy = polygon.bounds
    middle = float(np.median([b["point"][axis] for b in body["buildings"]]))
    return polygon.intersection(shapely.box(minx, miny, middle, maxy) if axis == 0
                                else shapely.box(minx, miny, maxx, middle))


def households(body: dict) -> list[dict]:
    return [h for b in body["buildings"] for h in b["households"]]


async def active_turfs(session) -> list:
    await session.rollback()
    return (await session.execute(select(Turf.id, Turf.doors, Turf.buildings, Turf.route_m, Turf.campaign_id)
                                  .where(Turf.status == "active").order_by(Turf.id))).all()


async def streets_turfs(session) -> list:
    """Turfs of several buildings (some are one big building), whose shapes can be cut in half."""
    return [t for t in await active_turfs(session) if t.buildings >= 6]


async def turf_near(session, doors: int):
    return min(await active_turfs(session), key=lambda t: (abs(t.doors - doors), t.id))


async def record(client, world, turf_id: int, door: int, result: str, at: datetime) -> None:
    """A knock at `door` of turf `turf_id` made `at`, synced as an organizer's (a partner's phone, say)."""
    r = await send(client, world, batch([{"id": str(uuid.uuid4()), "household_id": door, "turf_id": turf_id,
                                          "result": result, "knocked_at": at.isoformat()}]), "organizer")
    assert r.json()["accepted"] == 1, r.text


class TestWholeCity:
    async def test_every_household_of_every_turf_appears_once_along_a_route_through_every_building(
            self, cut_client, cut_session, world):
        turfs = await active_turfs(cut_session)
        members: dict[int, set[int]] = {}
        for turf_id, household_id in (await cut_session.execute(
                select(Household.turf_id, Household.id).where(Household.turf_id.is_not(None)))).all():
            members.setdefault(turf_id, set()).add(household_id)
        proj = await projection(cut_session, turfs[0].campaign_id)
        far = []
        for turf in turfs:
            r = await get_list(cut_client, world, turf.id)
            body = r.json()
            ids = [h["id"] for h in households(body)]
            assert len(ids) == len(set(ids)) == turf.doors, turf.id
            assert set(ids) == members[turf.id]
            assert len({b["id"] for b in body["buildings"]}) == len(body["buildings"])
            for b in body["buildings"]:
                units = [h["unit"] for h in b["households"]]
                assert units == sorted(units, key=natural_key), (turf.id, units)
            points = np.array([b["point"] for b in body["buildings"]])
            if len(points) > 1:
                assert body["route"]["type"] == "LineString" and body["route_m"] == turf.route_m > 0
                route = proj.to_metres(shape(body["route"]))
                x, y = proj.points(points[:, 0], points[:, 1])
                far += [(turf.id, d) for d in shapely.distance(shapely.points(x, y), route) if d > 1.0]
        assert not far

    async def test_walking_order_is_never_longer_than_a_nearest_neighbour_walk(self, cut_session):
        turfs = await active_turfs(cut_session)
        proj = await projection(cut_session, turfs[0].campaign_id)
        streets = await load_streets(cut_session, turfs[0].campaign_id, proj)
        doors = await walk_doors(cut_session, [t.id for t in turfs])
        stops = (await cut_session.execute(select(WalkStop.turf_id, WalkStop.household_id, WalkStop.seq)
                                           .where(WalkStop.removed.is_(False)))).all()
        seq = {s.household_id: (s.turf_id, s.seq) for s in stops}
        ratios = []
        for turf in turfs:
            group = doors[doors["turf"] == turf.id]
            building_ids, turf_stops = building_stops(streets, proj, group)
            dist = distances(streets.network, turf_stops)
            # The stored order of buildings: where each building's first door comes on the list.
            first = group.assign(seq=[seq[h][1] for h in group["household_id"]]).groupby("building_id")["seq"].min()
            index = {b: i for i, b in enumerate(building_ids)}
            order = np.array([index[b] for b in first.sort_values().index])
            assert sorted(order.tolist()) == list(range(len(building_ids)))
            length = path_length(dist, order)
            assert abs(length - turf.route_m) < 0.2, turf.id
            if len(order) > 2:
                best_nn = nearest_neighbour_lengths(dist).min()
                assert length <= best_nn + 1e-6, (turf.id, length, best_nn)
                ratios.append(length / best_nn)
        # Not only no longer: on the city as a whole, clearly shorter.
        assert np.mean(ratios) < 0.97


class TestContent:
    async def test_people_carry_only_what_a_canvasser_needs(self, cut_client, cut_session, world):
        turf = await turf_near(cut_session, 60)
        r = await get_list(cut_client, world, turf.id)
        body = r.json()
        people = [p for h in households(body) for p in h["people"]]
        assert people and all(set(p) == PERSON_KEYS for p in people)
        assert all(set(h) == HOUSEHOLD_KEYS for h in households(body))
        assert {p["age_band"] for p in people} <= {"18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+"}
        # No voter-file or address-file ids, no birth years, nothing of another turf.
        assert "SYN-" not in r.text and "CAM14-" not in r.text and "birth" not in r.text
        others = set((await cut_session.execute(select(Household.id).where(Household.turf_id != turf.id)))
                     .scalars())
        assert not {h["id"] for h in households(body)} & others
        assert set(body) == {"turf", "version", "since", "full", "script", "route", "route_m", "buildings"}
        assert body["script"]["result_codes"][0]["code"] == "not_home" and body["script"]["questions"] == []

    async def test_a_sixty_door_list_is_gzipped_well_under_30_kb(self, cut_client, cut_session, world):
        turf = await turf_near(cut_session, 60)
        headers = {**world.headers("canvasser"), "Accept-Encoding": "gzip"}
        # Not theirs yet: as if it didn't exist.
        r = await cut_client.get(f"{HOME}/turfs/{turf.id}/walklist", headers=headers)
        assert assert_problem(r, 404)["detail"] == f"No turf {turf.id} in this campaign."
        await cut_client.post(f"{HOME}/turfs/{turf.id}/assignments",
                              json={"user_ids": [str(world.users["canvasser"])]}, headers=world.headers("organizer"))
        r = await cut_client.get(f"{HOME}/turfs/{turf.id}/walklist", headers=headers)
        assert r.headers["content-encoding"] == "gzip"
        assert int(r.headers["content-length"]) < 30_000 < len(r.content) * 3
        assert len(households(r.json())) == turf.doors >= 55


class TestCaching:
    async def test_etag_moves_with_doors_and_results_and_nothing_else(self, cut_client, cut_session, world):
        turfs = await streets_turfs(cut_session)
        mine, other = turfs[0], turfs[1]
        first = await get_list(cut_client, world, mine.id)
        etag = first.headers["etag"]
        again = await get_list(cut_client, world, mine.id, etag=etag)
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag

        # Someone takes the turf, and a partner's result lands on another turf: this list is unchanged.
        await cut_client.post(f"{HOME}/turfs/{mine.id}/assignments",
                              json={"user_ids": [str(world.users["canvasser"])]}, headers=world.headers("organizer"))
        other_door = households((await get_list(cut_client, world, other.id)).json())[0]["id"]
        now = datetime.now(UTC)
        await record(cut_client, world, other.id, other_door, "not_home", now)
        assert (await get_list(cut_client, world, mine.id, etag=etag)).status_code == 304

        # A result at one of its doors changes it; a result older than that one doesn't.
        door = households(first.json())[3]["id"]
        await record(cut_client, world, mine.id, door, "contacted", now)
        changed = await get_list(cut_client, world, mine.id, "canvasser", etag=etag)
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert {h["id"]: h["last_result"] for h in households(changed.json())}[door]["result"] == "contacted"
        etag = changed.headers["etag"]
        # Synced late, it is stored; the door's last result stays the later one.
        await record(cut_client, world, mine.id, door, "refused", now - timedelta(hours=1))
        assert (await get_list(cut_client, world, mine.id, etag=etag)).status_code == 304

        # Its doors change: the shape shrinks to the western half.
        west = await half(cut_client, world, first.json(), 0)
        r = await cut_client.patch(f"{HOME}/turfs/{mine.id}", json={"geometry": mapping(west)},
                                   headers=world.headers("organizer"))
        assert r.status_code == 200, r.text
        assert 0 < r.json()["doors"] < mine.doors
        shrunk = await get_list(cut_client, world, mine.id, etag=etag)
        assert shrunk.status_code == 200 and shrunk.headers["etag"] != etag
        assert len(households(shrunk.json())) == r.json()["doors"]


class TestSince:
    async def test_a_refresh_brings_only_what_changed(self, cut_client, cut_session, world):
        turf = (await streets_turfs(cut_session))[5]
        whole = (await get_list(cut_client, world, turf.id)).json()
        version = whole["version"]
        nothing = (await get_list(cut_client, world, turf.id, since=version)).json()
        assert (nothing["full"], nothing["buildings"], nothing["removed"]) == (False, [], [])
        assert "script" not in nothing and "route" not in nothing and "order" not in nothing

        # A partner's result: just that door, in its building.
        door = households(whole)[-1]
        await record(cut_client, world, turf.id, door["id"], "not_home", datetime.now(UTC))
        delta = (await get_list(cut_client, world, turf.id, since=version)).json()
        assert delta["version"] > version and delta["since"] == version
        assert [[h["id"] for h in b["households"]] for b in delta["buildings"]] == [[door["id"]]]
        assert households(delta)[0]["last_result"]["result"] == "not_home"
        assert households(delta)[0]["people"] == door["people"]
        assert "script" not in delta and "route" not in delta

        # A new script version reaches the turf: the delta from the last version carries it alone.
        version = delta["version"]
        script = (await cut_client.post(f"{HOME}/scripts", json={
            "name": "Doors 2026", "questions": [{"id": "support", "text": "Can we count on you?", "kind": "single",
                                                 "choices": [{"id": "yes", "label": "Yes"},
                                                             {"id": "no", "label": "No"}]}]},
            headers=world.headers("organizer"))).json()
        await cut_client.put(f"{HOME}/scripts/{script['id']}/uses", json={"turf_ids": [turf.id]},
                             headers=world.headers("organizer"))
        delta = (await get_list(cut_client, world, turf.id, since=version)).json()
        assert delta["script"]["script_id"] == script["id"] and delta["script"]["version"] == 1
        assert delta["buildings"] == [] and delta["removed"] == []

        # Doors leave: they come back as removed, with the new order.
        version = delta["version"]
        south = await half(cut_client, world, whole, 1)
        kept = (await cut_client.patch(f"{HOME}/turfs/{turf.id}", json={"geometry": mapping(south)},
                                       headers=world.headers("organizer"))).json()
        delta = (await get_list(cut_client, world, turf.id, since=version)).json()
        before = {h["id"] for h in households(whole)}
        assert set(delta["order"]) == {h["id"] for h in kept["households"]}
        assert set(delta["removed"]) == before - set(delta["order"]) != set()
        assert delta["buildings"] == [] and "route" in delta and "script" not in delta

        r = await get_list(cut_client, world, turf.id, since=delta["version"] + 1)
        assert assert_problem(r, 422)["errors"][0]["field"] == "since"

    async def test_new_names_from_the_voter_file_reach_the_turfs_holding_them(self, cut_client, cut_session, world):
        turf = (await streets_turfs(cut_session))[7]
        whole = (await get_list(cut_client, world, turf.id)).json()
        campaign_id = turf.campaign_id
        await make_demo_people(cut_session, campaign_id, seed=8)
        delta = (await get_list(cut_client, world, turf.id, since=whole["version"])).json()
        assert delta["version"] > whole["version"]
        assert {h["id"] for h in households(delta)} <= {h["id"] for h in households(whole)}
        assert households(delta) and households(delta) != households(whole)


class TestStoredOrder:
    async def test_a_drawn_turf_stores_its_order_and_a_take_over_removes_doors(self, cut_client, cut_session, world):
        turf = (await streets_turfs(cut_session))[9]
        whole = (await get_list(cut_client, world, turf.id)).json()
        points = np.array([b["point"] for b in whole["buildings"]])
        middle = np.median(points, axis=0)
        corner = shapely.box(points[:, 0].min() - 0.0005, points[:, 1].min() - 0.0005, middle[0], middle[1])
        r = await cut_client.post(f"{HOME}/turfs", json={"geometry": mapping(corner), "take_over": True},
                                  headers=world.headers("organizer"))
        assert r.status_code == 201
        drawn = r.json()
        await cut_session.rollback()
        stops = (await cut_session.execute(select(WalkStop.household_id, WalkStop.removed, WalkStop.seq)
                                           .where(WalkStop.turf_id == drawn["id"]))).all()
        assert sorted(s.household_id for s in stops) == sorted(h["id"] for h in drawn["households"])
        assert sorted(s.seq for s in stops) == list(range(len(stops))) and not any(s.removed for s in stops)
        taken = {s.household_id for s in stops}
        gone = (await cut_session.execute(select(WalkStop.household_id).where(
            WalkStop.turf_id == turf.id, WalkStop.removed.is_(True)))).scalars().all()
        assert set(gone) == taken & {h["id"] for h in households(whole)} != set()

    async def test_a_turf_from_before_walk_lists_is_ordered_on_first_read(self, cut_client, cut_session, world):
        turf = (await streets_turfs(cut_session))[11]
        await begin_write(cut_session)
        await cut_session.execute(delete(WalkStop).where(WalkStop.turf_id == turf.id))
        await cut_session.execute(update(Turf).where(Turf.id == turf.id).values(route=None, route_m=0))
        await cut_session.commit()
        body = (await get_list(cut_client, world, turf.id)).json()
        assert len(households(body)) == turf.doors and body["route_m"] > 0
        assert await cut_session.scalar(select(func.count()).select_from(WalkStop)
                                        .where(WalkStop.turf_id == turf.id)) == turf.doors
