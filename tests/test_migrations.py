"""One Alembic history for both databases, and models that match it."""

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from alembic import command
from app.db import make_engine
from app.migrations import alembic_config
from app.models import metadata
from tests.conftest import upgrade


async def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


class TestMigrations:
    async def test_empty_database_upgrades_to_head_and_back(self, databases):
        url = await databases.create()
        await upgrade(url)
        assert await table_names(url) == set(metadata.tables) | {"alembic_version"}
        await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
        assert await table_names(url) == {"alembic_version"}
        await upgrade(url)
        assert set(metadata.tables) <= await table_names(url)
        await databases.drop(url)

    async def test_models_and_migrations_do_not_drift(self, empty_db_url):
        engine = make_engine(empty_db_url)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata))
        await engine.dispose()
        assert diff == [], f"models and migrations differ; run alembic revision --autogenerate: {diff}"


FIRST = "c9261692d988"
ROWS = [
    "INSERT INTO campaign (id, slug, name, created_at) VALUES (1, 'c', 'C', '2026-01-01 00:00:00+00')",
    "INSERT INTO precinct (id, campaign_id, code, name, geometry, min_lon, min_lat, max_lon, max_lat, building_count,"
    " household_count, person_count, created_at, updated_at) VALUES (1, 1, '1-1', 'P', :wkb, 0, 0, 1, 1, 1, 2, 0,"
    " '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')",
    "INSERT INTO building (id, campaign_id, precinct_id, key, number, street, lon, lat) VALUES"
    " (1, 1, 1, 'pt:0.5,0.5', '1', 'MAIN ST', 0.5, 0.5)",
    "INSERT INTO household (id, campaign_id, building_id, precinct_id, external_id, number, street, unit) VALUES"
    " (1, 1, 1, 1, 'A-1', '1', 'MAIN ST', ''), (2, 1, 1, 1, 'A-2', '1', 'MAIN ST', '2')",
]


async def test_upgrading_a_database_that_holds_data_keeps_it(databases):
    """Batch migrations rebuild SQLite tables: rows and the references between them must survive."""
    import shapely
    from sqlalchemy import text

    url = await databases.create()
    await upgrade(url, FIRST)
    engine = make_engine(url)
    async with engine.begin() as conn:
        for statement in ROWS:
            await conn.execute(text(statement), {"wkb": shapely.box(0, 0, 1, 1).wkb} if ":wkb" in statement else {})
    await upgrade(url)
    async with engine.connect() as conn:
        households = (await conn.execute(text("SELECT id, building_id, turf_id FROM household ORDER BY id"))).all()
        building = (await conn.execute(text("SELECT street_id, street_side, street_pos_m FROM building"))).one()
        shape = (await conn.execute(text("SELECT geojson FROM precinct"))).scalar_one()
    await engine.dispose()
    assert [tuple(h) for h in households] == [(1, 1, None), (2, 1, None)]
    assert tuple(building) == (None, 0, 0.0)
    # The precinct's GeoJSON text was written from its shape.
    assert shapely.from_geojson(shape).equals(shapely.box(0, 0, 1, 1))
    await databases.drop(url)


# A database of its own: migrations run on engines of their own.
pytestmark = pytest.mark.own_database


BEFORE_SNAPPING = "6d154354b30d"
# Two neighbours, clockwise and at full precision as shapes were stored before, the left one with a vertex on
# their seam that the right one lacks: snapped one by one they would part.
SEAM = ((-71.1, 42.37), (-71.0999, 42.371))
WEST = [(-71.101, 42.37), SEAM[0], (-71.09995, 42.3705), SEAM[1], (-71.101, 42.371)]
EAST = [SEAM[0], (-71.099, 42.37), (-71.099, 42.371), SEAM[1]]
SHAPE_ROW = ("geometry, geojson, min_lon, min_lat, max_lon, max_lat", ":wkb, :text, 0, 0, 1, 1")


def _clockwise(points: list[tuple[float, float]], east: float = 0.00000012345678) -> Any:
    import shapely

    ring = shapely.LinearRing([(x + east, y + east) for x, y in points])
    return shapely.Polygon(ring.coords[::-1] if ring.is_ccw else ring.coords)


async def test_upgrading_snaps_stored_shapes_as_one_coverage(databases):
    """Shapes stored before are snapped anew, neighbours together: wound as RFC 7946 says, six decimals, their
    seams shared; walk list versions and the change counter move, as their answers changed."""
    import orjson
    import shapely
    from sqlalchemy import text

    from app.geo.coverage import oriented

    url = await databases.create()
    await upgrade(url, BEFORE_SNAPPING)
    engine = make_engine(url)
    shapes = [_clockwise(WEST), _clockwise(EAST)]
    now = "'2026-01-01 00:00:00+00'"
    async with engine.begin() as conn:
        await conn.execute(text(f"INSERT INTO campaign (id, slug, name, created_at) VALUES (1, 'c', 'C', {now})"))
        for n, shape in enumerate(shapes, start=1):
            values = {"wkb": shape.wkb, "text": shapely.to_geojson(shape)}
            await conn.execute(text(
                f"INSERT INTO precinct (id, campaign_id, code, name, {SHAPE_ROW[0]}, building_count, household_count,"
                f" person_count, created_at, updated_at) VALUES ({n}, 1, '{n}', 'P', {SHAPE_ROW[1]}, 0, 0, 0, {now},"
                f" {now})"), values)
            await conn.execute(text(
                f"INSERT INTO turf (id, campaign_id, precinct_id, name, source, status, {SHAPE_ROW[0]}, doors,"
                f" buildings, holders, knocks, version, created_at, updated_at) VALUES ({n}, 1, {n}, 'T', 'cut',"
                f" 'active', {SHAPE_ROW[1]}, 0, 0, 0, 0, 4, {now}, {now})"), values)
        # A turf already as the snap writes it (on the grid, normalized, wound right): left as it is, its phones
        # download nothing anew.
        kept = oriented([shapely.normalize(shapely.box(-71.2, 42.3, -71.19, 42.31))])[0]
        await conn.execute(text(
            f"INSERT INTO turf (id, campaign_id, precinct_id, name, source, status, {SHAPE_ROW[0]}, doors,"
            f" buildings, holders, knocks, version, created_at, updated_at) VALUES (3, 1, 1, 'T', 'cut',"
            f" 'active', {SHAPE_ROW[1]}, 0, 0, 0, 0, 4, {now}, {now})"),
            {"wkb": kept.wkb, "text": shapely.to_geojson(kept)})
    await upgrade(url)
    async with engine.connect() as conn:
        turfs = (await conn.execute(text("SELECT geometry, geojson, version, min_lon FROM turf ORDER BY id"))).all()
        assert turfs.pop().version == 4
        precincts = (await conn.execute(text("SELECT geometry, geojson FROM precinct ORDER BY id"))).all()
        changes = (await conn.execute(text("SELECT changes FROM campaign"))).scalar_one()
    await engine.dispose()
    for rows in (turfs, precincts):
        stored = [shapely.from_wkb(r.geometry) for r in rows]
        assert stored[0].intersection(stored[1]).area == 0
        assert abs(stored[0].area + stored[1].area - shapely.union_all(stored).area) < 1e-15
        for row, shape in zip(rows, stored, strict=True):
            geometry = orjson.loads(row.geojson)
            assert shapely.geometry.shape(geometry).equals(shape) and shape.exterior.is_ccw
            assert all(round(v, 6) == v for position in geometry["coordinates"][0] for v in position)
    assert [t.version for t in turfs] == [5, 5] and changes == 1
    assert turfs[0].min_lon == -71.101
    await databases.drop(url)
