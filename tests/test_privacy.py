"""Personal data stays in: no SQL parameter in a log or an error, notes only with people:read, security headers on
every answer, no server path in an error."""

import csv
import io
import logging
import os
import sys
import tempfile
import traceback
from contextlib import asynccontextmanager

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from app.addresses.models import Household
from app.auth import service as auth_service
from app.auth.scopes import Scope
from app.campaigns import service as campaign_service
from app.config import Settings
from app.db import make_engine
from app.main import create_app
from tests.conftest import app_client
from tests.factories import SECRET
from tests.sync.helpers import HOME, batch, doors, hold, knock, send
from tests.test_errors import assert_problem

# A voter's name that must never leave the database but in an answer to someone allowed to read it.
VOTER = "Zebulon Quillfeather"
NOTE = "Mrs Quillfeather is home after 6, her son votes elsewhere"
SECURITY = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY"}
API_POLICY = "default-src 'none'; frame-ancestors 'none'"


class TestSqlParameters:
    async def test_a_failing_statement_logs_and_says_nothing_of_its_parameters(self, db_url, session, caplog):
        household = (await session.execute(select(Household.id, Household.campaign_id).limit(1))).one()
        await session.rollback()
        # echo logs every statement: what a deployment logging SQL would write.
        engine = make_engine(db_url, echo=True)
        caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
        try:
            async with engine.begin() as conn:
                # No external_id: the NOT NULL constraint fails; PostgreSQL's DETAIL would repeat the whole row.
                with pytest.raises(DBAPIError) as failed:
                    await conn.execute(text(
                        "INSERT INTO person (campaign_id, household_id, external_id, first_name, last_name, synthetic) "
                        "VALUES (:campaign, :household, NULL, :first, :last, false)"),
                        {"campaign": household.campaign_id, "household": household.id,
                         "first": VOTER.split()[0], "last": VOTER.split()[1]})
        finally:
            await engine.dispose()
        said = "".join(traceback.format_exception(failed.value))
        assert "INSERT INTO person" in said and "parameters hidden" in said
        assert "INSERT INTO person" in caplog.text, "the statement is logged, only its parameters are not"
        for part in VOTER.split():
            assert part not in said, said
            assert part not in caplog.text, caplog.text


async def _knock_with_note(client, session, world) -> tuple[dict, str]:
    """A knock synced with a note naming the person; a results:read key without people:read."""
    walk = await hold(client, world)
    person = doors(walk)[0]["people"][0]
    r = await send(client, world, batch([knock(walk, 0, "contacted", person_id=person["id"], note=NOTE)]))
    assert r.json()["accepted"] == 1, r.text
    home = await campaign_service.get_campaign(session, HOME.rsplit("/", 1)[1])
    assert home.id is not None
    _, results_only = await auth_service.create_api_key(session, home.id, name="results only",
                                                        scopes=[Scope.results_read], created_by=None)
    return person, results_only


class TestNotes:
    async def test_the_feed_shows_notes_only_with_people_read(self, cut_client, cut_session, world):
        person, results_only = await _knock_with_note(cut_client, cut_session, world)
        for who in ("organizer", "admin", "key_all"):
            item = (await cut_client.get(f"{HOME}/door-knocks", headers=world.headers(who))).json()["items"][0]
            assert (item["note"], item["person_name"]) == (NOTE, person["name"]), who
        r = await cut_client.get(f"{HOME}/door-knocks", headers={"X-API-Key": results_only})
        assert r.status_code == 200, r.text
        item = r.json()["items"][0]
        assert item["note"] is None and item["result"] == "contacted" and "person_name" not in item
        assert "Quillfeather" not in r.text

    async def test_the_csv_shows_notes_only_with_people_read(self, cut_client, cut_session, world):
        person, results_only = await _knock_with_note(cut_client, cut_session, world)
        r = await cut_client.get(f"{HOME}/door-knocks.csv", headers={"X-API-Key": results_only})
        assert r.status_code == 200, r.text
        [row] = list(csv.DictReader(io.StringIO(r.text)))
        assert row["note"] == "" and row["result"] == "contacted" and "person_name" not in row
        assert "Quillfeather" not in r.text
        for who in ("organizer", "key_all"):
            r = await cut_client.get(f"{HOME}/door-knocks.csv", headers=world.headers(who))
            [row] = list(csv.DictReader(io.StringIO(r.text)))
            assert (row["note"], row["person_name"]) == (NOTE, person["name"]), who


def assert_secured(response, policy: str = API_POLICY) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, (name, response.headers)
    assert response.headers["content-security-policy"] == policy
    assert "strict-transport-security" not in response.headers


class TestSecurityHeaders:
    async def test_on_json_geojson_and_errors(self, client, world):
        r = await client.get(f"{HOME}/precincts", headers=world.headers("organizer"))
        assert r.status_code == 200 and r.json()["items"]
        assert_secured(r)
        r = await client.get(f"{HOME}/precincts", headers={**world.headers("organizer"),
                                                           "Accept": "application/geo+json"})
        assert r.headers["content-type"].startswith("application/geo+json") and r.json()["features"]
        assert_secured(r)
        assert_secured(r := await client.get("/v1/nowhere"))
        assert_problem(r, 404)
        r = await client.get(f"{HOME}/precincts", params={"limit": "many"}, headers=world.headers("organizer"))
        assert_problem(r, 422)
        assert_secured(r)
        r = await client.get(f"{HOME}/precincts")
        assert_problem(r, 401)
        assert_secured(r)

    async def test_on_gzipped_and_streamed_answers(self, cut_client, world):
        walk = await hold(cut_client, world)
        r = await cut_client.get(f"{HOME}/turfs/{walk['turf']['id']}/walklist",
                                 headers={**world.headers("canvasser"), "Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip" and r.json()["buildings"] == walk["buildings"]
        assert_secured(r)
        async with cut_client.stream("GET", f"{HOME}/door-knocks.csv", headers=world.headers("organizer")) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            assert (await r.aread()).startswith(b"seq,")
            assert_secured(r)

    # The docs pages' own policy: tests/test_docs.py.
    async def test_hsts_only_when_the_setting_says_so(self, db_url, world):
        async with app_client(db_url, hsts_max_age_s=31_536_000) as c:
            for r in (await c.get(f"{HOME}/precincts", headers=world.headers("organizer")), await c.get("/nowhere"),
                      await c.get("/docs")):
                assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
                assert r.headers["x-content-type-options"] == "nosniff"


def server_paths() -> list[str]:
    return [p for p in {tempfile.gettempdir(), os.getcwd(), os.path.realpath(tempfile.gettempdir()), sys.prefix}
            if p.strip("/")]


class TestServerPaths:
    @pytest.mark.parametrize(("name", "content"), [
        ("voters.gpkg", b"SQLite format 3\x00" + b"\x00" * 84 + b"GPKG" + b"\x00" * 400),
        ("addresses.csv", b"address_id,number,street,lon,lat\n1,12,Main St,not-a-number,42.37\n"),
        ("addresses.geojson", b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '),
    ])
    async def test_a_failed_import_names_no_server_path(self, client, world, name, content):
        r = await client.post(f"{HOME}/addresses", files={"file": (name, content, "application/octet-stream")},
                              headers=world.headers("organizer"))
        assert 400 <= r.status_code < 500, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["detail"]
        for path in server_paths():
            assert path not in r.text, (path, r.text)
        assert_secured(r)

    async def test_an_internal_error_says_only_that(self, db_url, caplog):
        secret_path = os.path.join(tempfile.gettempdir(), "doorstep-secret", "voters.db")
        app = create_app(Settings(database_url=db_url, jwt_secret=SECRET, _env_file=None))

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError(f"{secret_path} is gone, and so is {VOTER}")

        @asynccontextmanager
        async def served():
            async with app.router.lifespan_context(app), AsyncClient(
                    transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test") as c:
                yield c

        with caplog.at_level(logging.ERROR, logger="doorstep"):
            async with served() as c:
                r = await c.get("/boom")
        body = assert_problem(r, 500)
        assert (body["title"], body["detail"]) == ("Internal error", "Something went wrong on our side; it is logged.")
        assert secret_path not in r.text and VOTER not in r.text
        assert_secured(r)
        assert "unhandled error on GET /boom" in caplog.text, "it is logged for the operator"


def test_paths_are_hidden_in_any_problem_text():
    from app.routers.problems import hide_paths
    temp = tempfile.gettempdir()
    said = hide_paths({"detail": f"'{temp}/doorstep-upload-x1/voters.gpkg' not recognized; see {os.getcwd()}/.env",
                       "errors": [{"field": "file", "message": f"{sys.prefix}/lib/gdal: failed"}]})
    assert said == {"detail": "'file' not recognized; see file",
                    "errors": [{"field": "file", "message": "file: failed"}]}
    # Paths of the request (and words that merely start like a server folder) stay.
    assert hide_paths("/v1/campaigns/cambridge/addresses") == "/v1/campaigns/cambridge/addresses"
    assert hide_paths(f"{temp}ish") == f"{temp}ish"


# A database of its own: an engine of its own, logging.
pytestmark = pytest.mark.own_database
