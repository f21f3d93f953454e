"""Drawn turfs and reading turfs over HTTP."""

import numpy as np
import pytest
import shapely
from shapely.geometry import mapping, shape
from sqlalchemy import func, select, update

from app.addresses.models import Building, Household
from app.campaigns.models import Campaign
from app.db import begin_write
from app.precincts.models import Precinct
from app.turfs.models import Turf
from tests.factories import stale_shapes
from tests.test_errors import assert_problem

HOME = "/v1/campaigns/cambridge"


async def doors_of_precinct(session, code: str = "9-1"):
    """Building points and household counts of a Cambridge precinct."""
    rows = (await session.execute(
        select(Building.id, Building.lon, Building.lat, func.count(Household.id))
        .join(Household, Household.building_id == Building.id).join(Precinct, Precinct.id == Building.precinct_id)
        .join(Campaign, Campaign.id == Precinct.campaign_id)
        .where(Campaign.slug == "cambridge", Precinct.code == code).group_by(Building.id))).all()
    return rows


def box_around(rows, n: int, pad: float = 0.00005, *, east: float = 0.0):
    """A rectangle around `n` neighbouring buildings in the middle of the precinct (or `east` degrees east)."""
    lon = float(np.median([r.lon for r in rows])) + east
    lat = float(np.median([r.lat for r in rows]))
    rows = sorted(rows, key=lambda r: ((r.lon - lon) ** 2 + (r.lat - lat) ** 2, r.id))[:n]
    box = shapely.box(min(r.lon for r in rows) - pad, min(r.lat for r in rows) - pad,
                      max(r.lon for r in rows) + pad, max(r.lat for r in rows) + pad)
    return box


def inside(rows, polygon) -> int:
    return sum(r[3] for r in rows if polygon.intersects(shapely.Point(r.lon, r.lat)))


async def turf_count(session) -> int:
    await session.rollback()  # a new snapshot: SQLite reads see the database as their transaction began
    return await session.scalar(select(func.count()).select_from(Turf))


class TestDrawTurf:
    async def test_the_doors_inside_become_the_turf(self, client, world, session):
        rows = await doors_of_precinct(session)
        polygon = box_around(rows, 12)
        r = await client.post(f"{HOME}/turfs", json={"name": "Sparks St", "geometry": mapping(polygon)},
                              headers=world.headers("organizer"))
        assert r.status_code == 201, r.text
        turf = r.json()
        assert (turf["name"], turf["precinct_id"], turf["source"], turf["status"]) == ("Sparks St", "9-1", "drawn",
                                                                                      "active")
        assert turf["doors"] == inside(rows, polygon) == len(turf["households"]) > 0
        assert turf["buildings"] == len({h["building_id"] for h in turf["households"]})
        # As drawn, snapped to the stored grid of 6 decimals.
        assert shapely.hausdorff_distance(shape(turf["geometry"]), polygon) < 1e-6
        await session.rollback()  # a new snapshot: SQLite reads see the database as their transaction began
        stored = await session.scalar(select(func.count()).select_from(Household)
                                      .where(Household.turf_id == turf["id"]))
        assert stored == turf["doors"]
        again = (await client.get(f"{HOME}/turfs/{turf['id']}", headers=world.headers("key_all"))).json()
        assert again["households"] == turf["households"]

    @pytest.mark.parametrize(("geometry", "field", "words"), [
        ({"type": "Polygon", "coordinates": [[[-71.13, 42.37], [-71.12, 42.38], [-71.12, 42.37], [-71.13, 42.38],
                                              [-71.13, 42.37]]]}, "geometry.coordinates",
         "self-intersection at (-71.125, 42.375)"),
        ({"type": "Polygon", "coordinates": [[[-71.13, 42.37], [-71.13, 142.38], [-71.12, 142.38], [-71.13, 42.37]]]},
         "geometry.coordinates", "coordinates out of range"),
        ({"type": "Polygon", "coordinates": [[[-71.13, 42.37], [-71.12999, 42.37], [-71.12999, 42.37001],
                                              [-71.13, 42.37]]]}, "geometry.coordinates", "too small for a turf"),
        ({"type": "Polygon", "coordinates": [[[-70.5, 42.0], [-70.4, 42.0], [-70.4, 42.1], [-70.5, 42.0]]]},
         "geometry", "holds no door"),
        ({"type": "Polygon", "coordinates": [[[-71.13, 42.37]]]}, "geometry.coordinates", "not GeoJSON Polygon"),
        ({"type": "Polygon", "coordinates": []}, "body.geometry.coordinates", "at least 1 item"),
        ({"type": "Point", "coordinates": [-71.13, 42.37]}, "body.geometry.type", "Polygon"),
    ])
    async def test_bad_shapes_get_422_naming_the_fault_and_write_nothing(self, client, world, session, geometry,
                                                                         field, words):
        r = await client.post(f"{HOME}/turfs", json={"geometry": geometry}, headers=world.headers("organizer"))
        problem = assert_problem(r, 422)
        assert problem["errors"][0]["field"] == field
        assert words in problem["detail"] or words in problem["errors"][0]["message"]
        if "self-intersection" in words:
            assert problem["point"] == [-71.125, 42.375]
        assert await turf_count(session) == 0
        assert await session.scalar(select(func.count()).select_from(Household)
                                    .where(Household.turf_id.is_not(None))) == 0

    async def test_overlap_is_409_naming_the_turfs_unless_taking_over(self, client, world, session):
        rows = await doors_of_precinct(session)
        first = box_around(rows, 20)
        a = (await client.post(f"{HOME}/turfs", json={"name": "A", "geometry": mapping(first)},
                               headers=world.headers("organizer"))).json()
        second = shapely.box(first.centroid.x, first.bounds[1], first.bounds[2] + 0.001, first.bounds[3])
        r = await client.post(f"{HOME}/turfs", json={"name": "B", "geometry": mapping(second)},
                              headers=world.headers("organizer"))
        assert assert_problem(r, 409)["turfs"] == [{"id": a["id"], "name": "A"}]
        assert await turf_count(session) == 1
        r = await client.post(f"{HOME}/turfs", json={"name": "B", "geometry": mapping(second), "take_over": True},
                              headers=world.headers("organizer"))
        b = r.json()
        assert r.status_code == 201 and b["doors"] == inside(rows, second)
        shrunk = (await client.get(f"{HOME}/turfs/{a['id']}", headers=world.headers("organizer"))).json()
        assert shrunk["doors"] == inside(rows, first) - inside(rows, first.intersection(second))
        # What is left of A and the new B share their edge: no overlap, beyond float noise.
        assert shape(shrunk["geometry"]).intersection(shape(b["geometry"])).area < 1e-15
        assert not {h["id"] for h in shrunk["households"]} & {h["id"] for h in b["households"]}
        # Both shapes changed; their GeoJSON text (maps, walk lists) followed.
        assert await stale_shapes(session) == []

    async def test_touching_turfs_are_neighbours_not_overlaps(self, client, world, session):
        rows = await doors_of_precinct(session)
        first = box_around(rows, 20)
        west = shapely.box(first.bounds[0] - 0.002, first.bounds[1], first.bounds[0], first.bounds[3])
        await client.post(f"{HOME}/turfs", json={"geometry": mapping(first)}, headers=world.headers("organizer"))
        r = await client.post(f"{HOME}/turfs", json={"geometry": mapping(west)}, headers=world.headers("organizer"))
        assert r.status_code == 201, r.text
        assert r.json()["doors"] == inside(rows, west) > 0


class TestChangeTurf:
    async def test_rename_and_reshape_recompute_doors(self, client, world, session):
        rows = await doors_of_precinct(session)
        polygon = box_around(rows, 10)
        turf = (await client.post(f"{HOME}/turfs", json={"geometry": mapping(polygon)},
                                  headers=world.headers("organizer"))).json()
        assert turf["name"].startswith("9-1-D")
        r = await client.patch(f"{HOME}/turfs/{turf['id']}", json={"name": "Walden St"},
                               headers=world.headers("organizer"))
        # The name is on the walk list, so phones holding the turf see a new version.
        assert (r.json()["name"], r.json()["doors"], r.json()["version"]) == ("Walden St", turf["doors"],
                                                                               turf["version"] + 1)
        bigger = box_around(rows, 30)
        r = await client.patch(f"{HOME}/turfs/{turf['id']}", json={"geometry": mapping(bigger)},
                               headers=world.headers("admin"))
        changed = r.json()
        assert changed["doors"] == inside(rows, bigger) > turf["doors"] and changed["version"] > turf["version"]
        await session.rollback()
        assert await session.scalar(select(func.count()).select_from(Household)
                                    .where(Household.turf_id == turf["id"])) == changed["doors"]
        assert await stale_shapes(session) == []
        r = await client.patch(f"{HOME}/turfs/{turf['id']}", json={"name": ""}, headers=world.headers("admin"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "body.name"

    async def test_delete_removes_an_unworked_turf_and_archives_a_worked_one(self, client, world, session):
        rows = await doors_of_precinct(session)
        left = (await client.post(f"{HOME}/turfs", json={"geometry": mapping(box_around(rows, 10))},
                                  headers=world.headers("organizer"))).json()
        right_box = box_around(rows, 10, east=0.004)
        right = (await client.post(f"{HOME}/turfs", json={"geometry": mapping(right_box)},
                                   headers=world.headers("organizer"))).json()
        # Sync keeps this counter; a worked turf is one with knocks.
        await begin_write(session)
        await session.execute(update(Turf).where(Turf.id == right["id"]).values(knocks=4))
        await session.commit()
        r = await client.delete(f"{HOME}/turfs/{left['id']}", headers=world.headers("organizer"))
        assert r.json() == {"id": left["id"], "outcome": "deleted"}
        assert_problem(await client.get(f"{HOME}/turfs/{left['id']}", headers=world.headers("organizer")), 404)
        await session.rollback()
        r = await client.delete(f"{HOME}/turfs/{right['id']}", headers=world.headers("organizer"))
        assert r.json() == {"id": right["id"], "outcome": "archived"}
        archived = (await client.get(f"{HOME}/turfs/{right['id']}", headers=world.headers("organizer"))).json()
        assert (archived["status"], archived["doors"], archived["households"]) == ("archived", 0, [])
        assert await session.scalar(select(func.count()).select_from(Household)
                                    .where(Household.turf_id.is_not(None))) == 0
        assert_problem(await client.delete(f"{HOME}/turfs/{right['id']}", headers=world.headers("organizer")), 409)

    async def test_a_held_turf_is_not_deleted(self, client, world, session):
        rows = await doors_of_precinct(session)
        turf = (await client.post(f"{HOME}/turfs", json={"geometry": mapping(box_around(rows, 10))},
                                  headers=world.headers("organizer"))).json()
        await begin_write(session)
        await session.execute(update(Turf).where(Turf.id == turf["id"]).values(holders=1))
        await session.commit()
        r = await client.delete(f"{HOME}/turfs/{turf['id']}", headers=world.headers("organizer"))
        assert "held by 1" in assert_problem(r, 409)["detail"]
        assert await turf_count(session) == 1


class TestReadTurfs:
    async def test_json_pages_and_filters(self, cut_client, world, cut_session):
        ids, cursor = [], None
        while True:
            params = {"precinct": "9-1", "limit": 10, **({"cursor": cursor} if cursor else {})}
            body = (await cut_client.get(f"{HOME}/turfs", params=params, headers=world.headers("organizer"))).json()
            assert all(t["precinct_id"] == "9-1" and t["status"] == "active" for t in body["items"])
            ids += [t["id"] for t in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert len(ids) == len(set(ids)) == round(1402 / 50)
        archived = (await cut_client.get(f"{HOME}/turfs", params={"status": "archived"},
                                         headers=world.headers("organizer"))).json()
        assert archived["items"] == []
        r = await cut_client.get(f"{HOME}/turfs", params={"status": "gone"}, headers=world.headers("organizer"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "query.status"

    async def test_geojson_features_carry_the_turf_figures(self, cut_client, world):
        r = await cut_client.get(f"{HOME}/turfs", params={"limit": 1000},
                                 headers={**world.headers("key_all"), "Accept": "application/geo+json"})
        assert r.headers["content-type"] == "application/geo+json"
        body = r.json()
        assert body["type"] == "FeatureCollection" and "next_cursor" not in body
        doors = 0
        for feature in body["features"]:
            assert set(feature["properties"]) == {"id", "name", "precinct_id", "doors", "buildings", "status",
                                                  "holders"}
            polygon = shape(feature["geometry"])
            assert polygon.is_valid and polygon.geom_type == "Polygon"
            doors += feature["properties"]["doors"]
        assert doors == 25336
        sizes = np.array([f["properties"]["doors"] for f in body["features"]])
        assert sizes.std() / sizes.mean() < 0.10
