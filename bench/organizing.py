"""Claiming turfs: 50 volunteers at once through the service, beside a raw asyncpg FOR UPDATE SKIP LOCKED loop.

organizing.claims.throughput.postgresql  claims a second while 50 claimers each claim and release ROUNDS turfs;
                                         goal: at least 0.3x the raw loop's
organizing.claims.p50.postgresql         median seconds of one claim, from the call to its commit; goal: within 3x
organizing.claims.p99.postgresql         its 99th percentile; goal: within 3x
PostgreSQL only: SQLite runs writers one at a time, so there is no concurrent claiming to measure.
"""

import asyncio
import gc
import math
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from app.auth.passwords import hash_password
from app.campaigns.models import Campaign, Membership, User
from app.campaigns.roles import Role
from app.db import make_engine, make_sessionmaker, utcnow
from app.organizing.holdings import claim, release
from app.turfs import cutting as cut_service
from bench.common import Context, Result, benchmark, fresh_database, pg_dsn
from bench.turfs import TARGET, load_city

CLAIMERS = 50
ROUNDS = 10  # claims (each followed by its release) per claimer and run: 500 claims a run
SEED = 5
THROUGHPUT_GOAL = 100.0  # claims/s: 3,000 volunteers claiming in the half hour before a Saturday launch, 20x over
P50_GOAL, P99_GOAL = 0.25, 0.5  # seconds a volunteer waits for a turf, with 50 claiming at once

# The raw claim: the same pick as the service (active, unheld, least knocked, nearest bounding-box centre with
# longitude scaled to equal metres), without its lapse sweep, open-claim lookup or event-reservation filter.
PICK = """
SELECT id FROM turf
WHERE campaign_id = $1 AND status = 'active' AND holders = 0
ORDER BY knocks, (((min_lon + max_lon) / 2 - $2) * $4) ^ 2 + ((min_lat + max_lat) / 2 - $3) ^ 2, id
LIMIT 1 FOR UPDATE SKIP LOCKED
"""
HOLD = ("INSERT INTO turf_holding (campaign_id, turf_id, user_id, via, since, last_activity_at) "
        "VALUES ($1, $2, $3, 'claimed', $4, $4)")
HISTORY = ("INSERT INTO turf_history (campaign_id, turf_id, user_id, action, by_user_id, at) "
           "VALUES ($1, $2, $3, $4, $3, $5)")

# One claim and its release at a point, checked against the turfs held; returns the claim's seconds.
Cycle = Callable[[float, float, "Held"], Awaitable[float]]
# A claimer's cycle, ready to loop (holding whatever it needs, such as a connection).
Claimer = Callable[[int], AbstractAsyncContextManager[Cycle]]


class Held:
    """The turfs claimed and not yet being released, across all claimers: a turf handed out twice fails."""

    def __init__(self) -> None:
        self.ids: dict[int, int] = {}

    def claimed(self, turf_id: int, who: int) -> None:
        if turf_id in self.ids:
            raise AssertionError(f"turf {turf_id} claimed by claimer {who} while claimer {self.ids[turf_id]} "
                                 "holds it")
        self.ids[turf_id] = who

    def releasing(self, turf_id: int) -> None:
        del self.ids[turf_id]


@dataclass
class Run:
    seconds: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q))


class Project:
    """The service: one shared sessionmaker on an engine pooled for every claimer, a session per cycle."""

    def __init__(self, url: str, campaign_id: int, users: list[uuid.UUID]) -> None:
        self.url, self.campaign_id, self.users = url, campaign_id, users

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Claimer]:
        engine = make_engine(self.url, pool_size=CLAIMERS, max_overflow=0)
        maker = make_sessionmaker(engine)
        async with maker() as session:
            # Read once, as the request's access check would: the claim needs its id and lapse time.
            campaign = await session.get(Campaign, self.campaign_id)
        assert campaign is not None

        @asynccontextmanager
        async def claimer(who: int) -> AsyncIterator[Cycle]:
            user_id = self.users[who]

            async def cycle(lon: float, lat: float, held: Held) -> float:
                async with maker() as session:
                    start = time.perf_counter()
                    got = await claim(session, campaign, user_id, lon=lon, lat=lat)
                    seconds = time.perf_counter() - start
                    turf_id = got.turf_id
                    check(got.new, f"claimer {who} given their open claim on turf {turf_id}, not a new one")
                    held.claimed(turf_id, who)
                    held.releasing(turf_id)
                    await release(session, self.campaign_id, turf_id, user_id)
                return seconds

            yield cycle

        try:
            yield claimer
        finally:
            await engine.dispose()


class Raw:
    """The baseline: a pool of raw asyncpg connections, one held by each claimer for its whole loop."""

    def __init__(self, url: str, campaign_id: int, users: list[uuid.UUID]) -> None:
        self.url, self.campaign_id, self.users = url, campaign_id, users

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Claimer]:
        pool = await asyncpg.create_pool(pg_dsn(self.url), min_size=CLAIMERS, max_size=CLAIMERS)
        campaign_id = self.campaign_id

        @asynccontextmanager
        async def claimer(who: int) -> AsyncIterator[Cycle]:
            user_id = self.users[who]
            async with pool.acquire() as conn:

                async def cycle(lon: float, lat: float, held: Held) -> float:
                    start = time.perf_counter()
                    async with conn.transaction():
                        turf_id = await conn.fetchval(PICK, campaign_id, lon, lat, math.cos(math.radians(lat)))
                        check(turf_id is not None, "raw claim found no free turf")
                        now = utcnow()
                        await conn.execute("UPDATE turf SET holders = holders + 1 WHERE id = $1", turf_id)
                        await conn.execute(HOLD, campaign_id, turf_id, user_id, now)
                        await conn.execute(HISTORY, campaign_id, turf_id, user_id, "claimed", now)
                    seconds = time.perf_counter() - start
                    held.claimed(turf_id, who)
                    held.releasing(turf_id)
                    async with conn.transaction():
                        await conn.execute("DELETE FROM turf_holding WHERE turf_id = $1 AND user_id = $2",
                                           turf_id, user_id)
                        await conn.execute(HISTORY, campaign_id, turf_id, user_id, "released", utcnow())
                        await conn.execute("UPDATE turf SET holders = holders - 1 WHERE id = $1", turf_id)
                    return seconds

                yield cycle

        try:
            yield claimer
        finally:
            await pool.close()


async def claim_run(side: Project | Raw, points: list[list[tuple[float, float]]]) -> Run:
    """Every claimer at once, each claiming and releasing at its points in turn; the wall time and claim times."""
    held = Held()
    latencies: list[float] = []

    async def one(who: int, claimer: Claimer, *, warm_up: bool) -> None:
        async with claimer(who) as cycle:
            for lon, lat in points[who][:1] if warm_up else points[who][1:]:
                latency = await cycle(lon, lat, held)
                if not warm_up:
                    latencies.append(latency)

    async with side.open() as claimer:
        # Untimed: every connection opened and every statement prepared once, on both sides alike.
        await asyncio.gather(*(one(who, claimer, warm_up=True) for who in range(CLAIMERS)))
        gc.collect()
        start = time.perf_counter()
        await asyncio.gather(*(one(who, claimer, warm_up=False) for who in range(CLAIMERS)))
        seconds = time.perf_counter() - start
    check(not held.ids, f"turfs left held: {sorted(held.ids)}")
    return Run(seconds, latencies)


async def check_history(conn: asyncpg.Connection, campaign_id: int, after: int, claims: int) -> int:
    """Every turf's history since `after` alternates claimed and released by the same user, nothing is held
    now, and `claims` claims were made; returns the last history id.

    A claimer locks the turf only once the previous holder's release has committed, so history ids (taken from
    a sequence as rows are inserted) order each turf's rows as they happened: a turf handed out twice shows two
    claims in a row.
    """
    rows = await conn.fetch("SELECT id, turf_id, user_id, action FROM turf_history "
                            "WHERE campaign_id = $1 AND id > $2 ORDER BY turf_id, id", campaign_id, after)
    last: dict[int, Any] = {}
    for row in rows:
        before = last.get(row["turf_id"])
        if row["action"] == "claimed":
            check(before is None or before["action"] == "released",
                  f"turf {row['turf_id']} claimed (history {row['id']}) while held (history {before and before['id']})")
        else:
            check(row["action"] == "released" and before is not None and before["action"] == "claimed"
                  and before["user_id"] == row["user_id"], f"turf history row {row['id']}: {dict(row)}")
        last[row["turf_id"]] = row
    made = sum(1 for r in rows if r["action"] == "claimed")
    check(made == claims, f"{made} claims in turf_history, expected {claims}")
    held = await conn.fetchval("SELECT count(*) FROM turf_holding WHERE campaign_id = $1", campaign_id)
    holders = await conn.fetchval("SELECT count(*) FROM turf WHERE campaign_id = $1 AND holders <> 0", campaign_id)
    check(held == 0 and holders == 0, f"after the run: {held} holdings, {holders} turfs with holders")
    return max((r["id"] for r in rows), default=after)


async def setup(url: str) -> tuple[int, list[uuid.UUID]]:
    """Cambridge cut at 50 doors a turf, and CLAIMERS canvassers (one password hash for all of them)."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            campaign_id = await load_city(session)
            job = await cut_service.start_cut(session, campaign_id, codes=None, target=TARGET, created_by="bench")
            assert job.id is not None
            await cut_service.cut_turfs(session, campaign_id, codes=None, target=TARGET, cut_id=job.id)
            password_hash = await hash_password("bench claimer password")
            users = [User(email=f"claimer{i}@bench.test", name=f"Claimer {i}", password_hash=password_hash)
                     for i in range(CLAIMERS)]
            session.add_all(users)
            await session.flush()  # no relationship tells the unit of work users go before memberships
            session.add_all(Membership(campaign_id=campaign_id, user_id=u.id, role=Role.canvasser.value)
                            for u in users)
            await session.commit()
            return campaign_id, [u.id for u in users]
    finally:
        await engine.dispose()


def claim_points(box: tuple[float, float, float, float]) -> list[list[tuple[float, float]]]:
    """Each claimer's points, the warm-up's first: fixed random points within the turfs' extent."""
    min_lon, min_lat, max_lon, max_lat = box
    rng = random.Random(SEED)
    return [[(rng.uniform(min_lon, max_lon), rng.uniform(min_lat, max_lat)) for _ in range(ROUNDS + 1)]
            for _ in range(CLAIMERS)]


def check(condition: bool, what: str) -> None:
    """Stop a benchmark that is not measuring what it claims to (a turf handed out twice, claims missing)."""
    if not condition:
        raise AssertionError(f"unexpected: {what}")


@benchmark("organizing.claims")
async def claims(ctx: Context) -> list[Result]:
    """50 concurrent turf claims through the service vs a raw asyncpg FOR UPDATE SKIP LOCKED loop (PostgreSQL)."""
    if "postgresql" not in ctx.backends:
        ctx.say("organizing.claims: PostgreSQL only, not in this run's backends")
        return []
    ours: list[Run] = []
    raw: list[Run] = []
    async with fresh_database(ctx, "postgresql") as url:
        campaign_id, users = await setup(url)
        conn = await asyncpg.connect(pg_dsn(url))
        try:
            turfs = await conn.fetchval("SELECT count(*) FROM turf WHERE campaign_id = $1", campaign_id)
            check(turfs > CLAIMERS, f"{turfs} turfs for {CLAIMERS} claimers")
            box = await conn.fetchrow("SELECT min(min_lon), min(min_lat), max(max_lon), max(max_lat) FROM turf "
                                      "WHERE campaign_id = $1", campaign_id)
            points = claim_points(tuple(box))
            ctx.say(f"organizing.claims: {turfs} turfs, {CLAIMERS} claimers x {ROUNDS} claims a run")
            last = 0
            per_run = CLAIMERS * (ROUNDS + 1)  # the warm-up's claims are in the history too
            for repeat in range(ctx.repeats):
                # Interleaved, so a machine slowing down mid-run weighs on both sides alike.
                raw.append(await claim_run(Raw(url, campaign_id, users), points))
                last = await check_history(conn, campaign_id, last, per_run)
                ours.append(await claim_run(Project(url, campaign_id, users), points))
                last = await check_history(conn, campaign_id, last, per_run)
                ctx.say(f"organizing.claims #{repeat + 1}: ours {describe(ours[-1])}; raw {describe(raw[-1])}")
        finally:
            await conn.close()

    def median(runs: list[Run], figure: Callable[[Run], float]) -> float:
        return statistics.median(figure(r) for r in runs)

    def throughput(r: Run) -> float:
        return r.throughput

    def p50(r: Run) -> float:
        return r.percentile(50)

    def p99(r: Run) -> float:
        return r.percentile(99)

    return [
        Result("organizing.claims.throughput.postgresql", "claims/s", median(ours, throughput),
               median(raw, throughput), THROUGHPUT_GOAL, goal_on="value", higher=True),
        Result("organizing.claims.p50.postgresql", "s", median(ours, p50), median(raw, p50), P50_GOAL,
               goal_on="value"),
        Result("organizing.claims.p99.postgresql", "s", median(ours, p99), median(raw, p99), P99_GOAL,
               goal_on="value"),
    ]


def describe(run: Run) -> str:
    return (f"{run.throughput:.0f} claims/s, p50 {run.percentile(50) * 1000:.1f} ms, "
            f"p99 {run.percentile(99) * 1000:.1f} ms")
