"""HTTP conventions a browser or a generic client relies on: cross-origin calls (CORS), off unless configured;
one Vary; HEAD; ETags and 304s on every GET."""

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from app.config import Settings
from app.progress import live
from app.routers.etags import ETags, tag_streamed
from tests.conftest import SECRET, app_client
from tests.factories import HOME

DASHBOARD = "https://dashboard.example.org"


def preflight(origin: str, method: str = "GET") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, range, if-none-match"}


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
            assert {"authorization", "content-type", "range", "if-none-match"} <= {
                h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
            assert "access-control-allow-credentials" not in r.headers  # bearer tokens, no cookies
            r = await client.get(f"/v1/campaigns/{HOME}/progress",
                                 headers={**world.headers("organizer"), "Origin": DASHBOARD})
            assert r.status_code == 200 and r.json()["doors"] > 0
            assert r.headers["access-control-allow-origin"] == DASHBOARD
            # What a dashboard reads of an answer: its tag, the next page, a range's total, an export's name.
            assert {"etag", "link", "content-range", "accept-ranges", "content-disposition", "retry-after"} <= {
                h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
            # Another origin gets no permission, and its preflight is refused.
            r = await client.get(f"/v1/campaigns/{HOME}/progress",
                                 headers={**world.headers("organizer"), "Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in r.headers
            r = await client.options(f"/v1/campaigns/{HOME}/progress", headers=preflight("https://evil.example"))
            assert r.status_code == 400 and "access-control-allow-origin" not in r.headers

    def test_the_setting_takes_comma_separated_origins_and_refuses_what_is_no_origin(self, monkeypatch):
        monkeypatch.setenv("DOORSTEP_CORS_ORIGINS", f" {DASHBOARD} , http://localhost:5173,")
        assert Settings(jwt_secret=SECRET, _env_file=None).cors_origins == [DASHBOARD, "http://localhost:5173"]
        # Each would never match the Origin a browser sends (lower case, a real port, no pattern): refused, not
        # a CORS that is silently off.
        for bad in ("https://dashboard.example.org/app", "dashboard.example.org", "ftp://files.example.org",
                    "https://dashboard.example.org/", "https://*.example.org", "HTTPS://Dashboard.Example.org",
                    "http://localhost:99999", "http://localhost:0", "http://localhost:port"):
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
        for _ in range(3):
            r = await cut_client.head(f"/v1/campaigns/{HOME}/progress/stream", headers=world.headers("organizer"))
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            assert not r.content
        assert not live.HUB.queues and not live.HUB.open, "a HEAD's stream never started: nothing left behind"

    async def test_head_of_a_route_with_no_get_is_405(self, cut_client, world):
        r = await cut_client.head(f"/v1/campaigns/{HOME}/sync", headers=world.headers("organizer"))
        assert r.status_code == 405 and not r.content


class TestETags:
    async def test_one_weak_etag_whatever_the_encoding_and_a_304_that_says_what_the_200_says(self, cut_client, world):
        organizer = world.headers("organizer")
        path = f"/v1/campaigns/{HOME}/precincts"
        zipped = await cut_client.get(path, headers={**organizer, "Accept-Encoding": "gzip"})
        plain = await cut_client.get(path, headers={**organizer, "Accept-Encoding": "identity"})
        assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
        etag = zipped.headers["etag"]
        assert etag == plain.headers["etag"] and etag.startswith('W/"')
        assert zipped.headers["cache-control"] == "private, no-cache"
        for method in ("GET", "HEAD"):
            r = await cut_client.request(method, path, headers={**organizer, "Accept-Encoding": "gzip",
                                                                "If-None-Match": f'W/"other", {etag}'})
            assert (r.status_code, r.content, r.headers["etag"]) == (304, b"", etag), method
            assert sorted(vary(r)) == sorted(vary(zipped)) == ["accept", "accept-encoding"]
            assert "content-type" not in r.headers and r.headers["x-content-type-options"] == "nosniff"
        # The comparison is weak: the tag without its W/ matches too.
        r = await cut_client.get(path, headers={**organizer, "If-None-Match": etag.removeprefix("W/")})
        assert r.status_code == 304
        # A tag of another body gets the body; an error gets no tag.
        r = await cut_client.get(path, headers={**organizer, "If-None-Match": 'W/"other"'})
        assert r.status_code == 200 and r.json()["items"] and r.headers["etag"] == etag
        r = await cut_client.get(f"{path}/nowhere", headers={**organizer, "If-None-Match": "*"})
        assert r.status_code == 404 and "etag" not in r.headers


    async def test_gzip_refused_by_weight_is_not_sent(self, cut_client, world):
        organizer = world.headers("organizer")
        # The app-wide compression, progress's own and a streamed collection's.
        for path in (f"/v1/campaigns/{HOME}/precincts", f"/v1/campaigns/{HOME}/progress/turfs",
                     f"/v1/campaigns/{HOME}/turfs.geojson"):
            for refused in ("gzip;q=0", "gzip; q=0.0, identity", "*;q=0, identity"):
                r = await cut_client.get(path, headers={**organizer, "Accept-Encoding": refused})
                assert r.status_code == 200 and "content-encoding" not in r.headers, (path, refused)
            r = await cut_client.get(path, headers={**organizer, "Accept-Encoding": "identity;q=0.5, gzip;q=0.8"})
            assert r.headers["content-encoding"] == "gzip", path

    async def test_every_answer_is_the_callers_own_and_an_export_is_kept_nowhere(self, cut_db_url, world):
        """Cache-Control on every answer: tagged bodies, streamed collections (pages of 50: streamed, untagged),
        ranges, errors; and no-store on the export of voter names."""
        organizer = {**world.headers("organizer"), "Accept-Encoding": "identity"}
        home = f"/v1/campaigns/{HOME}"
        async with app_client(cut_db_url, geojson_page=50) as client:
            answers = [await client.get(f"{home}/turfs.geojson", headers=organizer),
                       await client.get(f"{home}/turfs.geojson", headers={**organizer, "Range": "bytes=0-99"}),
                       await client.get(f"{home}/turfs/999999", headers=organizer),
                       await client.post(f"{home}/turfs/999999/release", headers=organizer),
                       await client.get("/v1/me", headers=organizer)]
            export = await client.get(f"{home}/door-knocks.csv", headers=organizer)
        assert [r.status_code for r in answers] == [200, 206, 404, 404, 200]
        assert "etag" not in answers[0].headers and len(answers[0].json()["features"]) > 50
        assert all(r.headers.get_list("cache-control") == ["private, no-cache"] for r in answers), [
            r.headers.get_list("cache-control") for r in answers]
        assert export.status_code == 200 and export.headers.get_list("cache-control") == ["private, no-store"]


def route(*bodies: bytes, media: bytes = b"text/csv", status: int = 200, extra: tuple = (), held: bool = False):
    """A stand-in route, raw ASGI: answers `bodies` as that many body messages (`held`: asking to be tagged)."""
    async def app(scope, receive, send):
        if held:
            tag_streamed(Request(scope))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", media), *extra]})
        for i, body in enumerate(bodies):
            await send({"type": "http.response.body", "body": body, "more_body": i < len(bodies) - 1})
    return app


async def answered(app, method: str = "GET", if_none_match: str | None = None) -> list[dict]:
    """The ASGI messages `app` sends for a request."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)
    headers = [(b"if-none-match", if_none_match.encode())] if if_none_match else []
    await app({"type": "http", "method": method, "path": "/", "headers": headers, "query_string": b"", "state": {}},
              receive, send)
    return sent


def head_of(messages: list[dict]) -> dict[bytes, bytes]:
    return dict(messages[0]["headers"])


class TestETagBuffering:
    async def test_a_stream_that_asks_is_held_tagged_and_answers_304(self):
        app = ETags(route(b"seq,id\n", b"1,a\n", b"2,b\n", held=True), buffer_max=100)
        whole = await answered(app)
        assert [m.get("body") for m in whole[1:]] == [b"seq,id\n1,a\n2,b\n"]
        head = head_of(whole)
        assert head[b"etag"].startswith(b'W/"') and head[b"content-length"] == b"15"
        assert head[b"cache-control"] == b"private, no-cache"
        again = await answered(app, if_none_match=head[b"etag"].decode())
        assert again[0]["status"] == 304 and head_of(again) == {b"etag": head[b"etag"],
                                                                b"cache-control": b"private, no-cache"}
        assert [m.get("body") for m in again[1:]] == [b""]
        # Another body, another tag.
        other = await answered(ETags(route(b"seq,id\n", b"1,a\n", held=True), buffer_max=100))
        assert head_of(other)[b"etag"] != head[b"etag"]

    async def test_a_stream_past_the_bound_goes_on_untagged_with_every_byte(self):
        chunks = [bytes([65 + i]) * 60 for i in range(5)]
        sent = await answered(ETags(route(*chunks, held=True), buffer_max=100))
        assert sent[0]["status"] == 200 and b"etag" not in head_of(sent) and b"content-length" not in head_of(sent)
        assert b"".join(m["body"] for m in sent[1:]) == b"".join(chunks)
        assert [m["more_body"] for m in sent[1:]] == [True] * (len(sent) - 2) + [False]
        assert max(len(m["body"]) for m in sent[1:]) <= 100  # never more than the bound held

    @pytest.mark.parametrize(("app", "method"), [
        (route(b"data: 1\n\n", media=b"text/event-stream"), "GET"),  # an event stream, even in one message
        (route(b"a", b"b"), "GET"),  # a stream that didn't ask: as it comes
        (route(b"{}", extra=((b"etag", b'"mine"'),), media=b"application/json"), "GET"),  # the route's own ETag
        (route(b"{}", status=404, media=b"application/problem+json"), "GET"),
        (route(b"{}", status=201, media=b"application/json"), "POST"),
    ], ids=["event-stream", "unasked-stream", "own-etag", "error", "post"])
    async def test_what_passes_untouched(self, app, method):
        for if_none_match in (None, "*", '"mine"'):
            assert await answered(ETags(app), method, if_none_match) == await answered(app, method, if_none_match)
