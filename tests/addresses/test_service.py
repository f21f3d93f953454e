"""Address and people imports on the real Cambridge data."""

import json

import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import func, select

from app.addresses import service as address_service
from app.addresses.models import Building, Household, Person
from app.campaigns import service as campaign_service
from app.errors import BadFile, Invalid
from app.ingest import parse_map
from app.precincts import service as precinct_service
from app.precincts.models import Precinct
from tests.factories import DATA

DEFAULT_MAP = parse_map(None, address_service.ADDRESS_FIELDS)


@pytest.fixture(scope="module")
def addresses() -> pd.DataFrame:
    return pd.read_csv(DATA / "addresses.csv", dtype=str, keep_default_na=False)


async def campaign_id_of(session, slug="cambridge"):
    return (await campaign_service.get_campaign(session, slug)).id


@pytest.fixture
async def fresh(session):
    """A campaign with Cambridge's precincts and no addresses yet."""
    campaign = await campaign_service.create_campaign(session, "fresh", "Fresh")
    await precinct_service.import_precincts(session, campaign.id, DATA / "precincts.geojson", label="p")
    return campaign.id


async def count(session, model, campaign_id):
    return await session.scalar(select(func.count()).select_from(model).where(model.campaign_id == campaign_id))


class TestCambridgeAsLoaded:
    async def test_every_address_is_one_household(self, session, addresses):
        cid = await campaign_id_of(session)
        assert await count(session, Household, cid) == len(addresses) == 25336
        stored = set((await session.scalars(select(Household.external_id).where(Household.campaign_id == cid))).all())
        assert stored == set(addresses["address_id"])

    async def test_units_sharing_a_parcel_are_one_building(self, session, addresses):
        cid = await campaign_id_of(session)
        assert await count(session, Building, cid) == addresses["parcel_id"].nunique() == 12959
        shared = (addresses.groupby("parcel_id").size() > 1).sum()
        per_building = (select(Household.building_id).where(Household.campaign_id == cid)
                        .group_by(Household.building_id).having(func.count() > 1).subquery())
        assert await session.scalar(select(func.count()).select_from(per_building)) == shared
        # The 437-unit building is one stop.
        assert await session.scalar(select(func.max(select(func.count()).where(Household.building_id == Building.id)
                                                    .scalar_subquery())).where(Building.campaign_id == cid)) == 437

    async def test_inside_addresses_lie_in_their_precinct_and_33_are_snapped_within_48_m(self, session):
        cid = await campaign_id_of(session)
        precincts = {r.id: shapely.from_wkb(r.geometry) for r in (await session.execute(
            select(Precinct.id, Precinct.geometry).where(Precinct.campaign_id == cid))).all()}
        rows = (await session.execute(select(Household.precinct_id, Building.lon, Building.lat, Building.snapped_m)
                                      .join(Building, Building.id == Household.building_id)
                                      .where(Household.campaign_id == cid))).all()
        inside = [r for r in rows if r.snapped_m is None]
        snapped = [r for r in rows if r.snapped_m is not None]
        assert (len(inside), len(snapped)) == (25303, 33)
        for precinct_id, shape in precincts.items():
            mine = np.array([(r.lon, r.lat) for r in inside if r.precinct_id == precinct_id])
            assert shapely.intersects_xy(shape, mine[:, 0], mine[:, 1]).all()
        assert max(r.snapped_m for r in snapped) < 48
        for r in snapped:
            point = shapely.Point(r.lon, r.lat)
            assert not any(shape.intersects(point) for shape in precincts.values())
            nearest = min(precincts, key=lambda pid: precincts[pid].distance(point))
            assert r.precinct_id == nearest

    async def test_precinct_9_1_holds_1402_households_and_counts_are_stored(self, session):
        cid = await campaign_id_of(session)
        precinct = await precinct_service.get_precinct(session, cid, "9-1")
        assert precinct.household_count == 1402
        assert precinct.household_count == await session.scalar(
            select(func.count()).select_from(Household).where(Household.precinct_id == precinct.id))
        assert precinct.person_count == await session.scalar(
            select(func.count()).select_from(Person).join(Household).where(Household.precinct_id == precinct.id))


class TestReimport:
    async def test_second_import_changes_nothing(self, session):
        cid = await campaign_id_of(session)
        before = (await session.execute(select(Household.id, Household.building_id, Household.unit)
                                        .where(Household.campaign_id == cid).order_by(Household.id))).all()
        report = await address_service.import_addresses(session, cid, DATA / "addresses.csv", label="a",
                                                        mapping=DEFAULT_MAP)
        assert (report.read, report.created, report.updated, report.unchanged, report.snapped) == (
            25336, 0, 0, 25336, 33)
        assert report.extra["buildings_created"] == 0
        after = (await session.execute(select(Household.id, Household.building_id, Household.unit)
                                       .where(Household.campaign_id == cid).order_by(Household.id))).all()
        assert before == after

    async def test_a_changed_row_is_updated_in_place(self, session, addresses, tmp_path):
        cid = await campaign_id_of(session)
        changed = addresses.copy()
        changed.loc[changed["address_id"] == "CAM14-000004", "street"] = "SECOND STREET"
        # A unit moves to a new parcel: a new building, and the old one stays (it has other units).
        row = changed.index[changed["unit"] != ""][0]
        moved_id = changed.at[row, "address_id"]
        changed.loc[row, ["parcel_id", "lon", "lat"]] = ["NEW-1", "-71.1100000", "42.3750000"]
        path = tmp_path / "changed.csv"
        changed.to_csv(path, index=False)
        old_id = await session.scalar(select(Household.id).where(Household.external_id == moved_id,
                                                                 Household.campaign_id == cid))
        report = await address_service.import_addresses(session, cid, path, label="changed.csv", mapping=DEFAULT_MAP)
        assert (report.created, report.updated, report.extra["buildings_created"]) == (0, 2, 1)
        household = (await session.execute(select(Household).where(Household.external_id == moved_id,
                                                                   Household.campaign_id == cid))).scalar_one()
        assert household.id == old_id
        building = await session.get(Building, household.building_id)
        assert (building.parcel, building.lon, building.lat) == ("NEW-1", -71.11, 42.375)
        street = await session.scalar(select(Household.street).where(Household.external_id == "CAM14-000004",
                                                                     Household.campaign_id == cid))
        assert street == "SECOND STREET"


class TestMapping:
    async def test_columns_are_mapped_and_joined(self, session, fresh, addresses, tmp_path):
        subset = addresses[addresses["street"].str.contains(" ")].head(500)
        parts = subset["street"].str.rsplit(" ", n=1, expand=True)
        other = pd.DataFrame({"ADDR_ID": subset["address_id"], "HOUSE": subset["number"], "NAME": parts[0],
                              "SUFFIX": parts[1], "X": subset["lon"], "Y": subset["lat"]})
        path = tmp_path / "other.csv"
        other.to_csv(path, index=False)
        mapping = parse_map(["id=ADDR_ID", "number=HOUSE", "street=NAME+SUFFIX", "lon=X", "lat=Y"],
                            address_service.ADDRESS_FIELDS)
        report = await address_service.import_addresses(session, fresh, path, label="other.csv", mapping=mapping)
        assert (report.created, len(report.rejected)) == (500, 0)
        stored = dict((await session.execute(select(Household.external_id, Household.street)
                                             .where(Household.campaign_id == fresh))).all())
        assert stored == dict(zip(subset["address_id"], subset["street"], strict=True))
        # Without parcels, units at one point are one building.
        assert await count(session, Building, fresh) == subset.groupby(["lon", "lat"]).ngroups

    async def test_a_point_geometry_stands_in_for_lon_lat(self, session, fresh, addresses, tmp_path):
        subset = addresses.head(200)
        features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(r.lon), float(r.lat)]},
                     "properties": {"address_id": r.address_id, "number": r.number, "street": r.street,
                                    "unit": r.unit}} for r in subset.itertuples()]
        path = tmp_path / "points.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        report = await address_service.import_addresses(session, fresh, path, label="points.geojson",
                                                        mapping=DEFAULT_MAP)
        assert (report.created, len(report.rejected)) == (200, 0)

    def test_bad_map_items_name_the_field(self):
        with pytest.raises(Invalid, match="unknown field 'colour'") as bad:
            parse_map(["colour=red"], address_service.ADDRESS_FIELDS)
        assert bad.value.extra["errors"][0]["field"] == "map"
        with pytest.raises(Invalid, match="expected FIELD=COLUMN"):
            parse_map(["street"], address_service.ADDRESS_FIELDS)


class TestRejectedRows:
    async def test_far_missing_and_repeated_rows_are_reported_and_the_rest_loaded(self, session, fresh, addresses,
                                                                                  tmp_path):
        rows = addresses.head(100).copy()
        rows.loc[3, ["lon", "lat"]] = ["-71.0655", "42.3550"]  # Boston Common, 2 km out
        rows.loc[5, ["lon", "lat"]] = ["", ""]
        rows.loc[7, "address_id"] = rows.loc[6, "address_id"]
        rows.loc[9, "address_id"] = ""
        rows.loc[11, "street"] = "X" * 201
        path = tmp_path / "mixed.csv"
        rows.to_csv(path, index=False)
        report = await address_service.import_addresses(session, fresh, path, label="mixed.csv", mapping=DEFAULT_MAP)
        assert [(r.file, r.row, r.column, r.id) for r in report.rejected] == [
            ("mixed.csv", 4, "lon", rows.loc[3, "address_id"]), ("mixed.csv", 6, "lon", rows.loc[5, "address_id"]),
            ("mixed.csv", 8, "address_id", rows.loc[6, "address_id"]), ("mixed.csv", 10, "address_id", None),
            ("mixed.csv", 12, "street", rows.loc[11, "address_id"])]
        assert "more than 50 m outside every precinct" in report.rejected[0].reason
        assert report.created == 95 == await count(session, Household, fresh)


BAD_FILES = {
    "empty.csv": (b"", "the file is empty"),
    "header.csv": (b"address_id,number,street,lon,lat\n", "holds no rows"),
    "nolon.csv": (b"address_id,number,street,lat\nA-1,1,MAIN ST,42.37\n", "no column 'lon' for field 'lon'"),
    "text.csv": (b"address_id,number,street,lon,lat\nA-1,1,MAIN ST,-71.1,42.37\nA-2,2,MAIN ST,west,42.37\n",
                 "row 2, column 'lon': 'west' is not a number"),
    "range.csv": (b"address_id,number,street,lon,lat\nA-1,1,MAIN ST,-271.1,42.37\n", "row 1, column 'lon'"),
    "wrong.gpkg": (b"\x89PNG\r\n" + bytes(range(256)) * 8, "in no format an import reads; accepted: CSV, GeoJSON"),
}


class TestBadFiles:
    @pytest.mark.parametrize("name", list(BAD_FILES))
    async def test_bad_address_file_fails_whole_and_leaves_no_row(self, session, fresh, tmp_path, name):
        content, message = BAD_FILES[name]
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(BadFile, match=message.replace("(", r"\(").replace(")", r"\)")) as failure:
            await address_service.import_addresses(session, fresh, path, label=name, mapping=DEFAULT_MAP)
        assert str(failure.value).startswith(name)
        assert (await count(session, Household, fresh), await count(session, Building, fresh)) == (0, 0)

    async def test_a_file_whose_every_row_is_rejected_loads_nothing(self, session, fresh, tmp_path):
        # GDAL ends a CSV line at a NUL byte, so this row loses its coordinates.
        path = tmp_path / "nul.csv"
        path.write_bytes(b"address_id,number,street,lon,lat\nA-1,1,MAIN\x00ST,-71.1,42.37\nA-2,2,MAIN ST,,\n")
        report = await address_service.import_addresses(session, fresh, path, label="nul.csv", mapping=DEFAULT_MAP)
        assert [(r.row, r.id, r.reason) for r in report.rejected] == [(1, "A-1", "no coordinates"),
                                                                     (2, "A-2", "no coordinates")]
        assert report.created == 0 == await count(session, Household, fresh)

    async def test_addresses_before_precincts_are_refused(self, session):
        campaign = await campaign_service.create_campaign(session, "bare", "Bare")
        with pytest.raises(BadFile, match="no precincts yet"):
            await address_service.import_addresses(session, campaign.id, DATA / "addresses.csv", label="a",
                                                   mapping=DEFAULT_MAP)


PEOPLE_MAP = parse_map(None, address_service.PEOPLE_FIELDS)


class TestPeople:
    async def test_voter_file_links_people_to_households_and_is_idempotent(self, session, tmp_path):
        cid = await campaign_id_of(session)
        voters = pd.DataFrame({
            "voter_id": ["V1", "V2", "V3", "V4", "V5"],
            "address_id": ["CAM14-000004", "CAM14-000004", "NOPE-1", "CAM14-000010", "CAM14-000011"],
            "first_name": ["Ana", "Luis", "Zed", "", "Bo"], "last_name": ["Silva", "Silva", "Q", "", "Li"],
            "birth_year": ["1980", "", "1970", "1990", "2001"], "language": ["pt", "", "", "", "zh"]})
        path = tmp_path / "voters.csv"
        voters.to_csv(path, index=False)
        report = await address_service.import_people(session, cid, path, label="voters.csv", mapping=PEOPLE_MAP)
        assert (report.read, report.created) == (5, 3)
        assert [(r.row, r.column, r.reason, r.id) for r in report.rejected] == [
            (3, "address_id", "no household has this address id", "V3"), (4, "last_name", "no name", "V4")]
        people = (await session.execute(
            select(Person.external_id, Person.birth_year, Person.language, Household.external_id).join(Household)
            .where(Person.external_id.in_(["V1", "V2", "V5"])).order_by(Person.external_id))).all()
        assert [tuple(p) for p in people] == [("V1", 1980, "pt", "CAM14-000004"), ("V2", None, None, "CAM14-000004"),
                                              ("V5", 2001, "zh", "CAM14-000011")]
        again = await address_service.import_people(session, cid, path, label="voters.csv", mapping=PEOPLE_MAP)
        assert (again.created, again.updated, again.unchanged) == (0, 0, 3)

    async def test_corrupt_birth_year_fails_whole(self, session, tmp_path):
        cid = await campaign_id_of(session)
        before = await count(session, Person, cid)
        path = tmp_path / "voters.csv"
        path.write_text("voter_id,address_id,first_name,last_name,birth_year\nV1,CAM14-000004,A,B,1980\n"
                        "V2,CAM14-000004,C,D,19x0\n")
        with pytest.raises(BadFile, match="row 2, column 'birth_year'"):
            await address_service.import_people(session, cid, path, label="voters.csv", mapping=PEOPLE_MAP)
        assert await count(session, Person, cid) == before

    async def test_demo_people_are_synthetic_and_stable(self, session):
        cid = await campaign_id_of(session)
        people = await count(session, Person, cid)
        assert people > 25336
        assert await session.scalar(select(func.count()).select_from(Person)
                                    .where(Person.campaign_id == cid, ~Person.synthetic)) == 0
        again = await address_service.make_demo_people(session, cid)
        assert again == {"created": 0, "updated": 0, "unchanged": people}
