"""Sync ingest: knocks a second through the app (POST /sync, batches of 100), beside raw asyncpg COPY.

sync.ingest.postgresql       knocks/s through the app on PostgreSQL, beside `copy_records_to_table` of the same
                             rows into the same door_knock table (its keys, foreign keys and indexes), 100 rows
                             to a transaction; goal: at least 0.3x, the issue's aim, with every check on (auth,
                             each knock validated, the door on the turf, the holding at the knock's time,
                             duplicates, counters and last results updated in the same transaction)
sync.ingest.sqlite           knocks/s through the app on SQLite, beside the sqlite3 module's executemany of the same
                             rows into the same door_knock table (foreign keys on, WAL, synchronous=NORMAL, as the
                             app), 100 rows to a transaction; the issue sets no goal here: the value must reach
                             1,000 knocks/s, what 3,000 phones each syncing 20 knocks a minute send
The app runs in process (httpx over ASGI), one phone's batch after another. The COPY of the same rows into a bare
table (a uuid key, no foreign key, no other index: what storing the bytes costs) is printed beside, for scale.
"""

import sqlite3
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select, text

from app.auth.service import issue_token
from app.campaigns import service as campaign_service
from app.campaigns.roles import Role
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.organizing import holdings
from app.turfs import service as turf_service
from app.turfs.models import Turf
from app.walklists.models import WalkStop
from bench.common import Context, Result, benchmark, fresh_database, pg_dsn, sqlite_path, sqlite_stamp
from bench.turfs import load_and_cut_city

BATCH = 100
BATCHES = 60  # 6,000 knocks a timed run
# Untimed batches first, one a phone, on both sides: a new engine's first batch connects and prepares its
# statements (about 200 ms); a server pays that once, not once in 60 batches.
WARMUP = 6
CANVASSERS = 6
SECRET = "bench-secret-" + "x" * 40
GOAL = 0.3
SQLITE_KNOCKS_PER_S = 1000.0
COLUMNS = ("seq", "id", "campaign_id", "turf_id", "household_id", "precinct_id", "user_id", "device_id", "batch_id",
           "result", "contacted", "answers", "knocked_at", "clock_offset_s", "corrected_at", "clock_suspect",
           "received_at", "digest")


async def _prepare(url: str) -> tuple[int, list[tuple[str, int, list[tuple[int, int]]]], uuid.UUID]:
    """Cambridge cut, and canvassers each holding a turf: (token, turf, its (household, precinct) doors); and
    one canvasser's id, for raw rows."""
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        campaign_id = await load_and_cut_city(session)
        campaign = await campaign_service.get_campaign(session, "cambridge")
        turfs = (await session.execute(select(Turf.id).where(Turf.doors >= 40).order_by(Turf.id)
                                       .limit(CANVASSERS))).scalars().all()
        phones = []
        for n, turf_id in enumerate(turfs):
            user, _ = await campaign_service.add_member(session, campaign, f"phone{n}@bench.test", Role.canvasser,
                                                        name=f"Phone {n}", password="bench password")
            await holdings.assign(session, campaign_id, turf_id, [user.id], by=None)
            doors = (await session.execute(select(WalkStop.household_id, turf_service.Household.precinct_id)
                                           .join(turf_service.Household,
                                                 turf_service.Household.id == WalkStop.household_id)
                                           .where(WalkStop.turf_id == turf_id))).all()
            phones.append((issue_token(user.id, secret=SECRET, minutes=60), turf_id, [tuple(d) for d in doors]))
        if engine.dialect.name == "postgresql":
            await session.execute(text("ANALYZE"))
            await session.commit()
    await engine.dispose()
    return campaign_id, phones, user.id


def _batches(phones: list[tuple[str, int, list[tuple[int, int]]]]) -> list[tuple[str, bytes]]:
    """WARMUP + BATCHES bodies of BATCH fresh knocks, phones taking turns: (token, JSON body)."""
    codes = ("not_home", "contacted", "refused", "not_home", "come_back")
    bodies = []
    for b in range(WARMUP + BATCHES):
        token, turf_id, doors = phones[b % len(phones)]
        now = datetime.now(UTC)
        knocks = [{"id": str(uuid.uuid4()), "household_id": doors[(b * BATCH + i) % len(doors)][0],
                   "turf_id": turf_id, "result": codes[i % len(codes)],
                   "knocked_at": (now - timedelta(seconds=BATCH - i)).isoformat()} for i in range(BATCH)]
        bodies.append((token, orjson.dumps({"device_id": f"phone-{b % len(phones)}", "batch_id": str(uuid.uuid4()),
                                            "sent_at": now.isoformat(), "knocks": knocks})))
    return bodies


async def _through_app(url: str, bodies: list[tuple[str, bytes]]) -> float:
    """Knocks a second through the app in process, batch after batch; every knock must be accepted."""
    app = create_app(Settings(database_url=url, jwt_secret=SECRET, _env_file=None))
    async with app.router.lifespan_context(app), AsyncClient(transport=ASGITransport(app=app),
                                                             base_url="http://bench") as client:
        for n, (token, body) in enumerate(bodies):
            if n == WARMUP:
                start = time.perf_counter()
            r = await client.post("/v1/campaigns/cambridge/sync", content=body,
                                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            assert r.status_code == 200 and r.json()["accepted"] == BATCH, r.text[:500]
        seconds = time.perf_counter() - start
    return BATCHES * BATCH / seconds


def _rows(campaign_id: int, phones: list[tuple[str, int, list[tuple[int, int]]]], user: uuid.UUID,
          first_seq: int) -> list[list[tuple[object, ...]]]:
    """WARMUP + BATCHES lists of BATCH door_knock rows (COLUMNS), real doors and turfs, fresh ids."""
    now = datetime.now(UTC)
    batches = []
    for b in range(WARMUP + BATCHES):
        _, turf_id, doors = phones[b % len(phones)]
        batches.append([(first_seq + b * BATCH + i, uuid.uuid4(), campaign_id, turf_id,
                         *doors[(b * BATCH + i) % len(doors)], user, "phone", "batch", "not_home", False, "{}",
                         now, 0.0, now, False, now, "0" * 64) for i in range(BATCH)])
    return batches


async def _copy(connection: asyncpg.Connection, batches: list[list[tuple[object, ...]]]) -> float:
    for n, rows in enumerate(batches):
        if n == WARMUP:
            start = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table("door_knock", records=rows, columns=COLUMNS)
    return BATCHES * BATCH / (time.perf_counter() - start)


async def _raw_copy_same_table(url: str, campaign_id: int, phones: list[tuple[str, int, list[tuple[int, int]]]],
                               user: uuid.UUID) -> float:
    """Knocks a second COPYing rows into the app's own door_knock table, BATCH to a transaction."""
    connection = await asyncpg.connect(pg_dsn(url))
    try:
        first = (await connection.fetchval("SELECT coalesce(max(seq), 0) FROM door_knock")) + 1_000_000
        return await _copy(connection, _rows(campaign_id, phones, user, first))
    finally:
        await connection.close()


def _raw_sqlite_same_table(url: str, campaign_id: int, phones: list[tuple[str, int, list[tuple[int, int]]]],
                           user: uuid.UUID) -> float:
    """Knocks a second inserting rows into the app's own door_knock table on SQLite with the sqlite3 module, BATCH
    to a transaction, the values as SQLAlchemy writes them (uuids as hex, times as text)."""
    connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
    try:
        for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL"):
            connection.execute(f"PRAGMA {pragma}")
        sql = (f"INSERT INTO door_knock ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' for _ in COLUMNS[1:])})")
        batches = [[(r[1].hex, *r[2:6], r[6].hex, *r[7:11],
                     *(sqlite_stamp(v) if isinstance(v, datetime) else v for v in r[11:17]), r[17]) for r in rows]
                   for rows in _rows(campaign_id, phones, user, 0)]
        for n, rows in enumerate(batches):
            if n == WARMUP:
                start = time.perf_counter()
            connection.execute("BEGIN")
            connection.executemany(sql, rows)
            connection.execute("COMMIT")
        return BATCHES * BATCH / (time.perf_counter() - start)
    finally:
        connection.close()


async def _raw_copy(pg_url: str, campaign_id: int, phones: list[tuple[str, int, list[tuple[int, int]]]]) -> float:
    """Knocks a second COPYing the same kind of rows, BATCH to a transaction, into a bare door_knock table."""
    name = f"doorstep_bench_raw_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_dsn(pg_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    connection = await asyncpg.connect(pg_dsn(pg_url, name))
    try:
        await connection.execute(
            "CREATE TABLE door_knock (seq bigserial PRIMARY KEY, id uuid UNIQUE NOT NULL, campaign_id int NOT NULL, "
            "turf_id int NOT NULL, household_id int NOT NULL, precinct_id int NOT NULL, user_id uuid NOT NULL, "
            "device_id text NOT NULL, batch_id text NOT NULL, result text NOT NULL, contacted bool NOT NULL, "
            "answers text NOT NULL, knocked_at timestamptz NOT NULL, clock_offset_s float8 NOT NULL, "
            "corrected_at timestamptz NOT NULL, clock_suspect bool NOT NULL, received_at timestamptz NOT NULL, "
            "digest text NOT NULL)")
        return await _copy(connection, _rows(campaign_id, phones, uuid.uuid4(), 1))
    finally:
        await connection.close()
        admin = await asyncpg.connect(pg_dsn(pg_url))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@benchmark("sync.ingest", per_backend=True)
async def ingest(ctx: Context, backend: str) -> list[Result]:
    """Knocks a second through POST /sync (batches of 100) beside a raw COPY of the same rows."""
    async with fresh_database(ctx, backend) as url:
        campaign_id, phones, user = await _prepare(url)
        app_rates, same_rates, bare_rates = [], [], []
        for _ in range(ctx.repeats):
            app_rates.append(await _through_app(url, _batches(phones)))
            if backend == "postgresql":
                same_rates.append(await _raw_copy_same_table(url, campaign_id, phones, user))
                bare_rates.append(await _raw_copy(ctx.pg_url, campaign_id, phones))
            else:
                same_rates.append(_raw_sqlite_same_table(url, campaign_id, phones, user))
    app_rate, same_rate = statistics.median(app_rates), statistics.median(same_rates)
    if backend == "sqlite":
        ctx.say(f"sync on SQLite: {app_rate:,.0f} knocks/s through the app; executemany into door_knock "
                f"{same_rate:,.0f}/s")
        return [Result("sync.ingest.sqlite", "knocks/s", app_rate, same_rate, SQLITE_KNOCKS_PER_S, goal_on="value",
                       higher=True)]
    ctx.say(f"sync on PostgreSQL: {app_rate:,.0f} knocks/s through the app; COPY into door_knock {same_rate:,.0f}/s, "
            f"into a bare table {statistics.median(bare_rates):,.0f}/s (for scale)")
    return [Result("sync.ingest.postgresql", "knocks/s", app_rate, same_rate, GOAL, higher=True)]
