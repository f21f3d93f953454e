"""Every error is an RFC 9457 problem naming what is at fault."""

import asyncio
import re
import time
import uuid
from pathlib import Path

import pytest

from app.auth.service import issue_token
from tests.conftest import SECRET, app_client
from tests.factories import HOME

PROBLEM = "application/problem+json"


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= set(body)
    return body


class TestProblems:
    async def test_unknown_route_is_a_problem(self, client):
        body = assert_problem(await client.get("/v1/nowhere"), 404)
        assert body["instance"] == "/v1/nowhere"

    async def test_wrong_method_is_a_problem(self, client, world):
        assert_problem(await client.put("/v1/auth/token"), 405)

    async def test_validation_errors_name_each_field(self, client, world):
        r = await client.get("/v1/campaigns/cambridge/precincts", params={"limit": "many"},
                             headers=world.headers("organizer"))
        body = assert_problem(r, 422)
        assert [e["field"] for e in body["errors"]] == ["query.limit"]

    async def test_malformed_json_body_is_a_problem(self, client, world):
        r = await client.post("/v1/campaigns/cambridge/precincts", content=b"{not json",
                              headers={**world.headers("organizer"), "content-type": "application/json"})
        body = assert_problem(r, 422)
        assert body["errors"][0]["field"].startswith("body")

    async def test_a_bad_cursor_names_the_cursor(self, client, world):
        r = await client.get("/v1/campaigns/cambridge/precincts", params={"cursor": "%%%"},
                             headers=world.headers("organizer"))
        body = assert_problem(r, 422)
        assert body["errors"] == [{"field": "cursor", "message": "not a cursor this API gave out"}]

    async def test_a_cursor_past_any_id_is_refused_not_a_crash(self, client, world):
        huge = "MTAwMDAwMDAwMDAwMDAwMDAwMDAw"  # 10**20, past a 64-bit integer
        r = await client.get("/v1/campaigns/cambridge/households", params={"cursor": huge},
                             headers=world.headers("organizer"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "cursor"

    async def test_nul_characters_are_refused_alike_on_both_databases(self, client, world, session):
        for url in ("/v1/campaigns/cambridge/precincts/9-1%00", "/v1/campaigns/cambridge/households?precinct=%00"):
            r = await client.get(url, headers=world.headers("organizer"))
            assert "NUL" in assert_problem(r, 422)["detail"]
        r = await client.post("/v1/campaigns/cambridge/api-keys", json={"name": "a\x00b", "scopes": ["turfs:read"]},
                              headers=world.headers("admin"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "body.name"
        r = await client.post("/v1/auth/token", data={"username": "admin\x00@cambridge.test", "password": "x"})
        assert_problem(r, 401)

    async def test_no_input_value_is_echoed(self, client):
        r = await client.post("/v1/auth/token", data={"username": "a@b.test"})
        body = assert_problem(r, 422)
        assert body["errors"][0]["field"] == "body.password"
        assert "a@b.test" not in r.text


class TestUnavailable:
    @pytest.mark.parametrize("url", ["postgresql+asyncpg://postgres@127.0.0.1:1/doorstep",
                                     "sqlite+aiosqlite:////nonexistent-folder/doorstep.db"], ids=["down", "unopenable"])
    async def test_a_database_out_of_reach_is_503_with_retry_after(self, url, caplog):
        """Clients tell an outage from a bug: 503 and when to try again, and the log says so in a line."""
        bearer = {"Authorization": f"Bearer {issue_token(uuid.uuid4(), secret=SECRET, minutes=10)}"}
        async with app_client(url) as client:
            for r in (await client.get("/v1/me", headers=bearer),
                      await client.post("/v1/auth/token", data={"username": "a@example.org", "password": "x" * 12}),
                      await client.get("/v1/campaigns/cambridge/progress", headers=bearer)):
                body = assert_problem(r, 503)
                assert body["type"] == "/problems/unavailable" and "try again" in body["detail"], body
                assert r.headers["retry-after"] == "5"
        said = [r for r in caplog.records if r.name == "doorstep" and "database unavailable" in r.getMessage()]
        assert len(said) == 3 and not any(r.exc_info for r in said)
        # Neither the requests nor the workers beside them (webhooks, the audit) log a traceback for an outage.
        assert not any(r.exc_info for r in caplog.records if r.name == "doorstep"), [
            r.getMessage() for r in caplog.records if r.exc_info]


    async def test_a_database_that_never_answers_is_503_within_the_timeouts(self):
        """A server that takes the connection and says nothing (hung, or behind a stalled network) holds no
        request for ever: past the connect timeout it is the outage's 503."""
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # read whatever comes, answer nothing, until the client hangs up
            writer.close()
        hole = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = hole.sockets[0].getsockname()[1]
        bearer = {"Authorization": f"Bearer {issue_token(uuid.uuid4(), secret=SECRET, minutes=10)}"}
        try:
            async with app_client(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/doorstep",
                                  db_connect_timeout_s=0.5) as client:
                began = time.monotonic()
                r = await asyncio.wait_for(client.get("/v1/me", headers=bearer), 10)
                waited = time.monotonic() - began
        finally:
            hole.close()
        body = assert_problem(r, 503)
        assert body["type"] == "/problems/unavailable" and r.headers["retry-after"] == "5"
        assert 0.4 < waited < 5, waited


def subclasses(kind: type) -> list[type]:
    return [kind, *(sub for direct in kind.__subclasses__() for sub in subclasses(direct))]


class TestProblemTypes:
    def test_every_type_the_code_answers_with_is_documented_once(self):
        """One type a kind of error, each in the registry: the errors' classes and every literal type a problem
        is built with in app/ (no second type for 422 any more)."""
        import app.models  # noqa: F401  every domain, so every error class is defined
        from app.errors import PROBLEM_TYPES, AppError

        # (status, title, slug) of every problem the code builds: the error classes', and the literal ones.
        built = {(cls.status, cls.title, cls.slug) for cls in subclasses(AppError)}
        for path in Path(__file__).parents[1].joinpath("app").rglob("*.py"):
            built |= {(int(status), title, slug) for status, title, slug in re.findall(
                r'problem(?:_body)?\([^()]*?\b(\d{3}), "([^"]+)", "([a-z-]+)"', path.read_text())}
        used = {slug for _, _, slug in built}
        assert used - set(PROBLEM_TYPES) == set(), used
        assert "validation" not in used and {"invalid", "unavailable", "internal", "gone"} <= used
        # The table and the code say the same status and title of each type, wherever the code builds it.
        assert {(status, title, slug) for status, title, slug in built
                if PROBLEM_TYPES[slug][:2] != (status, title)} == set()

    async def test_every_type_uri_resolves_to_a_page(self, client, world):
        from app.errors import PROBLEM_TYPES

        for slug, (status, title, _) in PROBLEM_TYPES.items():
            r = await client.get(f"/problems/{slug}")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), slug
            assert f"<h1>{title}</h1>" in r.text and f"HTTP status {status}." in r.text
        # The type of a real answer is such a page.
        r = await client.post(f"/v1/campaigns/{HOME}/turfs", json={"geometry": 1}, headers=world.headers("organizer"))
        body = assert_problem(r, 422)
        assert body["type"] == "/problems/invalid" and body["title"] == "Invalid input"
        assert (await client.get(body["type"])).status_code == 200
        assert_problem(await client.get("/problems/no-such-thing"), 404)
