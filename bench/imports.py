"""Importing the Cambridge address file, first time and again unchanged, against a raw read + join + bulk insert.

imports.addresses.<backend>        the first import into an empty campaign (25,336 households, 12,959 buildings)
imports.addresses.rerun.<backend>  importing the same file again: nothing changes
Both are compared with the same baseline: pyogrio reads the CSV, a shapely STRtree puts the points in the 33
precincts, and one bulk insert writes as many rows into a plain table (asyncpg COPY / sqlite3 executemany).
"""

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pyogrio
import shapely
from sqlalchemy import delete

from app.addresses.models import Building, Household
from app.addresses.service import ADDRESS_FIELDS, import_addresses
from app.campaigns.service import create_campaign
from app.db import make_engine, make_sessionmaker
from app.ingest import parse_map
from app.precincts.service import import_precincts
from bench.common import DATA, Context, Result, Timings, benchmark, fresh_database, pg_dsn, sqlite_path

ADDRESSES = DATA / "addresses.csv"
PRECINCTS = DATA / "precincts.geojson"
GOAL = 3.0  # the import within 3x of the raw baseline

BASELINE_TABLE = "bench_baseline_household"
BASELINE_COLUMNS = ("external_id", "building_key", "precinct_id", "number", "street", "unit", "lon", "lat")
BASELINE_DDL = (f"CREATE TABLE {BASELINE_TABLE} (external_id text, building_key text, precinct_id integer, "
                "number text, street text, unit text, lon double precision, lat double precision)")


def baseline_rows(path: Path, precinct_ids: list[int], wkb: list[bytes]) -> list[tuple[Any, ...]]:
    """The raw way: read the CSV, key each unit's building, put the points in precincts with one STRtree query."""
    frame = pyogrio.read_dataframe(path, read_geometry=False)
    lon = frame["lon"].astype(float).to_numpy()
    lat = frame["lat"].astype(float).to_numpy()
    parcel = frame["parcel_id"].fillna("").astype(str)
    key = np.where(parcel != "", "parcel:" + parcel, "pt:" + frame["lon"].astype(str) + "," + frame["lat"].astype(str))
    polygons = shapely.from_wkb(wkb)
    # One tree over the many points, queried by the few polygons (PERFORMANCE.md: the fastest way round).
    polygon_idx, point_idx = shapely.STRtree(shapely.points(lon, lat)).query(polygons, predicate="contains")
    precinct = np.full(len(frame), -1, dtype=np.int64)
    precinct[point_idx] = polygon_idx
    ids = np.asarray([*precinct_ids, 0], dtype=np.int64)[precinct]
    precinct_id: list[int | None] = [int(i) if i else None for i in ids.tolist()]
    text = {c: frame[c].fillna("").astype(str).tolist() for c in ("address_id", "number", "street", "unit")}
    return list(zip(text["address_id"], key.tolist(), precinct_id, text["number"], text["street"], text["unit"],
                    lon.tolist(), lat.tolist(), strict=True))


class PgBaseline:
    """The baseline on PostgreSQL: a raw asyncpg connection, COPY of every row in one transaction."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> "PgBaseline":
        self.conn = await asyncpg.connect(pg_dsn(self.url))
        await self.conn.execute(BASELINE_DDL)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()

    async def reset(self) -> None:
        await self.conn.execute(f"TRUNCATE {BASELINE_TABLE}")

    async def run(self, campaign_id: int) -> int:
        shapes = await self.conn.fetch("SELECT id, geometry FROM precinct WHERE campaign_id = $1 ORDER BY id",
                                       campaign_id)
        rows = baseline_rows(ADDRESSES, [r["id"] for r in shapes], [r["geometry"] for r in shapes])
        async with self.conn.transaction():
            await self.conn.copy_records_to_table(BASELINE_TABLE, records=rows, columns=BASELINE_COLUMNS)
        return len(rows)

    async def vacuum(self) -> None:
        """Clear the dead rows a delete left, so every repeat writes into tables like the first one's."""
        await self.conn.execute("VACUUM household, building")


class SqliteBaseline:
    """The baseline on SQLite: the sqlite3 module, executemany of every row in one transaction."""

    def __init__(self, url: str) -> None:
        self.path = sqlite_path(url)

    async def __aenter__(self) -> "SqliteBaseline":
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        # The same settings the project's engine gives every connection (app.db).
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(BASELINE_DDL)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.conn.close()

    async def reset(self) -> None:
        self.conn.execute(f"DELETE FROM {BASELINE_TABLE}")

    async def run(self, campaign_id: int) -> int:
        shapes = self.conn.execute("SELECT id, geometry FROM precinct WHERE campaign_id = ? ORDER BY id",
                                   (campaign_id,)).fetchall()
        rows = baseline_rows(ADDRESSES, [r[0] for r in shapes], [r[1] for r in shapes])
        marks = ", ".join("?" * len(BASELINE_COLUMNS))
        self.conn.execute("BEGIN")
        self.conn.executemany(f"INSERT INTO {BASELINE_TABLE} ({', '.join(BASELINE_COLUMNS)}) VALUES ({marks})", rows)
        self.conn.execute("COMMIT")
        return len(rows)

    async def vacuum(self) -> None:
        pass


async def address_import(ctx: Context, backend: str) -> list[Result]:
    mapping = parse_map(None, ADDRESS_FIELDS)
    first, rerun, baseline = Timings(), Timings(), Timings()
    async with fresh_database(ctx, backend) as url:
        engine = make_engine(url)
        maker = make_sessionmaker(engine)
        try:
            async with maker() as session:
                campaign = await create_campaign(session, "bench", "Bench")
                campaign_id = campaign.id or 0
                await import_precincts(session, campaign_id, PRECINCTS, label=PRECINCTS.name, name_field="name")
            raw = PgBaseline(url) if backend == "postgresql" else SqliteBaseline(url)
            async with raw:
                for repeat in range(ctx.repeats):
                    # Interleaved, so a machine slowing down mid-run weighs on both sides alike.
                    await raw.reset()
                    async with baseline.measure():
                        written = await raw.run(campaign_id)
                    async with maker() as session, first.measure():
                        report = await import_addresses(session, campaign_id, ADDRESSES, label=ADDRESSES.name,
                                                        mapping=mapping)
                    check(report.created == written - len(report.rejected) and report.updated == 0,
                          f"first import: {report.as_dict() | {'rejections': '...'}}")
                    async with maker() as session, rerun.measure():
                        again = await import_addresses(session, campaign_id, ADDRESSES, label=ADDRESSES.name,
                                                       mapping=mapping)
                    check(again.created == 0 and again.updated == 0 and again.unchanged == report.created,
                          f"second import: {again.as_dict() | {'rejections': '...'}}")
                    async with maker() as session:
                        await session.execute(delete(Household).where(Household.campaign_id == campaign_id))
                        await session.execute(delete(Building).where(Building.campaign_id == campaign_id))
                        await session.commit()
                    await raw.vacuum()
                    ctx.say(f"imports.addresses.{backend} #{repeat + 1}: first {first.runs[-1]:.3f} s, "
                            f"again {rerun.runs[-1]:.3f} s, baseline {baseline.runs[-1]:.3f} s "
                            f"({report.created} households, {report.extra.get('buildings_created')} buildings)")
        finally:
            await engine.dispose()
    return [Result(f"imports.addresses.{backend}", "s", first.median, baseline.median, GOAL),
            Result(f"imports.addresses.rerun.{backend}", "s", rerun.median, baseline.median, GOAL)]


def check(condition: bool, what: str) -> None:
    """Stop a benchmark that is not measuring what it claims to (an import that did other work)."""
    if not condition:
        raise AssertionError(f"unexpected {what}")


@benchmark("imports.addresses", per_backend=True)
async def addresses(ctx: Context, backend: str) -> list[Result]:
    """The Cambridge address import (first, and again unchanged) vs a raw read + STRtree + bulk insert."""
    return await address_import(ctx, backend)
