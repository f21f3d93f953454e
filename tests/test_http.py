"""HTTP conventions a browser or a generic client relies on: cross-origin calls (CORS), off unless configured."""

import pytest
from pydantic import ValidationError

from app.config import Settings
from tests.conftest import SECRET, app_client
from tests.factories import HOME

DASHBOARD = "https://dashboard.example.org"


def preflight(origin: str, method: str = "GET") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"}


class TestCors:
    async def test_off_by_default(self, client, world):
        r = await client.get(f"/v1/campaigns/{HOME}", headers={**world.headers("organizer"), "Origin": DASHBOARD})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        r = await client.options(f"/v1/campaigns/{HOME}/progress", headers=preflight(DASHBOARD))
        assert "access-control-allow-origin" not in r.headers and r.status_code == 405

    async def test_a_configured_origin_may_call_and_read_what_it_needs(self, db_url, world):
        async with app_client(db_url, cors_origins=[DASHBOARD, "http://localhost:5173"]) as client:
            r = await client.options(f"/v1/campaigns/{HOME}/progress", headers=preflight(DASHBOARD))
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == DASHBOARD
            assert {"authorization", "content-type"} <= {
                h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
            assert "access-control-allow-credentials" not in r.headers  # bearer tokens, no cookies
            r = await client.get(f"/v1/campaigns/{HOME}/progress",
                                 headers={**world.headers("organizer"), "Origin": DASHBOARD})
            assert r.status_code == 200 and r.json()["doors"] > 0
            assert r.headers["access-control-allow-origin"] == DASHBOARD
            assert "etag" in r.headers["access-control-expose-headers"].lower()
            # Another origin gets no permission, and its preflight is refused.
            r = await client.get(f"/v1/campaigns/{HOME}/progress",
                                 headers={**world.headers("organizer"), "Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in r.headers
            r = await client.options(f"/v1/campaigns/{HOME}/progress", headers=preflight("https://evil.example"))
            assert r.status_code == 400 and "access-control-allow-origin" not in r.headers

    def test_the_setting_takes_comma_separated_origins_and_refuses_what_is_no_origin(self, monkeypatch):
        monkeypatch.setenv("DOORSTEP_CORS_ORIGINS", f" {DASHBOARD} , http://localhost:5173,")
        assert Settings(jwt_secret=SECRET, _env_file=None).cors_origins == [DASHBOARD, "http://localhost:5173"]
        for bad in ("https://dashboard.example.org/app", "dashboard.example.org", "ftp://files.example.org",
                    "https://dashboard.example.org/"):
            monkeypatch.setenv("DOORSTEP_CORS_ORIGINS", bad)
            with pytest.raises(ValidationError, match="is no origin"):
                Settings(jwt_secret=SECRET, _env_file=None)


def vary(r) -> list[str]:
    """The names `Vary` gives, from its one header."""
    values = r.headers.get_list("vary")
    assert len(values) <= 1, values
    return [v.strip().lower() for v in values[0].split(",")] if values else []


class TestVary:
    async def test_each_header_a_body_depends_on_is_named_once(self, cut_client, world):
        organizer = {**world.headers("organizer"), "Accept-Encoding": "gzip"}
        for path in ("/precincts", "/progress/precincts", "/progress/turfs", "/turfs"):
            for accept in ("application/json", "application/geo+json"):
                r = await cut_client.get(f"/v1/campaigns/{HOME}{path}", headers={**organizer, "Accept": accept})
                assert r.status_code == 200, (path, r.text)
                assert sorted(vary(r)) == ["accept", "accept-encoding"], (path, accept, r.headers.get_list("vary"))
        # A body that doesn't depend on Accept says nothing of it.
        r = await cut_client.get(f"/v1/campaigns/{HOME}/progress", headers=organizer)
        assert r.status_code == 200 and vary(r) == ["accept-encoding"], r.headers.get_list("vary")
        r = await cut_client.get("/v1/me", headers=organizer)
        assert "accept" not in vary(r)


class TestHead:
    async def test_every_get_answers_head_with_its_headers_and_no_body(self, cut_client, world):
        organizer = {**world.headers("organizer"), "Accept-Encoding": "gzip"}
        turf = (await cut_client.get(f"/v1/campaigns/{HOME}/turfs", params={"limit": 1}, headers=organizer)
                ).json()["items"][0]["id"]
        for path, accept in (("/v1/me", "application/json"), (f"/v1/campaigns/{HOME}/precincts", "application/json"),
                             (f"/v1/campaigns/{HOME}/precincts", "application/geo+json"),
                             (f"/v1/campaigns/{HOME}/progress", "application/json"),
                             (f"/v1/campaigns/{HOME}/progress/turfs", "application/geo+json"),
                             (f"/v1/campaigns/{HOME}/turfs/{turf}/walklist", "application/json"),
                             (f"/v1/campaigns/{HOME}/door-knocks.csv", "text/csv"),
                             (f"/v1/campaigns/{HOME}/turfs/999999", "application/json")):
            headers = {**organizer, "Accept": accept}
            got, head = await cut_client.get(path, headers=headers), await cut_client.head(path, headers=headers)
            assert (head.status_code, head.content) == (got.status_code, b""), path
            for name in ("content-type", "content-encoding", "etag", "vary", "content-security-policy"):
                assert head.headers.get(name) == got.headers.get(name), (path, name)
            if "content-length" in got.headers:
                assert head.headers["content-length"] == got.headers["content-length"], path

    async def test_head_of_the_live_stream_ends_at_its_headers(self, cut_client, world):
        r = await cut_client.head(f"/v1/campaigns/{HOME}/progress/stream", headers=world.headers("organizer"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream") and not r.content

    async def test_head_of_a_route_with_no_get_is_405(self, cut_client, world):
        r = await cut_client.head(f"/v1/campaigns/{HOME}/sync", headers=world.headers("organizer"))
        assert r.status_code == 405 and not r.content
