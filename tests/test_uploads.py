"""Uploads open only what they claim to be: CSV, GeoJSON, GeoPackage, zipped Shapefile, told by content.

The attacks are real: each VRT is first shown to leak through GDAL opened the old way (pyogrio on the path), then
sent to every import route and command, which must refuse it without a byte of what it points at.
"""

import csv
import http.server
import io
import sqlite3
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import orjson
import pandas as pd
import pyogrio
import pytest
from sqlalchemy import func, select

from app.addresses.models import Household
from app.precincts.models import Precinct
from tests.cli import doorstep, one_json_object
from tests.factories import DATA
from tests.test_errors import assert_problem

BASE = "/v1/campaigns/cambridge"
ALL = ["CSV", "GeoJSON", "GeoPackage", "zipped Shapefile"]
SHAPES = ["GeoJSON", "GeoPackage", "zipped Shapefile"]
MARKER = "DECOY-MARKER-7f3a"
ENV_MARKER = "ENV-SECRET-MARKER-91c2"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    """A tiny HTTP server on loopback: its URL, and the paths it was asked for."""
    hits: list[str] = []

    body = f"address_id,number,street,lon,lat\n{MARKER},1,X,0,0\n".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_GET(self) -> None:
            self.do_HEAD()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def vrt(source: str, layer: str | None = None) -> bytes:
    src_layer = f"<SrcLayer>{layer}</SrcLayer>" if layer else ""
    return (f'<OGRVRTDataSource><OGRVRTLayer name="leak"><SrcDataSource>{source}</SrcDataSource>{src_layer}'
            "</OGRVRTLayer></OGRVRTDataSource>").encode()


@pytest.fixture
def attacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver) -> dict[str, bytes]:
    """VRTs pointing at a decoy file by absolute path, at the working folder's `.env`, and at a loopback URL."""
    decoy = tmp_path / "decoy.csv"
    decoy.write_text(f"address_id,number,street,lon,lat,voter_id,first_name,last_name\n"
                     f"{MARKER},1,X,0,0,{MARKER},{MARKER},{MARKER}\n")
    serving = tmp_path / "cwd"
    serving.mkdir()
    (serving / ".env").write_text(f"DOORSTEP_JWT_SECRET={ENV_MARKER}\n")
    monkeypatch.chdir(serving)  # the app's working folder, as `doorstep serve` has it
    url, hits = receiver
    made = {"decoy": vrt(str(decoy), "decoy"), "env": vrt("CSV:.env", ".env"), "env-plain": vrt(".env", ".env"),
            "url": vrt(f"/vsicurl/{url}/leak.csv"), "url-csv": vrt(f"CSV:/vsicurl/{url}/leak.csv")}
    # The attacks work on GDAL opened the old way: refusing them is what stands between them and the server.
    (tmp_path / "probe.vrt").write_bytes(made["decoy"])
    assert MARKER in pyogrio.read_dataframe(tmp_path / "probe.vrt", read_geometry=False).to_csv()
    (tmp_path / "probe.vrt").write_bytes(made["env"])
    assert ENV_MARKER in pyogrio.read_dataframe(tmp_path / "probe.vrt", read_geometry=False).to_csv()
    (tmp_path / "probe.vrt").write_bytes(made["url"])
    assert MARKER in pyogrio.read_dataframe(tmp_path / "probe.vrt", read_geometry=False).to_csv()
    assert hits
    hits.clear()
    return made


def assert_unsupported(r, accepted: list[str], field: str = "file") -> dict:
    body = assert_problem(r, 415)
    assert body["type"] == "/problems/unsupported-media-type"
    assert body["accepted"] == accepted
    assert [e["field"] for e in body["errors"]] == [field]
    assert ", ".join(accepted) in body["detail"]
    assert_no_leak(r.text)
    return body


def assert_no_leak(text: str) -> None:
    assert MARKER not in text and ENV_MARKER not in text
    assert "/tmp" not in text and "doorstep-upload" not in text


async def household_count(session) -> int:
    await session.rollback()
    return await session.scalar(select(func.count()).select_from(Household))


def address_frame(rows: slice = slice(2000, 2100)) -> gpd.GeoDataFrame:
    frame = pd.read_csv(DATA / "addresses.csv", dtype=str, keep_default_na=False).iloc[rows]
    frame = frame[["address_id", "number", "street", "unit", "parcel_id", "lon", "lat"]]
    points = gpd.points_from_xy(frame["lon"].astype(float), frame["lat"].astype(float))
    return gpd.GeoDataFrame(frame.drop(columns=["lon", "lat"]), geometry=points, crs=4326)


def zipped(folder: Path, frame: gpd.GeoDataFrame, name: str) -> bytes:
    """`frame` as a zipped Shapefile, its parts in a folder inside the zip as ESRI tools make them."""
    (folder / name).mkdir()
    pyogrio.write_dataframe(frame, folder / name / f"{name}.shp")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for part in sorted((folder / name).iterdir()):
            z.write(part, f"{name}/{part.name}")
    return buffer.getvalue()


class TestAttacksAreRefused:
    async def test_a_vrt_under_any_name_on_every_upload_route_is_415_and_leaks_nothing(
            self, client, world, session, attacks, receiver):
        before = await household_count(session)
        for attack, content in attacks.items():
            for name in ("leak.vrt", "leak.csv", "leak.geojson", "leak.gpkg", "leak.zip"):
                for route in ("addresses", "people"):
                    r = await client.post(f"{BASE}/{route}", files={"file": (name, content, "text/csv")},
                                          headers=world.headers("organizer"))
                    body = assert_unsupported(r, ALL)
                    assert body["detail"].startswith(f"{name}: "), (attack, route)
            # The precincts route reads a GeoJSON body: XML is no JSON, whatever it claims.
            for media in ("application/xml", "text/csv", "application/octet-stream"):
                r = await client.post(f"{BASE}/precincts", content=content, headers={
                    **world.headers("organizer"), "Content-Type": media})
                assert_unsupported(r, ["GeoJSON"], field="body")
            r = await client.post(f"{BASE}/precincts", content=content, headers={
                **world.headers("organizer"), "Content-Type": "application/json"})
            assert_problem(r, 422)
            assert_no_leak(r.text)
        assert receiver[1] == []
        assert await household_count(session) == before

    async def test_a_geojson_crs_link_to_loopback_is_refused_and_never_fetched(self, client, world, session,
                                                                            receiver):
        url, hits = receiver
        collection = orjson.loads((DATA / "precincts.geojson").read_bytes())
        for crs in ({"type": "link", "properties": {"href": f"{url}/crs.wkt", "type": "ogcwkt"}},
                    {"type": "name", "properties": {"name": f"{url}/crs"}},
                    {"type": "name", "properties": {"name": "/etc/passwd"}}):
            r = await client.post(f"{BASE}/precincts", json={**collection, "crs": crs},
                                  headers=world.headers("organizer"))
            assert "crs: only a named CRS is read" in assert_problem(r, 422)["detail"]
            points = orjson.loads(address_frame().to_json())
            r = await client.post(f"{BASE}/addresses", files={"file": ("a.geojson", orjson.dumps(
                {**points, "crs": crs}), "application/geo+json")}, headers=world.headers("organizer"))
            assert assert_problem(r, 422)["type"] == "/problems/bad-file"
        # GDAL reads a geometry's own crs too, inside a collection as well: found by a red-team run.
        link = {"type": "link", "properties": {"href": f"{url}/geometry-crs"}}
        point = {"type": "Point", "coordinates": [-71.1, 42.37], "crs": link}
        for geometry in (point, {"type": "GeometryCollection", "geometries": [point]}):
            bad = {"type": "FeatureCollection", "features": [
                {"type": "Feature", "properties": {"address_id": "1"}, "geometry": geometry}]}
            for route in ("addresses", "people"):
                r = await client.post(f"{BASE}/{route}", files={"file": ("a.geojson", orjson.dumps(bad), "x")},
                                      headers=world.headers("organizer"))
                assert "crs: only a named CRS is read" in assert_problem(r, 422)["detail"], route
        assert hits == []

    async def test_a_geopackage_carrying_sql_or_no_geopackage_at_all_is_refused(self, client, world, session,
                                                                              tmp_path, db_url):
        frame = address_frame()
        before = await household_count(session)
        cases = {}
        for case, sql in (("view", "CREATE VIEW people_view AS SELECT * FROM a"),
                          ("trigger", "CREATE TRIGGER wipe AFTER INSERT ON a BEGIN DELETE FROM a; END"),
                          ("virtual", "CREATE VIRTUAL TABLE fts USING fts5(x)"),
                          # A comment or a quoted name must not pass another module off as the rtree index.
                          ("disguised", "CREATE VIRTUAL TABLE hid USING fts5(x /* USING rtree( */)"),
                          ("quoted", """CREATE VIRTUAL TABLE "q/*" USING fts5('*/" USING rtree(')"""),
                          # Each comment read once: as one comment running on to the next, forty took for ever.
                          ("comments", "CREATE VIRTUAL TABLE c " + "/**/ " * 40 + "USING fts5(x)"),
                          ("generated", "CREATE TABLE g (x INTEGER, y AS (x * 2))")):
            path = tmp_path / f"{case}.gpkg"
            pyogrio.write_dataframe(frame, path, layer="a")
            with sqlite3.connect(path) as db:
                db.execute(sql)
            cases[case] = path.read_bytes()
        for case, word in (("view", "a view ('people_view')"), ("trigger", "a trigger ('wipe')"),
                           ("virtual", "a virtual table ('fts')"), ("disguised", "a virtual table ('hid')"),
                           ("quoted", "a virtual table ('q/*')"), ("comments", "a virtual table ('c')"),
                           ("generated", "generated columns")):
            r = await client.post(f"{BASE}/addresses", files={"file": (f"{case}.gpkg", cases[case], "x")},
                                  headers=world.headers("organizer"))
            body = assert_problem(r, 422)
            assert body["type"] == "/problems/bad-file" and word in body["detail"], case
        # A plain SQLite file (the app's own database, on SQLite) is no GeoPackage.
        plain = tmp_path / "plain.sqlite"
        with sqlite3.connect(plain) as db:
            db.execute("CREATE TABLE user_account (password_hash TEXT)")
            db.execute("INSERT INTO user_account VALUES (?)", (MARKER,))
        r = await client.post(f"{BASE}/people", files={"file": ("v.gpkg", plain.read_bytes(), "x")},
                              headers=world.headers("organizer"))
        assert_unsupported(r, ALL)
        assert await household_count(session) == before

    async def test_unsafe_zips_are_refused(self, client, world, session, tmp_path):
        shp = zipfile.ZipFile(io.BytesIO(zipped(tmp_path, address_frame(), "a")))
        parts = {Path(i.filename).name: shp.read(i) for i in shp.infolist()}

        def make(members: dict[str, bytes], link: str | None = None) -> bytes:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
                for name, data in members.items():
                    z.writestr(name, data)
                if link:
                    info = zipfile.ZipInfo(link)
                    info.external_attr = (0o120777 << 16)
                    z.writestr(info, "/etc/passwd")
            return buffer.getvalue()

        cases = {
            "../ member": (make({**parts, "../../evil.shp": b"x"}), 422, "points outside the archive"),
            "absolute member": (make({**parts, "/tmp/evil.dbf": b"x"}), 422, "points outside the archive"),
            "link member": (make(parts, link="evil.prj"), 422, "is a link"),
            "two .shp": (make({**parts, "b.shp": parts["a.shp"]}), 422, "holds 2"),
            "no .shp": (make({"readme.txt": b"hello"}), 422, "holds 0"),
            "bomb": (make({**parts, "a.shp": b"\x00\x00\x27\x0a" + bytes(64 * 1024 * 1024)}), 413, "unpacks to"),
            # Not unsafe, only incomplete: GDAL's message names the temporary folder, which the caller never sees.
            "a .shp alone": (make({"a.shp": parts["a.shp"]}), 422, "Unable to open (a file)"),
        }
        before = await household_count(session)
        for case, (content, status, words) in cases.items():
            r = await client.post(f"{BASE}/addresses", files={"file": ("a.zip", content, "application/zip")},
                                  headers=world.headers("organizer"))
            assert words in assert_problem(r, status)["detail"], case
            assert_no_leak(r.text)
        assert await household_count(session) == before

    @pytest.mark.own_database  # the CLI runs in a process of its own
    async def test_cli_refuses_a_vrt_in_one_line_with_exit_code_2(self, db_url, tmp_path, attacks):
        (tmp_path / "leak.csv").write_bytes(attacks["decoy"])
        (tmp_path / "leak.geojson").write_bytes(attacks["env"])
        runs = [await doorstep(db_url, tmp_path, "import", kind, tmp_path / name, "--campaign", "cambridge")
                for kind, name in (("addresses", "leak.csv"), ("people", "leak.csv"),
                                   ("precincts", "leak.geojson"), ("streets", "leak.csv"))]
        for ran in runs:
            assert ran.code == 2 and ran.out == "" and len(ran.err.splitlines()) == 1, ran
            assert ran.err.startswith("doorstep: leak.") and "accepted: " in ran.err, ran
            assert MARKER not in ran.err + ran.out and ENV_MARKER not in ran.err + ran.out
        assert "accepted: CSV, GeoJSON, GeoPackage, zipped Shapefile" in runs[0].err
        assert "accepted: GeoJSON, GeoPackage, zipped Shapefile" in runs[2].err


class TestRealFilesStillImport:
    async def test_addresses_as_geojson_geopackage_and_zipped_shapefile_after_the_attacks(
            self, client, world, session, tmp_path, attacks):
        for content in attacks.values():
            r = await client.post(f"{BASE}/addresses", files={"file": ("x.gpkg", content, "x")},
                                  headers=world.headers("organizer"))
            assert r.status_code == 415
        frame = address_frame()
        pyogrio.write_dataframe(frame, tmp_path / "a.gpkg")
        before = await household_count(session)
        uploads = {"a.geojson": frame.to_json().encode(), "a.gpkg": (tmp_path / "a.gpkg").read_bytes(),
                   "a.zip": zipped(tmp_path, frame, "a"),
                   "a.csv": pd.DataFrame(frame.drop(columns="geometry")).assign(
                       lon=frame.geometry.x, lat=frame.geometry.y).to_csv(index=False).encode()}
        for name, content in uploads.items():
            # The name says nothing: each is sent as `upload.bin`, and read by its content.
            r = await client.post(f"{BASE}/addresses", files={"file": ("upload.bin", content, "x")},
                                  headers=world.headers("organizer"))
            assert r.status_code == 200, (name, r.text)
            body = r.json()
            assert (body["read"], body["created"], body["rejected"]) == (100, 0, 0), (name, body)
        # New addresses are written: the database takes writes after every attack.
        moved = frame.iloc[:5].copy()
        moved["address_id"] = [f"NEW-{i}" for i in range(5)]
        r = await client.post(f"{BASE}/addresses", files={"file": ("new.geojson", moved.to_json().encode(), "x")},
                              headers=world.headers("organizer"))
        assert r.json()["created"] == 5, r.text
        assert await household_count(session) == before + 5

    @pytest.mark.own_database  # the CLI runs in a process of its own
    async def test_cli_imports_precincts_as_geopackage_shapefile_and_zipped_shapefile(self, db_url, tmp_path,
                                                                                      session):
        precincts = gpd.read_file(DATA / "precincts.geojson")
        pyogrio.write_dataframe(precincts, tmp_path / "p.gpkg")
        (tmp_path / "p.zip").write_bytes(zipped(tmp_path, precincts, "p"))
        for name, id_field in (("p.gpkg", "precinct_id"), ("p.zip", "precinct_i"), ("p/p.shp", "precinct_i")):
            report = one_json_object(await doorstep(db_url, tmp_path, "import", "precincts", tmp_path / name,
                                                    "--campaign", "cambridge", "--name-field", "name",
                                                    "--id-field", id_field, "--json"))
            assert (report["read"], report["rejected"], report["created"]) == (33, 0, 0), (name, report)
        assert await session.scalar(select(func.count()).select_from(Precinct)) == 33 * 2


class TestRejectionsAreCapped:
    @pytest.mark.own_database  # the CLI runs in a process of its own
    async def test_over_a_thousand_bad_rows_answer_a_thousand_and_the_cli_writes_them_all(
            self, client, world, tmp_path, db_url):
        header = "address_id,number,street,unit,lon,lat\n"
        good = "CAP-GOOD,1,PROBE ST,,-71.1097,42.3736\n"
        # Far outside every precinct; ids that a spreadsheet would run as formulas.
        bad = "".join(f"=CAP+{i},1,NOWHERE ST,,10.0,10.0\n" for i in range(1205))
        (tmp_path / "many.csv").write_text(header + good + bad)
        r = await client.post(f"{BASE}/addresses", files={"file": ("many.csv", (tmp_path / "many.csv").read_bytes(),
                                                                   "text/csv")}, headers=world.headers("organizer"))
        body = r.json()
        assert r.status_code == 200, r.text
        assert (body["read"], body["created"], body["rejected"], body["rejections_omitted"]) == (1206, 1, 1205, 205)
        assert len(body["rejections"]) == 1000
        assert [x["row"] for x in body["rejections"]] == list(range(2, 1002))
        assert body["rejections"][0]["id"] == "=CAP+0"

        report = one_json_object(await doorstep(db_url, tmp_path, "import", "addresses", "many.csv", "--campaign",
                                                "cambridge", "--json", "--rejections", "all.csv"))
        assert (report["rejected"], len(report["rejections"]), report["rejections_omitted"]) == (1205, 1000, 205)
        with (tmp_path / "all.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 1205
        assert [int(row["row"]) for row in rows] == list(range(2, 1207))
        assert rows[0]["id"] == "'=CAP+0" and rows[-1]["id"] == "'=CAP+1204"
        assert {row["file"] for row in rows} == {"many.csv"}
        assert rows[0]["reason"] == body["rejections"][0]["reason"]
