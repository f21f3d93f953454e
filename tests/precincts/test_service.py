"""Precinct import: formats, CRS, repair, idempotency."""

import json

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import func, select

from app.campaigns import service as campaign_service
from app.errors import BadFile
from app.precincts import service as precinct_service
from app.precincts.models import Precinct
from tests.factories import DATA, stale_shapes


@pytest.fixture
async def campaign_id(session):
    campaign = await campaign_service.create_campaign(session, "fresh", "Fresh")
    return campaign.id


async def stored(session, campaign_id):
    rows = (await session.execute(select(Precinct.code, Precinct.name, Precinct.geometry)
                                  .where(Precinct.campaign_id == campaign_id))).all()
    return {r.code: (r.name, shapely.from_wkb(r.geometry)) for r in rows}


async def household_counts(session, campaign_id):
    rows = await session.execute(select(Precinct.code, Precinct.household_count)
                                 .where(Precinct.campaign_id == campaign_id))
    return dict(rows.all())


@pytest.fixture(scope="module")
def originals():
    frame = gpd.read_file(DATA / "precincts.geojson")
    return dict(zip(frame["precinct_id"], frame.geometry, strict=True))


class TestImportPrecincts:
    async def test_geojson_loads_33_precincts_named_by_field(self, session, campaign_id):
        report = await precinct_service.import_precincts(session, campaign_id, DATA / "precincts.geojson",
                                                         label="p", name_field="name")
        assert (report.read, report.created, report.rejected) == (33, 33, [])
        precincts = await stored(session, campaign_id)
        assert len(precincts) == 33 and precincts["9-1"][0] == "Ward 9 Precinct 1"
        assert all(shape.is_valid for _, shape in precincts.values())

    async def test_without_name_field_the_id_is_the_name(self, session, campaign_id):
        await precinct_service.import_precincts(session, campaign_id, DATA / "precincts.geojson", label="p")
        assert (await stored(session, campaign_id))["5-2"][0] == "5-2"

    async def test_second_import_changes_nothing(self, session, campaign_id):
        await precinct_service.import_precincts(session, campaign_id, DATA / "precincts.geojson", label="p")
        before = (await session.execute(select(Precinct.id, Precinct.updated_at).order_by(Precinct.id))).all()
        report = await precinct_service.import_precincts(session, campaign_id, DATA / "precincts.geojson", label="p")
        assert (report.created, report.updated, report.unchanged) == (0, 0, 33)
        after = (await session.execute(select(Precinct.id, Precinct.updated_at).order_by(Precinct.id))).all()
        assert before == after

    @pytest.mark.parametrize(("suffix", "driver"), [(".gpkg", "GPKG"), (".shp", "ESRI Shapefile")])
    async def test_any_crs_is_reprojected_to_wgs84(self, session, campaign_id, tmp_path, originals, suffix, driver):
        path = tmp_path / f"state-plane{suffix}"
        # Shapefile field names stop at 10 characters.
        frame = gpd.read_file(DATA / "precincts.geojson").rename(columns={"precinct_id": "pid"})
        frame.to_crs(26986).to_file(path, driver=driver)
        report = await precinct_service.import_precincts(session, campaign_id, path, label=path.name, id_field="pid")
        assert report.created == 33
        for code, (_, shape) in (await stored(session, campaign_id)).items():
            assert shape.hausdorff_distance(originals[code]) < 1e-6, code

    async def test_invalid_polygon_is_repaired_and_non_polygon_rejected(self, session, campaign_id, tmp_path):
        bowtie = {"type": "Polygon", "coordinates": [[[-71.1, 42.37], [-71.09, 42.38], [-71.09, 42.37],
                                                      [-71.1, 42.38], [-71.1, 42.37]]]}
        features = [{"type": "Feature", "properties": {"precinct_id": "A"}, "geometry": bowtie},
                    {"type": "Feature", "properties": {"precinct_id": "B"},
                     "geometry": {"type": "Point", "coordinates": [-71.1, 42.37]}},
                    {"type": "Feature", "properties": {"precinct_id": ""}, "geometry": bowtie},
                    {"type": "Feature", "properties": {"precinct_id": "C"}, "geometry": {
                        "type": "Polygon", "coordinates": [[[0, 0], [1e308, 0], [0, 1e308], [0, 0]]]}}]
        path = tmp_path / "odd.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        report = await precinct_service.import_precincts(session, campaign_id, path, label="odd.geojson")
        assert report.created == 1 and report.extra["repaired"] == 1
        assert [(r.row, r.column, r.reason) for r in report.rejected] == [
            (2, "geometry", "feature 1: not a polygon"), (3, "precinct_id", "no precinct id"),
            (4, "geometry", "feature 3: coordinates outside longitude -180..180, latitude -90..90")]
        shape = (await stored(session, campaign_id))["A"][1]
        assert shape.is_valid and shape.geom_type == "MultiPolygon"

    @pytest.mark.parametrize("content", [
        b"", b"\x00\x01garbage" * 50, b'{"type": "FeatureCollection"',
        b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"precinct_id": "A"}, '
        b'"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0]]]}}]}'])
    async def test_unreadable_files_fail_whole_and_write_nothing(self, session, campaign_id, tmp_path, content):
        path = tmp_path / "bad.geojson"
        path.write_bytes(content)
        with pytest.raises(BadFile, match=r"bad\.geojson"):
            await precinct_service.import_precincts(session, campaign_id, path, label="bad.geojson")
        assert await session.scalar(select(func.count()).select_from(Precinct)
                                    .where(Precinct.campaign_id == campaign_id)) == 0

    async def test_unknown_id_field_names_the_fields_there_are(self, session, campaign_id):
        with pytest.raises(BadFile, match=r"no field 'ward_id' for the precinct id \(fields are: precinct_id, name"):
            await precinct_service.import_precincts(session, campaign_id, DATA / "precincts.geojson", label="p",
                                                    id_field="ward_id")

    async def test_reshaping_a_precinct_moves_its_buildings(self, session, tmp_path):
        home_id = (await campaign_service.get_campaign(session, "cambridge")).id
        frame = gpd.read_file(DATA / "precincts.geojson")
        # Precinct 9-1 swallows 9-2: 9-2's buildings now lie in both, and the lower id (9-1's) wins.
        merged = frame.loc[frame.precinct_id == "9-1", "geometry"].union_all().union(
            frame.loc[frame.precinct_id == "9-2", "geometry"].union_all())
        frame.loc[frame.precinct_id == "9-1", "geometry"] = merged
        before = await household_counts(session, home_id)
        path = tmp_path / "reshaped.geojson"
        frame.to_file(path, driver="GeoJSON")
        report = await precinct_service.import_precincts(session, home_id, path, label="reshaped", name_field="name")
        assert report.updated == 1 and report.extra["buildings_moved"] > 0
        after = await household_counts(session, home_id)
        assert after["9-1"] == before["9-1"] + before["9-2"] and after["9-2"] == 0
        assert sum(after.values()) == sum(before.values()) == 25336
        assert await stale_shapes(session) == []
