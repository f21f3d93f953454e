"""GeoJSON that GIS programs read whole: every polygon the API writes is wound as RFC 7946 says and has six
decimals, a precinct's turfs tile it (and the city's tile the city), every feature has its id, a collection asked
for without `limit` holds every feature, streamed, and a part of it can be read by Range; GDAL reads each
collection by URL from a real server."""

import asyncio
import math
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import pyogrio
import pytest
import shapely
from shapely.geometry import shape
from starlette.requests import Request

from app.routers.features import Collection, answer
from tests.conftest import app_client
from tests.sync.test_durability import serving
from tests.test_errors import assert_problem

HOME = "/v1/campaigns/cambridge"
COLLECTIONS = ["precincts", "turfs", "progress/precincts", "progress/turfs"]
GEO = {"format": "geojson"}
# Square degrees: about 1e-4 m² here, float noise beside the 0.01 m² of a 10 cm grid cell.
NOISE = 1e-14


def polygons(geometry: dict[str, Any]) -> list[list[list[list[float]]]]:
    assert geometry["type"] in ("Polygon", "MultiPolygon"), geometry["type"]
    return [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]


def assert_written_right(geometry: dict[str, Any]) -> None:
    """RFC 7946 section 3.1.6: exterior rings counter-clockwise, holes clockwise; and each coordinate written with
    at most six decimals (a float read back from more digits prints them again)."""
    for rings in polygons(geometry):
        for n, ring in enumerate(rings):
            assert shapely.LinearRing(ring).is_ccw == (n == 0), "an exterior ring is counter-clockwise, a hole not"
            for value in (v for position in ring for v in position):
                assert round(value, 6) == value and len(repr(value).partition(".")[2]) <= 6, value


def rows_by(features: list[dict[str, Any]], field: str) -> dict[Any, np.ndarray]:
    groups: dict[Any, list[Any]] = defaultdict(list)
    for f in features:
        groups[f["properties"][field]].append(shape(f["geometry"]))
    return {key: np.array(shapes, dtype=object) for key, shapes in groups.items()}


def assert_tiling(shapes: np.ndarray, holes_over: float = 0) -> None:
    """No two overlap, and they leave no hole between them (none smaller than `holes_over` square degrees),
    beyond float noise."""
    left, right = shapely.STRtree(shapes).query(shapes, predicate="intersects")
    keep = left < right
    assert shapely.area(shapely.intersection(shapes[left[keep]], shapes[right[keep]])).max(initial=0) < NOISE
    union = shapely.union_all(shapes)
    assert abs(union.area - shapely.area(shapes).sum()) < NOISE
    holes = [shapely.Polygon(ring).area for part in shapely.get_parts(union) for ring in part.interiors]
    assert all(area > holes_over for area in holes), f"gaps between them: {holes}"


async def collection(client: httpx.AsyncClient, world: Any, path: str, **params: Any) -> dict[str, Any]:
    r = await client.get(f"{HOME}/{path}", params={**GEO, **params}, headers=world.headers("organizer"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    return r.json()


class TestGeometry:
    @pytest.mark.parametrize("path", COLLECTIONS)
    async def test_every_polygon_is_wound_right_in_six_decimals_and_every_feature_has_its_id(
            self, cut_client, world, path):
        body = await collection(cut_client, world, path)
        assert body["type"] == "FeatureCollection" and len(body["features"]) > 30
        key = "code" if path == "progress/precincts" else "id"
        for feature in body["features"]:
            assert feature["type"] == "Feature" and feature["id"] == feature["properties"][key]
            assert_written_right(feature["geometry"])
            assert shape(feature["geometry"]).is_valid

    async def test_single_reads_and_walk_lists_too(self, cut_client, world):
        h = world.headers("organizer")
        turf = (await collection(cut_client, world, "turfs", limit=1))["features"][0]["id"]
        for path, geometry in (("precincts/9-1", lambda b: b["geometry"]), (f"turfs/{turf}", lambda b: b["geometry"]),
                               (f"turfs/{turf}/walklist", lambda b: b["turf"]["geometry"])):
            r = await cut_client.get(f"{HOME}/{path}", headers=h)
            assert r.status_code == 200, r.text
            assert_written_right(geometry(r.json()))

    @pytest.mark.parametrize(("path", "field"), [("progress/turfs", "precinct"), ("turfs", "precinct_id")])
    async def test_a_precincts_turfs_tile_it_and_the_citys_tile_the_city(self, cut_client, world, path, field):
        features = (await collection(cut_client, world, path))["features"]
        precincts = {f["id"]: shape(f["geometry"])
                     for f in (await collection(cut_client, world, "precincts"))["features"]}
        by_precinct = rows_by(features, field)
        assert set(by_precinct) == set(precincts)
        for code, shapes in by_precinct.items():
            assert_tiling(shapes)
            # They fill their precinct, within what the grid moved its edge.
            assert shapely.union_all(shapes).area == pytest.approx(precincts[code].area, rel=1e-4)
        assert_tiling(np.concatenate(list(by_precinct.values())))

    async def test_a_drawn_turf_shares_its_edge_with_what_it_took_over(self, cut_client, world):
        h = world.headers("organizer")
        before = (await collection(cut_client, world, "turfs"))["features"]
        target = shape(before[10]["geometry"])
        # A box over the middle of a turf, reaching into its neighbours, at no grid line.
        c = target.centroid
        drawn = shapely.box(c.x - 0.00061234567, c.y - 0.00043210987, c.x + 0.00052345678, c.y + 0.00049876543)
        r = await cut_client.post(f"{HOME}/turfs", json={"name": "Over", "geometry": shapely.geometry.mapping(drawn),
                                                         "take_over": True}, headers=h)
        assert r.status_code == 201, r.text
        assert_written_right(r.json()["geometry"])
        after = (await collection(cut_client, world, "turfs", status="active"))["features"]
        # A turf the box left with ground but no door goes, and its ground with it: a gap of a few hundred square
        # metres at least. No sliver is left between the box and what it took over or touches.
        assert_tiling(np.array([shape(f["geometry"]) for f in after], dtype=object), holes_over=1e-8)


async def ids(client: httpx.AsyncClient, world: Any, path: str) -> list[Any]:
    """The ids the JSON answer of `path` lists, in its order (precincts in import order, their progress by code,
    turfs by id)."""
    if path == "precincts":
        rows = (await client.get(f"{HOME}/precincts", params={"limit": 1000}, headers=world.headers("organizer")))
        return [row["id"] for row in rows.json()["items"]]
    rows = (await client.get(f"{HOME}/progress/{path.removeprefix('progress/')}", headers=world.headers("organizer")))
    return [row["code" if path.endswith("precincts") else "id"] for row in rows.json()]


def identity(world: Any) -> dict[str, str]:
    return {**world.headers("organizer"), "Accept-Encoding": "identity"}


@pytest.fixture
async def paged_client(cut_db_url):
    """The cut city served with GeoJSON collections read a few features a query, so a collection is many pages."""
    async with app_client(cut_db_url, geojson_page=10) as c:
        yield c


class TestWhole:
    @pytest.mark.parametrize("path", COLLECTIONS)
    async def test_no_limit_is_every_feature_streamed_a_page_at_a_time(self, paged_client, cut_client, world, path):
        r = await paged_client.get(f"{HOME}/{path}", params=GEO, headers=world.headers("organizer"))
        assert r.status_code == 200 and "content-length" not in r.headers  # streamed
        assert r.headers["content-encoding"] == "gzip" and r.headers["accept-ranges"] == "bytes"
        streamed = r.json()
        assert [f["id"] for f in streamed["features"]] == await ids(cut_client, world, path)
        assert "next_cursor" not in streamed and "link" not in r.headers
        # One page at a time or all at once, the same collection.
        assert streamed == await collection(cut_client, world, path)

    async def test_a_limit_pages_with_a_link_to_the_next(self, cut_client, world):
        first = await cut_client.get(f"{HOME}/turfs", params={**GEO, "limit": 100}, headers=world.headers("organizer"))
        body = first.json()
        assert len(body["features"]) == 100 and body["next_cursor"]
        link = first.headers["link"]
        assert link.endswith('>; rel="next"') and f"cursor={body['next_cursor']}" in link
        second = (await cut_client.get(link[1:link.index(">")], headers=world.headers("organizer"))).json()
        assert second["features"][0]["id"] > body["features"][-1]["id"]

    @pytest.mark.parametrize("path", ["turfs", "progress/turfs"])
    async def test_head_gives_the_length_of_the_whole(self, paged_client, world, path):
        whole = await paged_client.get(f"{HOME}/{path}", params=GEO, headers=identity(world))
        head = await paged_client.head(f"{HOME}/{path}", params=GEO, headers=identity(world))
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(whole.content) and head.headers["accept-ranges"] == "bytes"


class TestRange:
    @pytest.mark.parametrize("path", COLLECTIONS)
    async def test_growing_ranges_as_gdal_asks_make_the_whole(self, paged_client, world, path):
        whole = (await paged_client.get(f"{HOME}/{path}", params=GEO, headers=identity(world))).content
        parts, first, size = [], 0, 16384
        while first < len(whole):
            r = await paged_client.get(f"{HOME}/{path}", params=GEO,
                                       headers={**identity(world), "Range": f"bytes={first}-{first + size - 1}"})
            assert r.status_code == 206 and "content-encoding" not in r.headers
            last = first + len(r.content) - 1
            shown = r.headers["content-range"]
            # The whole's length is known once a range reaches its end ("*" before, as RFC 9110 allows).
            assert shown in (f"bytes {first}-{last}/*", f"bytes {first}-{last}/{len(whole)}")
            assert shown.endswith(f"/{len(whole)}") or last < len(whole) - 1
            parts.append(r.content)
            first, size = last + 1, size * 2
        assert b"".join(parts) == whole

    @pytest.mark.parametrize(("asked", "part"), [
        ("bytes=-100", slice(-100, None)), ("bytes=1000-", slice(1000, None)), ("bytes=10-10", slice(10, 11)),
        ("bytes=5-999999999", slice(5, None)), ("bytes = 0 - 99", slice(0, 100))])
    async def test_other_ranges(self, paged_client, world, asked, part):
        whole = (await paged_client.get(f"{HOME}/turfs", params=GEO, headers=identity(world))).content
        r = await paged_client.get(f"{HOME}/turfs", params=GEO, headers={**identity(world), "Range": asked})
        assert r.status_code == 206 and r.content == whole[part]
        start = part.start % len(whole)
        assert r.headers["content-range"].startswith(f"bytes {start}-{start + len(r.content) - 1}/")

    @pytest.mark.parametrize("asked", ["bytes=999999999-", "bytes=999999999-1000000000", "bytes=-0"])
    async def test_a_range_past_the_end_is_416_with_the_length(self, paged_client, world, asked):
        whole = (await paged_client.get(f"{HOME}/turfs", params=GEO, headers=identity(world))).content
        r = await paged_client.get(f"{HOME}/turfs", params=GEO, headers={**identity(world), "Range": asked})
        body = assert_problem(r, 416)
        assert body["type"] == "/problems/range-not-satisfiable" and body["length"] == len(whole)
        assert r.headers["content-range"] == f"bytes */{len(whole)}"

    @pytest.mark.parametrize("asked", ["bytes=abc", "bytes=5-2", "bytes=-", "bytes=1-2-3", "bytes=" + "9" * 40])
    async def test_a_bad_byte_range_is_416(self, paged_client, world, asked):
        r = await paged_client.get(f"{HOME}/progress/turfs", params=GEO, headers={**identity(world), "Range": asked})
        assert_problem(r, 416)

    @pytest.mark.parametrize("headers", [{"Range": "bytes=0-10,20-30"}, {"Range": "items=0-10"},
                                         {"Range": "bytes=0-10", "If-Range": 'W/"p1-x"'}])
    async def test_several_ranges_another_unit_or_if_range_get_the_whole(self, paged_client, world, headers):
        r = await paged_client.get(f"{HOME}/turfs", params=GEO, headers={**identity(world), **headers})
        assert r.status_code == 200 and len(r.json()["features"]) > 100

    @pytest.mark.parametrize("asked", ["bytes=-30", "bytes=20-", "bytes=0-20000000"])
    async def test_a_range_that_needs_the_length_reads_once(self, asked):
        """A range to the end (or wider than is held) needs the length: taken in the same read as its bytes, so a
        collection that changes between reads (progress, as knocks come in) answers bytes that fit their
        Content-Range, never a length from one read and bytes from another."""
        reads = 0

        def page(n: int) -> bytes:
            return b",".join(b'{"type":"Feature","id":%d}' % i for i in range(n))

        async def more(_after: Any) -> tuple[bytes, Any]:
            nonlocal reads
            reads += 1  # each read of the collection finds it grown, as a canvass does
            return page(3 * reads), None
        request = Request({"type": "http", "method": "GET", "path": "/", "query_string": b"", "state": {},
                           "headers": [(b"range", asked.encode())]})
        r = await answer(request, Collection((page(1), "key"), more))
        assert r.status_code == 206 and reads == 1
        read = b'{"type":"FeatureCollection","features":[' + page(1) + b"," + page(3) + b"]}"
        first, last, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", r.headers["content-range"]).groups())
        assert (total, last) == (len(read), len(read) - 1) and r.body == read[first:]

    async def test_one_page_has_ranges_too(self, cut_client, world):
        whole = (await cut_client.get(f"{HOME}/precincts", params=GEO, headers=identity(world))).content
        r = await cut_client.get(f"{HOME}/precincts", params=GEO, headers={**identity(world), "Range": "bytes=-10"})
        assert r.status_code == 206 and r.content == whole[-10:]
        assert r.headers["content-range"] == f"bytes {len(whole) - 10}-{len(whole) - 1}/{len(whole)}"

    async def test_progress_keeps_its_etag_and_304(self, paged_client, world):
        first = await paged_client.get(f"{HOME}/progress/turfs", params=GEO, headers=identity(world))
        etag = first.headers["etag"]
        part = await paged_client.get(f"{HOME}/progress/turfs", params=GEO,
                                      headers={**identity(world), "Range": "bytes=0-99"})
        assert part.status_code == 206 and part.headers["etag"] == etag
        again = await paged_client.get(f"{HOME}/progress/turfs", params=GEO,
                                       headers={**identity(world), "If-None-Match": etag, "Range": "bytes=0-99"})
        assert again.status_code == 304


@contextmanager
def gdal_config(**options: str) -> Iterator[None]:
    """GDAL configuration options set for the block, and put back as they were after it."""
    before = {name: pyogrio.get_gdal_config_option(name) for name in options}
    pyogrio.set_gdal_config_options(options)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(before)


@pytest.mark.own_database
class TestGdal:
    async def test_gdal_reads_every_collection_whole_over_vsicurl(self, cut_db_url, world, tmp_path):
        # A few features a query, so each collection is many pages and /vsicurl/'s ranges fall across them.
        async with serving(cut_db_url, tmp_path, {"DOORSTEP_GEOJSON_PAGE": "50"}, process=False) as server:
            async with httpx.AsyncClient(base_url=server.base) as client:
                expected = {path: await ids(client, world, path) for path in COLLECTIONS}
                names = [row["name"] for row in (await client.get(f"{HOME}/progress/turfs",
                                                                  headers=world.headers("organizer"))).json()]
            token = world.headers("organizer")["Authorization"]
            # GDAL asks for the folder's listing first unless told not to; it would get a 404, and go on.
            with gdal_config(GDAL_HTTP_HEADERS=f"Authorization: {token}", GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
                for path in COLLECTIONS:
                    url = f"/vsicurl/{server.base}{HOME}/{path}?format=geojson"
                    frame = await asyncio.to_thread(pyogrio.read_dataframe, url, fid_as_index=True)
                    assert len(frame) == len(expected[path]), path
                    if path.endswith("turfs"):
                        # Integer ids are GDAL's feature ids.
                        assert len(frame) > 100 and frame.index.tolist() == expected[path]
                        assert frame["name"].tolist() == names
                    else:
                        assert frame["id"].tolist() == expected[path]
                    shapes = frame.geometry.to_numpy()
                    assert shapely.is_valid(shapes).all() and math.isclose(
                        shapely.area(shapes).sum(), shapely.union_all(shapes).area, rel_tol=1e-9)
        log = server.log.read_text()
        assert "Traceback" not in log, log[-3000:]


