"""Precincts over HTTP: JSON pages, GeoJSON, one precinct, import."""

import json

import shapely
from shapely.geometry import shape
from sqlalchemy import func, select

from app.campaigns.models import Campaign
from app.precincts.models import Precinct
from tests.factories import DATA
from tests.test_errors import assert_problem

BASE = "/v1/campaigns/cambridge/precincts"


class TestListPrecincts:
    async def test_pages_follow_cursors_through_all_33(self, client, world):
        seen, cursor, pages = [], None, 0
        while True:
            r = await client.get(BASE, params={"limit": 10, **({"cursor": cursor} if cursor else {})},
                                 headers=world.headers("canvasser"))
            assert r.status_code == 200
            body = r.json()
            seen += [p["id"] for p in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            assert ("link" in r.headers) == (cursor is not None)
            if cursor is None:
                break
        assert pages == 4 and len(seen) == len(set(seen)) == 33
        assert "geometry" not in body["items"][0]

    async def test_geojson_is_an_rfc7946_feature_collection(self, client, world):
        r = await client.get(BASE, headers={**world.headers("key_all"), "Accept": "application/geo+json"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
        body = r.json()
        assert body["type"] == "FeatureCollection" and len(body["features"]) == 33
        for feature in body["features"]:
            assert feature["type"] == "Feature" and shape(feature["geometry"]).is_valid
            assert feature["id"] == feature["properties"]["id"]
            assert set(feature["properties"]) == {"id", "name", "buildings", "households", "people"}
        total = sum(f["properties"]["households"] for f in body["features"])
        assert total == 25336

    async def test_format_query_also_asks_for_geojson(self, client, world):
        r = await client.get(BASE, params={"format": "geojson", "limit": 5}, headers=world.headers("organizer"))
        body = r.json()
        assert len(body["features"]) == 5 and body["next_cursor"]
        assert 'rel="next"' in r.headers["link"]


class TestReadPrecinct:
    async def test_9_1_with_counts_and_polygon(self, client, world):
        r = await client.get(f"{BASE}/9-1", headers=world.headers("organizer"))
        body = r.json()
        assert (body["id"], body["name"], body["households"]) == ("9-1", "Ward 9 Precinct 1", 1402)
        assert body["buildings"] > 0 and body["people"] >= 1402
        polygon = shape(body["geometry"])
        assert polygon.is_valid and shapely.box(*body["bbox"]).contains(polygon)

    async def test_unknown_precinct_is_404(self, client, world):
        assert_problem(await client.get(f"{BASE}/99-9", headers=world.headers("organizer")), 404)


class TestImportPrecinctsOverHttp:
    async def test_feature_collection_updates_what_changed(self, client, world, session):
        collection = json.loads((DATA / "precincts.geojson").read_text())
        r = await client.post("/v1/campaigns/somerville/precincts", params={"name_field": "name"}, json=collection,
                              headers=world.headers("foreign_organizer"))
        assert r.status_code == 200, r.text
        assert {k: r.json()[k] for k in ("read", "created", "updated", "unchanged", "rejected")} == {
            "read": 33, "created": 0, "updated": 0, "unchanged": 33, "rejected": 0}
        # Without a name field the id becomes the name: three precincts change.
        collection["features"] = collection["features"][:3]
        r = await client.post("/v1/campaigns/somerville/precincts", json=collection,
                              headers=world.headers("foreign_organizer"))
        assert (r.json()["updated"], r.json()["unchanged"]) == (3, 0)
        names = (await session.execute(select(Precinct.code, Precinct.name).join_from(Precinct, Campaign)
                                       .where(Campaign.slug == "somerville", Precinct.code == Precinct.name))).all()
        assert len(names) == 3

    async def test_new_campaign_precincts_and_repair_report(self, client, world, session):
        bowtie = {"type": "Polygon", "coordinates": [[[-71.1, 42.37], [-71.09, 42.38], [-71.09, 42.37],
                                                      [-71.1, 42.38], [-71.1, 42.37]]]}
        body = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"precinct_id": "Z-1"}, "geometry": bowtie}]}
        r = await client.post(BASE, json=body, headers=world.headers("admin"))
        assert (r.json()["created"], r.json()["repaired"]) == (1, 1)
        stored = await session.scalar(select(Precinct.geometry).where(Precinct.code == "Z-1"))
        assert shapely.from_wkb(stored).is_valid

    async def test_not_a_feature_collection_is_422_naming_the_field(self, client, world, session):
        before = await session.scalar(select(func.count()).select_from(Precinct))
        r = await client.post(BASE, json={"type": "Feature", "features": []}, headers=world.headers("organizer"))
        body = assert_problem(r, 422)
        assert {e["field"] for e in body["errors"]} == {"body.type", "body.features"}
        collection = json.loads((DATA / "precincts.geojson").read_text())
        r = await client.post(BASE, params={"id_field": "nope"}, json=collection, headers=world.headers("organizer"))
        problem = assert_problem(r, 422)
        assert "no field 'nope'" in problem["detail"] and problem["errors"][0]["field"] == "id_field"
        assert await session.scalar(select(func.count()).select_from(Precinct)) == before
