"""Progress over a million knocks: the counters sync keeps beside a raw GROUP BY over the knocks.

progress.<kind>.<format>.p99.<backend>   p99 latency of GET /progress/<kind> (all of Cambridge, as JSON or GeoJSON)
                                         through the app; baseline: the raw GROUP BY that computes the same
                                         figures from the knocks, on the driver (asyncpg, sqlite3); goal: at
                                         least 10x faster (ratio at most 0.1), the issue's aim
progress.<kind>.<format>.p50.<backend>   the same at p50, reported
progress.<kind>.p99.limit.<backend>      the slower format's p99 itself; goal: under 50 ms
progress.<kind>.day.p99.<backend>        p99 of the same JSON for the last day's window (about 33,000 knocks),
                                         which no counter can answer (doors count once in a window); baseline: the
                                         straight GROUP BYs that count the window's figures from its knocks (doors
                                         once each, contacts, knocks and the last; knocks by result), which build
                                         no answer; goal: p99 under 200 ms, a map of today that redraws at once
"""

import random
import sqlite3
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.auth.service import issue_token
from app.campaigns import service as campaign_service
from app.campaigns.roles import Role
from app.config import Settings
from app.db import bulk_insert, make_engine, make_sessionmaker
from app.main import create_app
from app.scripts.service import STANDARD_RESULTS
from app.sync import service as sync_service
from app.sync.models import DoorKnock
from app.turfs import service as turf_service
from app.walklists.models import WalkStop
from bench.common import Context, Result, benchmark, fresh_database, pg_dsn, sqlite_stamp
from bench.turfs import load_and_cut_city

KNOCKS = 1_000_000
CHUNK = 50_000
REQUESTS = 40
SECRET = "bench-secret-" + "x" * 40
COLUMNS = ("id", "campaign_id", "turf_id", "household_id", "precinct_id", "user_id", "device_id", "batch_id",
           "result", "contacted", "answers", "knocked_at", "clock_offset_s", "corrected_at", "clock_suspect",
           "received_at", "digest")
# The raw scans: every figure progress shows, counted from the knocks (by result; doors once each).
RAW = {
    "precincts": ["SELECT precinct_id, result, count(*), count(DISTINCT household_id), max(corrected_at) "
                  "FROM door_knock WHERE campaign_id = {p} GROUP BY precinct_id, result"],
    "turfs": ["SELECT turf_id, result, count(*), count(DISTINCT household_id), max(corrected_at) "
              "FROM door_knock WHERE campaign_id = {p} GROUP BY turf_id, result"],
}
# A window's figures the straight way: per precinct or turf its doors once each, its contacted doors, knocks and
# last knock; and its knocks by result.
RAW_WINDOW = {kind: [f"SELECT {key}, count(DISTINCT household_id), count(DISTINCT CASE WHEN contacted THEN "
                     f"household_id END), count(*), max(corrected_at) FROM door_knock WHERE campaign_id = {{p}} "
                     f"AND corrected_at >= {{since}} GROUP BY {key}",
                     f"SELECT {key}, result, count(*) FROM door_knock WHERE campaign_id = {{p}} "
                     f"AND corrected_at >= {{since}} GROUP BY {key}, result"]
              for kind, key in (("precincts", "precinct_id"), ("turfs", "turf_id"))}
DAY_LIMIT_MS = 200.0


async def _prepare(ctx: Context, url: str) -> tuple[int, str]:
    """Cambridge cut, a million knocks at its turfs' doors over thirty days (straight into door_knock), and the
    counters rebuilt from them as sync would have kept them; an organizer's token."""
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        campaign_id = await load_and_cut_city(session)
        campaign = await campaign_service.get_campaign(session, "cambridge")
        user, _ = await campaign_service.add_member(session, campaign, "organizer@bench.test", Role.organizer,
                                                    name="Organizer", password="bench password")
        stops = (await session.execute(select(WalkStop.turf_id, WalkStop.household_id,
                                              turf_service.Household.precinct_id)
                                       .join(turf_service.Household,
                                             turf_service.Household.id == WalkStop.household_id))).all()
        rng = random.Random(7)
        postgres = engine.dialect.name == "postgresql"
        codes = [(r["code"], r["contacted"]) for r in STANDARD_RESULTS]
        start = datetime.now(UTC) - timedelta(days=30)
        for first in range(0, KNOCKS, CHUNK):
            rows = []
            for _ in range(min(CHUNK, KNOCKS - first)):
                turf_id, household_id, precinct_id = stops[rng.randrange(len(stops))]
                code, contacted = codes[rng.randrange(len(codes))]
                at = start + timedelta(seconds=rng.randrange(30 * 86400))
                # COPY takes Python values; SQLite's driver the text SQLAlchemy would have written.
                stamp = at if postgres else sqlite_stamp(at)
                rows.append((uuid.uuid4() if postgres else uuid.uuid4().hex, campaign_id, turf_id, household_id,
                             precinct_id, user.id if postgres else user.id.hex, "bench", "bench", code, contacted,
                             "{}", stamp, 0.0, stamp, False, stamp, "0" * 64))
            await bulk_insert(session, DoorKnock.__table__, COLUMNS, rows)
            await session.commit()
            ctx.say(f"{first + len(rows):,} knocks stored")
        counted = await sync_service.rebuild_progress(session, campaign_id)
        ctx.say(f"counters rebuilt: {counted}")
    if postgres:
        # Freshly loaded tables have the statistics of empty ones until autovacuum gets to them (minutes on a
        # live server); without them PostgreSQL sorts the tallies it would hash. VACUUM also marks the knocks
        # all-visible, as autovacuum does for a table that grows by inserts.
        connection = await asyncpg.connect(pg_dsn(url))
        try:
            await connection.execute("VACUUM ANALYZE")
        finally:
            await connection.close()
    await engine.dispose()
    return campaign_id, issue_token(user.id, secret=SECRET, minutes=120)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def _through_app(url: str, token: str, path: str, geojson: bool, since: datetime | None = None) -> list[float]:
    app = create_app(Settings(database_url=url, jwt_secret=SECRET, _env_file=None))
    headers = {"Authorization": f"Bearer {token}"} | ({"Accept": "application/geo+json"} if geojson else {})
    params = {"since": since.isoformat()} if since is not None else {}
    samples = []
    async with app.router.lifespan_context(app), AsyncClient(transport=ASGITransport(app=app),
                                                             base_url="http://bench") as client:
        for n in range(REQUESTS + 2):
            begin = time.perf_counter()
            r = await client.get(f"/v1/campaigns/cambridge/progress/{path}", params=params, headers=headers)
            elapsed = time.perf_counter() - begin
            assert r.status_code == 200, r.text[:300]
            if n >= 2:  # two warm-up requests: the first connects and prepares
                samples.append(elapsed * 1000)
    return samples


async def _raw(url: str, campaign_id: int, kind: str, since: datetime | None = None) -> list[float]:
    samples = []
    queries = RAW_WINDOW[kind] if since else RAW[kind]
    if url.startswith("postgresql"):
        connection = await asyncpg.connect(pg_dsn(url))
        statements = [sql.format(p="$1", since="$2") for sql in queries]
        try:
            for n in range(REQUESTS // 4 + 1):
                begin = time.perf_counter()
                for sql in statements:
                    await connection.fetch(sql, campaign_id, *([since] if since else []))
                if n:
                    samples.append((time.perf_counter() - begin) * 1000)
        finally:
            await connection.close()
        return samples
    database = make_url(url).database
    assert database is not None
    connection = sqlite3.connect(database)
    statements = [sql.format(p="?", since="?") for sql in queries]
    # SQLite holds the times as the text SQLAlchemy writes (UTC, no zone).
    stamp = sqlite_stamp(since) if since else None
    try:
        for n in range(REQUESTS // 4 + 1):
            begin = time.perf_counter()
            for sql in statements:
                connection.execute(sql, (campaign_id, *([stamp] if stamp else []))).fetchall()
            if n:
                samples.append((time.perf_counter() - begin) * 1000)
    finally:
        connection.close()
    return samples


@benchmark("progress", per_backend=True)
async def progress(ctx: Context, backend: str) -> list[Result]:
    """Progress for all of Cambridge over a million knocks, beside the raw GROUP BY over the knocks."""
    results = []
    async with fresh_database(ctx, backend) as url:
        campaign_id, token = await _prepare(ctx, url)
        for kind in ("precincts", "turfs"):
            raw_p50, raw_p99 = _percentiles(await _raw(url, campaign_id, kind))
            worst = 0.0
            for fmt, geojson in (("json", False), ("geojson", True)):
                p50, p99 = _percentiles(await _through_app(url, token, kind, geojson))
                worst = max(worst, p99)
                ctx.say(f"progress/{kind} {fmt}: p50 {p50:.1f} ms, p99 {p99:.1f} ms; raw GROUP BY p50 "
                        f"{raw_p50:.0f} ms, p99 {raw_p99:.0f} ms")
                results += [Result(f"progress.{kind}.{fmt}.p99.{backend}", "ms", p99, raw_p99, 0.1),
                            Result(f"progress.{kind}.{fmt}.p50.{backend}", "ms", p50, raw_p50, 0.1)]
            results.append(Result(f"progress.{kind}.p99.limit.{backend}", "ms", worst, raw_p99, 50.0,
                                  goal_on="value"))
            day = datetime.now(UTC) - timedelta(days=1)
            raw_p50, raw_p99 = _percentiles(await _raw(url, campaign_id, kind, day))
            p50, p99 = _percentiles(await _through_app(url, token, kind, False, day))
            ctx.say(f"progress/{kind} for the last day: p50 {p50:.1f} ms, p99 {p99:.1f} ms; raw GROUP BY over the "
                    f"day p50 {raw_p50:.0f} ms, p99 {raw_p99:.0f} ms")
            results.append(Result(f"progress.{kind}.day.p99.{backend}", "ms", p99, raw_p99, DAY_LIMIT_MS,
                                  goal_on="value"))
    return results
