"""Households and file uploads over HTTP."""

import pandas as pd
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.addresses.models import Household, Person
from app.main import create_app
from tests.factories import DATA
from tests.test_errors import assert_problem

BASE = "/v1/campaigns/cambridge"


class TestListHouseholds:
    async def test_all_of_9_1_across_pages_and_no_names(self, client, world):
        ids, cursor = [], None
        while True:
            params = {"precinct": "9-1", "limit": 500, **({"cursor": cursor} if cursor else {})}
            r = await client.get(f"{BASE}/households", params=params, headers=world.headers("organizer"))
            body = r.json()
            assert all(h["precinct_id"] == "9-1" for h in body["items"])
            ids += [h["id"] for h in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert len(ids) == len(set(ids)) == 1402
        assert set(body["items"][0]) == {"id", "address_id", "number", "street", "unit", "building_id",
                                         "precinct_id", "lon", "lat", "people"}

    async def test_people_counts_match_the_rows(self, client, world, session):
        r = await client.get(f"{BASE}/households", params={"limit": 50}, headers=world.headers("admin"))
        items = r.json()["items"]
        counts = dict((await session.execute(select(Person.household_id, func.count())
                                             .where(Person.household_id.in_([h["id"] for h in items]))
                                             .group_by(Person.household_id))).all())
        assert {h["id"]: h["people"] for h in items} == {h["id"]: counts.get(h["id"], 0) for h in items}

    async def test_unknown_precinct_is_404(self, client, world):
        assert_problem(await client.get(f"{BASE}/households", params={"precinct": "0-0"},
                                        headers=world.headers("organizer")), 404)


class TestUploads:
    async def test_address_upload_with_map_reports_counts(self, client, world, session, tmp_path):
        rows = pd.read_csv(DATA / "addresses.csv", dtype=str, keep_default_na=False).iloc[1000:1100]
        rows = rows.rename(columns={"address_id": "ID"})
        content = rows.to_csv(index=False).encode()
        r = await client.post("/v1/campaigns/somerville/addresses", files={"file": ("more.csv", content, "text/csv")},
                              data={"map": ["id=ID"]}, headers=world.headers("foreign_admin"))
        assert r.status_code == 200, r.text
        assert (r.json()["file"], r.json()["created"], r.json()["rejected"]) == ("more.csv", 100, 0)
        somerville = await session.scalar(select(func.count()).select_from(Household)
                                          .where(Household.external_id.in_(rows["ID"].tolist())))
        assert somerville == 200  # the same 100 addresses in Cambridge and now in Somerville

    async def test_bad_upload_is_a_problem_and_writes_nothing(self, client, world, session):
        before = await session.scalar(select(func.count()).select_from(Household))
        content = b"address_id,number,street,lat\nA-1,1,MAIN ST,42.37\n"
        r = await client.post(f"{BASE}/addresses", files={"file": ("nolon.csv", content, "text/csv")},
                              headers=world.headers("organizer"))
        assert "nolon.csv: no column 'lon'" in assert_problem(r, 422)["detail"]
        r = await client.post(f"{BASE}/addresses", files={"file": ("a.csv", b"x", "text/csv")},
                              data={"map": ["nonsense"]}, headers=world.headers("organizer"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "map"
        assert await session.scalar(select(func.count()).select_from(Household)) == before

    async def test_people_upload_reports_rejections_without_names(self, client, world):
        content = (b"voter_id,address_id,first_name,last_name\nV1,CAM14-000004,Ana,Secretname\n"
                   b"V2,NOPE,Bo,Hiddenname\n")
        r = await client.post(f"{BASE}/people", files={"file": ("v.csv", content, "text/csv")},
                              headers=world.headers("organizer"))
        body = r.json()
        assert (body["created"], body["rejected"]) == (1, 1)
        assert body["rejections"] == [{"file": "v.csv", "row": 2, "column": "address_id",
                                       "reason": "no household has this address id", "id": "V2"}]
        assert "Secretname" not in r.text and "Hiddenname" not in r.text

    async def test_oversized_upload_is_413(self, world, settings, session):
        app = create_app(settings.model_copy(update={"upload_max_bytes": 4096}))
        content = b"address_id,number,street,lon,lat\n" + b"A,1,S,-71.1,42.37\n" * 1000
        async with app.router.lifespan_context(app), AsyncClient(transport=ASGITransport(app=app),
                                                                 base_url="http://test") as client:
            r = await client.post(f"{BASE}/addresses", files={"file": ("big.csv", content, "text/csv")},
                                  headers=world.headers("organizer"))
        assert assert_problem(r, 413)["limit"] == 4096
        stored = select(func.count()).select_from(Household).where(Household.external_id == "A")
        assert await session.scalar(stored) == 0
