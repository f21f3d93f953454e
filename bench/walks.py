"""Walk lists: every turf's walking order beside OR-Tools, and the walk-list endpoint beside raw asyncpg.

walks.route.city     mean over the turfs of a city-wide cut of our path's length over OR-Tools' (guided local
                     search, DOORSTEP_BENCH_ORTOOLS_S seconds a turf, default 2) on the same distance matrix;
                     goal: within 5%
walks.order.time     mean ms for plan_walk to order one turf (distance matrix, order, route); baseline OR-Tools'
                     time a turf; goal: under 50 ms
walklist.get.rps     GET .../walklist of a 60-door turf by 16 clients at once, requests/s; baseline: raw asyncpg
                     reading the same rows and writing the same JSON with orjson; goal: at least 0.3x
walklist.get.p50     median ms of one request; goal: within 4x
walklist.get.p99     its 99th percentile; goal: within 4x
walklist.size.gzip   bytes of that walk list gzipped as served; baseline: uncompressed; goal: under 30,000
The route rows run on SQLite (the ordering reads the database once and is the same on both); the endpoint rows
on PostgreSQL only, the baseline being raw asyncpg.
"""

import asyncio
import gc
import multiprocessing
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
import orjson
import pandas as pd
from httpx import ASGITransport, AsyncClient
from numpy.typing import NDArray
from sqlalchemy import func, select

from app.addresses.service import make_demo_people
from app.auth.service import issue_token
from app.campaigns.roles import Role
from app.campaigns.service import add_member, get_campaign
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.geo.order import Streets
from app.geo.shapes import Projection
from app.geo.walk import Stops, distances, path_length, plan_walk, walk_order
from app.main import create_app
from app.precincts.service import projection
from app.scripts.schemas import ScriptIn, ScriptUses
from app.scripts.service import create_script, set_uses
from app.streets.service import load_streets
from app.turfs import cutting as cut_service
from app.turfs.models import Turf
from app.walklists.service import DIGITS, NO_SCRIPT, age_band, walk_doors
from bench.common import Context, Result, benchmark, fresh_database, pg_dsn
from bench.organizing import check
from bench.turfs import TARGET, load_city

# Routes ----------------------------------------------------------------------------------------------------------

ORTOOLS_ENV = "DOORSTEP_BENCH_ORTOOLS_S"  # seconds OR-Tools gets a turf; shorten it for quick trials
ORTOOLS_WORKERS = 2  # one solver a core, on the 2-core machine the figures come from
MIN_STOPS = 3  # fewer buildings have one order either way round: both sides are trivially optimal
ROUTE_GOAL = 1.05  # our path at most 5% longer than OR-Tools', on average over the turfs
ORDER_GOAL_MS = 50.0  # turfs are ordered inside requests (a drawn or edited turf), and 500 at a time by a cut


@dataclass(frozen=True)
class TurfStops:
    turf_id: int
    stored_m: float  # the route length the cut stored, to check the stops are built as the product builds them
    stops: Stops


def turf_stops(streets: Streets | None, proj: Projection, doors: pd.DataFrame,
               stored: dict[int, float]) -> list[TurfStops]:
    """Each turf's stops, built as app.geo.order.order_turfs builds them (its buildings by id)."""
    x, y = proj.points(doors["lon"].to_numpy(float), doors["lat"].to_numpy(float))
    doors = doors.assign(x=x, y=y)
    index = streets.index if streets is not None else {}
    turfs = []
    for turf_id, group in doors.groupby("turf", sort=True):
        buildings = group.drop_duplicates("building_id").sort_values("building_id")
        segment = np.array([index.get(int(s), -1) if s == s and s is not None else -1
                            for s in buildings["street_id"]], dtype=np.int64)
        stops = Stops(buildings["x"].to_numpy(float), buildings["y"].to_numpy(float), segment,
                      buildings["street_side"].to_numpy(np.int64), buildings["street_pos_m"].to_numpy(float))
        turfs.append(TurfStops(int(turf_id), stored[int(turf_id)], stops))
    return turfs


@dataclass
class Ours:
    order: NDArray[np.int64]
    length_m: float
    seconds: list[float]  # plan_walk, one a pass
    order_seconds: float  # walk_order alone on the matrix, first pass


def time_ours(streets: Streets | None, turfs: list[TurfStops], passes: int) -> list[Ours]:
    """plan_walk on every turf, `passes` times over; the first pass also times walk_order alone."""
    network = streets.network if streets is not None else None
    ours: list[Ours] = []
    for turf in turfs:
        dist = distances(network, turf.stops)
        start = time.perf_counter()
        walk_order(dist)
        ours.append(Ours(np.zeros(0, np.int64), 0.0, [], time.perf_counter() - start))
    for _ in range(passes):
        gc.collect()
        for turf, mine in zip(turfs, ours, strict=True):
            start = time.perf_counter()
            walk = plan_walk(network, turf.stops)
            mine.seconds.append(time.perf_counter() - start)
            mine.order, mine.length_m = walk.order, walk.length_m
    return ours


def ortools_path(costs: list[list[int]], seconds: float) -> tuple[list[int], float]:
    """OR-Tools' open path through stops 1..n of `costs` (node 0 the dummy depot, 0 to and from every stop),
    as stop indices from 0, and the seconds the model and search took. Runs in a worker process."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    start = time.perf_counter()
    manager = pywrapcp.RoutingIndexManager(len(costs), 1, 0)
    routing = pywrapcp.RoutingModel(manager)
    if hasattr(routing, "RegisterTransitMatrix"):
        transit = routing.RegisterTransitMatrix(costs)
    else:
        def cost(i: int, j: int) -> int:
            return costs[manager.IndexToNode(i)][manager.IndexToNode(j)]
        transit = routing.RegisterTransitCallback(cost)
    routing.SetArcCostEvaluatorOfAllVehicles(transit)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(round(seconds * 1000))
    solution = routing.SolveWithParameters(params)
    elapsed = time.perf_counter() - start
    if solution is None:
        raise RuntimeError(f"OR-Tools found no route through {len(costs) - 1} stops")
    order = []
    node = solution.Value(routing.NextVar(routing.Start(0)))
    while not routing.IsEnd(node):
        order.append(manager.IndexToNode(node) - 1)
        node = solution.Value(routing.NextVar(node))
    return order, elapsed


def ortools_costs(dist: NDArray[np.float64]) -> list[list[int]]:
    """The matrix as OR-Tools takes it: whole decimetres, with the dummy depot as node 0."""
    n = len(dist)
    costs = np.zeros((n + 1, n + 1), dtype=np.int64)
    costs[1:, 1:] = np.rint(dist * 10)
    return costs.tolist()


async def solve_all(ctx: Context, matrices: list[list[list[int]]], seconds: float) -> list[tuple[list[int], float]]:
    """OR-Tools on every matrix, ORTOOLS_WORKERS processes at once (spawned: this process has threads)."""
    loop = asyncio.get_running_loop()
    done = 0

    async def one(pool: ProcessPoolExecutor, costs: list[list[int]]) -> tuple[list[int], float]:
        nonlocal done
        solved = await loop.run_in_executor(pool, ortools_path, costs, seconds)
        done += 1
        if done % 50 == 0 or done == len(matrices):
            ctx.say(f"walks: OR-Tools {done}/{len(matrices)} turfs")
        return solved

    with ProcessPoolExecutor(ORTOOLS_WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        return await asyncio.gather(*(one(pool, costs) for costs in matrices))


async def city_turfs(url: str) -> tuple[Streets | None, list[TurfStops]]:
    """Cambridge cut at 50 doors a turf: the street network and every active turf's stops."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            campaign_id = await load_city(session)
            await cut_city(session, campaign_id)
            stored = dict((await session.execute(select(Turf.id, Turf.route_m).where(
                Turf.campaign_id == campaign_id, Turf.status == "active"))).all())
            proj = await projection(session, campaign_id)
            streets = await load_streets(session, campaign_id, proj)
            doors = await walk_doors(session, sorted(stored))
    finally:
        await engine.dispose()
    return streets, await asyncio.to_thread(turf_stops, streets, proj, doors, stored)


async def cut_city(session: Any, campaign_id: int) -> dict:
    job = await cut_service.start_cut(session, campaign_id, codes=None, target=TARGET, created_by="bench")
    assert job.id is not None
    return await cut_service.cut_turfs(session, campaign_id, codes=None, target=TARGET, cut_id=job.id)


@benchmark("walks")
async def routes(ctx: Context) -> list[Result]:
    """Every turf of the city cut ordered by plan_walk vs OR-Tools guided local search on the same distances."""
    seconds = float(os.environ.get(ORTOOLS_ENV) or 2.0)
    async with fresh_database(ctx, "sqlite") as url:
        streets, turfs = await city_turfs(url)
    small = [t for t in turfs if len(t.stops.x) < MIN_STOPS]
    turfs = [t for t in turfs if len(t.stops.x) >= MIN_STOPS]
    ctx.say(f"walks: {len(turfs) + len(small)} turfs, {len(small)} with fewer than {MIN_STOPS} buildings left out; "
            f"plan_walk x{ctx.repeats}, then OR-Tools {seconds:g} s a turf on {ORTOOLS_WORKERS} processes")
    ours = await asyncio.to_thread(time_ours, streets, turfs, ctx.repeats)
    network = streets.network if streets is not None else None
    matrices = [distances(network, t.stops) for t in turfs]
    for turf, mine, dist in zip(turfs, ours, matrices, strict=True):
        check(sorted(mine.order.tolist()) == list(range(len(dist))), f"turf {turf.turf_id}: plan_walk's order")
        check(abs(path_length(dist, mine.order) - mine.length_m) < 0.05, f"turf {turf.turf_id}: plan_walk's length")
        # The cut stored round(length, 1): the same stops give the same walk, so this checks turf_stops.
        check(abs(round(mine.length_m, 1) - turf.stored_m) < 0.05,
              f"turf {turf.turf_id}: {mine.length_m:.1f} m here, {turf.stored_m} m stored by the cut")
    solved = await solve_all(ctx, [ortools_costs(d) for d in matrices], seconds)

    ratios, theirs_m, theirs_s = [], [], []
    for turf, mine, dist, (order, took) in zip(turfs, ours, matrices, solved, strict=True):
        check(sorted(order) == list(range(len(dist))), f"turf {turf.turf_id}: OR-Tools' order")
        length = path_length(dist, np.array(order, dtype=np.int64))
        theirs_m.append(length)
        theirs_s.append(took)
        ratios.append(mine.length_m / length if length > 0 else 1.0)
    ms = np.array([statistics.median(m.seconds) for m in ours]) * 1000
    worst = int(np.argmax(ratios))
    ctx.say(f"walks.route: ratio mean {np.mean(ratios):.4f}, max {ratios[worst]:.4f} (turf {turfs[worst].turf_id}, "
            f"{len(turfs[worst].stops.x)} buildings), {sum(r > ROUTE_GOAL for r in ratios)} turfs over "
            f"{ROUTE_GOAL}, {sum(r < 1 - 1e-9 for r in ratios)} shorter than OR-Tools'; mean length ours "
            f"{np.mean([m.length_m for m in ours]):.0f} m, OR-Tools {np.mean(theirs_m):.0f} m")
    ctx.say(f"walks.order: plan_walk mean {ms.mean():.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} "
            f"ms; walk_order alone mean {np.mean([m.order_seconds for m in ours]) * 1000:.1f} ms; buildings a turf "
            f"mean {np.mean([len(t.stops.x) for t in turfs]):.1f}, max {max(len(t.stops.x) for t in turfs)}")
    return [
        # The baseline is OR-Tools' own ratio, 1, so `ratio` is the mean of the per-turf ratios.
        Result("walks.route.city", "ratio", float(np.mean(ratios)), 1.0, ROUTE_GOAL),
        Result("walks.order.time", "ms", float(ms.mean()), float(np.mean(theirs_s)) * 1000, ORDER_GOAL_MS,
               goal_on="value"),
    ]


# The walk-list endpoint ------------------------------------------------------------------------------------------

CLIENTS = 16  # phones downloading at once
REQUESTS = 2000  # a run, split evenly between the clients
DOORS = 60  # the turf served: the active one with doors closest to this
SIZE_GOAL = 30_000  # bytes gzipped: issue 6's limit for a ~60-door list on a weak signal
# The endpoint makes about twice the raw read's round trips (the caller and membership look-ups, BEGIN and
# ROLLBACK) and adds HTTP and FastAPI's dependencies: 0.3x of raw and 4x its latency leave room for both.
RPS_GOAL = 0.3
LATENCY_GOAL = 4.0
SECRET = "bench-secret-" + "x" * 40
SLUG = "cambridge"  # bench.turfs.load_city's campaign
SCRIPT = ScriptIn.model_validate({
    "name": "Spring canvass",
    "questions": [
        {"id": "support", "text": "How likely are you to vote for our candidate?", "kind": "single",
         "choices": [{"id": f"s{i}", "label": label} for i, label in
                     enumerate(("Definitely", "Probably", "Undecided", "Probably not", "Definitely not"), 1)]},
        {"id": "issues", "text": "Which issues matter most to you?", "kind": "multiple",
         "choices": [{"id": i.lower().replace(" ", "_"), "label": i} for i in
                     ("Housing", "Transit", "Schools", "Climate", "Jobs", "Public safety")]},
        {"id": "volunteer", "text": "Would you like to volunteer?", "kind": "single",
         "choices": [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}, {"id": "maybe", "label": "Maybe"}]},
        {"id": "notes", "text": "Anything else they said", "kind": "text"},
    ],
    "result_codes": [{"code": "lit_drop", "label": "Left literature"}],
})

# The raw walk list: the rows the service reads (its turf, its stops in order with their household and building,
# the people of its stops, its script version), without the request's caller and membership look-ups.
TURF_SQL = """
SELECT t.id, t.name, t.status, t.version, t.route_version, t.geojson, t.route, t.route_m, t.doors,
       t.script_version_id, t.script_since, p.code AS precinct
FROM turf t JOIN precinct p ON p.id = t.precinct_id
WHERE t.campaign_id = $1 AND t.id = $2
"""
STOPS_SQL = """
SELECT s.household_id, s.removed, s.changed, h.unit, h.building_id, h.last_result, h.last_result_at, b.number,
       b.street, b.lon, b.lat
FROM walk_stop s JOIN household h ON h.id = s.household_id JOIN building b ON b.id = h.building_id
WHERE s.turf_id = $1 ORDER BY s.seq, s.household_id
"""
PEOPLE_SQL = """
SELECT p.id, p.household_id, p.first_name, p.last_name, p.birth_year, p.language
FROM person p JOIN walk_stop s ON s.household_id = p.household_id AND s.turf_id = $1
WHERE NOT s.removed ORDER BY p.household_id, p.last_name, p.first_name, p.id
"""
SCRIPT_SQL = "SELECT script_id, version, name, questions, result_codes FROM script_version WHERE id = $1"


async def raw_walklist(conn: asyncpg.Connection, campaign_id: int, turf_id: int) -> bytes:
    """A whole walk list the raw way, in the endpoint's shape."""
    turf = await conn.fetchrow(TURF_SQL, campaign_id, turf_id)
    stops = await conn.fetch(STOPS_SQL, turf_id)
    people: dict[int, list[dict[str, Any]]] = {}
    year = datetime.now(UTC).year
    for p in await conn.fetch(PEOPLE_SQL, turf_id):
        people.setdefault(p["household_id"], []).append(
            {"id": p["id"], "name": f"{p['first_name']} {p['last_name']}".strip(),
             "age_band": age_band(p["birth_year"], year), "language": p["language"]})
    buildings: list[dict[str, Any]] = []
    for s in stops:
        if s["removed"]:
            continue
        if not buildings or buildings[-1]["id"] != s["building_id"]:
            buildings.append({"id": s["building_id"], "address": f"{s['number']} {s['street']}".strip(),
                              "point": [round(s["lon"], DIGITS), round(s["lat"], DIGITS)], "households": []})
        last = {"result": s["last_result"], "at": s["last_result_at"]} if s["last_result"] is not None else None
        buildings[-1]["households"].append({"id": s["household_id"], "unit": s["unit"],
                                            "people": people.get(s["household_id"], []), "last_result": last})
    script = NO_SCRIPT
    if turf["script_version_id"] is not None:
        v = await conn.fetchrow(SCRIPT_SQL, turf["script_version_id"])
        script = orjson.dumps({"script_id": v["script_id"], "version": v["version"], "name": v["name"],
                               "questions": orjson.Fragment(v["questions"]),
                               "result_codes": orjson.Fragment(v["result_codes"])})
    return orjson.dumps({
        "turf": {"id": turf["id"], "name": turf["name"], "precinct_id": turf["precinct"], "status": turf["status"],
                 "doors": turf["doors"], "geometry": orjson.Fragment(turf["geojson"])},
        "version": turf["version"], "since": None, "full": True, "script": orjson.Fragment(script),
        "route": orjson.Fragment(turf["route"]) if turf["route"] else None, "route_m": turf["route_m"],
        "buildings": buildings})


@dataclass
class Load:
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000


async def load_run(get: Callable[[], Awaitable[int]], size: int) -> Load:
    """CLIENTS at once, each making its share of REQUESTS one after another, after one untimed request each;
    every answer checked to be the `size` bytes expected."""
    latencies: list[float] = []

    async def client(requests: int, timed: bool) -> None:
        for _ in range(requests):
            start = time.perf_counter()
            got = await get()
            took = time.perf_counter() - start
            check(got == size, f"a walk list of {got} bytes, expected {size}")
            if timed:
                latencies.append(took)

    await asyncio.gather(*(client(1, False) for _ in range(CLIENTS)))
    gc.collect()
    start = time.perf_counter()
    await asyncio.gather(*(client(REQUESTS // CLIENTS, True) for _ in range(CLIENTS)))
    return Load(time.perf_counter() - start, latencies)


async def walklist_setup(url: str) -> tuple[int, int, int, str]:
    """Cambridge with demo people and a default script, cut at 50 doors, and an organizer: the campaign, the
    turf with doors closest to DOORS (the one with most buildings among those: a walk, not a block of flats),
    its doors, and the organizer's bearer token. Tables vacuumed and analyzed, as autovacuum
    would have by canvass day."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            campaign_id = await load_city(session)
            await make_demo_people(session, campaign_id)
            script = await create_script(session, campaign_id, SCRIPT)
            assert script.id is not None
            await set_uses(session, campaign_id, script.id, ScriptUses(default=True))
            await cut_city(session, campaign_id)
            turf_id, doors = (await session.execute(
                select(Turf.id, Turf.doors).where(Turf.campaign_id == campaign_id, Turf.status == "active")
                .order_by(func.abs(Turf.doors - DOORS), Turf.buildings.desc(), Turf.id).limit(1))).one()
            campaign = await get_campaign(session, SLUG)
            user, _ = await add_member(session, campaign, "organizer@bench.test", Role.organizer,
                                       name="Bench Organizer", password="bench organizer password")
    finally:
        await engine.dispose()
    # Just loaded, the tables' statistics are those of empty ones: a list's people are found by a sequential
    # scan of everyone until autovacuum analyzes, which would dwarf everything measured here. Vacuumed too, so
    # autovacuum doesn't do it on the other core mid-run.
    conn = await asyncpg.connect(pg_dsn(url))
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return campaign_id, turf_id, doors, issue_token(user.id, secret=SECRET, minutes=60)


@benchmark("walklist")
async def walklist_get(ctx: Context) -> list[Result]:
    """GET a ~60-door walk list, 16 clients at once, through the app vs raw asyncpg + orjson (PostgreSQL)."""
    if "postgresql" not in ctx.backends:
        ctx.say("walklist: PostgreSQL only, not in this run's backends")
        return []
    ours: list[Load] = []
    raw: list[Load] = []
    async with fresh_database(ctx, "postgresql") as url:
        campaign_id, turf_id, doors, token = await walklist_setup(url)
        path = f"/v1/campaigns/{SLUG}/turfs/{turf_id}/walklist"
        auth = {"Authorization": f"Bearer {token}"}
        app = create_app(Settings(database_url=url, jwt_secret=SECRET, _env_file=None))
        pool = await asyncpg.create_pool(pg_dsn(url), min_size=CLIENTS, max_size=CLIENTS)
        try:
            async with app.router.lifespan_context(app), AsyncClient(transport=ASGITransport(app=app),
                                                                     base_url="http://bench") as client:
                plain = await client.get(path, headers=auth | {"Accept-Encoding": "identity"})
                zipped = await client.get(path, headers=auth | {"Accept-Encoding": "gzip"})
                check(plain.status_code == 200 and "content-encoding" not in plain.headers,
                      f"GET {path}: {plain.status_code} {plain.headers}")
                check(zipped.headers.get("content-encoding") == "gzip" and zipped.content == plain.content,
                      f"GET {path} gzipped: {zipped.headers}")
                size, gzipped = len(plain.content), zipped.num_bytes_downloaded
                async with pool.acquire() as conn:
                    baseline = await raw_walklist(conn, campaign_id, turf_id)
                check(orjson.loads(baseline) == plain.json(), "the raw walk list differs from the endpoint's")
                check(len(baseline) == size, f"the raw walk list has {len(baseline)} bytes, the endpoint's {size}")
                body = plain.json()
                ctx.say(f"walklist: turf {turf_id}, {doors} doors in {len(body['buildings'])} buildings, "
                        f"{sum(len(h['people']) for b in body['buildings'] for h in b['households'])} people; "
                        f"{size} bytes, {gzipped} gzipped; {CLIENTS} clients x {REQUESTS // CLIENTS} requests a run")

                async def get_ours() -> int:
                    response = await client.get(path, headers=auth | {"Accept-Encoding": "identity"})
                    return len(response.content) if response.status_code == 200 else -response.status_code

                async def get_raw() -> int:
                    async with pool.acquire() as conn:
                        return len(await raw_walklist(conn, campaign_id, turf_id))

                # This process holds what the setup loaded (a city, cut), which a server would not: a full
                # collection walked it all, ~110 ms, a few times a run on both sides. Frozen, collections see
                # only what serving allocates.
                gc.collect()
                gc.freeze()
                try:
                    for repeat in range(ctx.repeats):
                        # Interleaved, so a machine slowing down mid-run weighs on both sides alike.
                        raw.append(await load_run(get_raw, size))
                        ours.append(await load_run(get_ours, size))
                        ctx.say(f"walklist #{repeat + 1}: ours {describe(ours[-1])}; raw {describe(raw[-1])}")
                finally:
                    gc.unfreeze()
        finally:
            await pool.close()

    def median(runs: list[Load], figure: Callable[[Load], float]) -> float:
        return statistics.median(figure(r) for r in runs)

    def rps(r: Load) -> float:
        return r.rps

    def p50(r: Load) -> float:
        return r.ms(50)

    def p99(r: Load) -> float:
        return r.ms(99)

    return [
        Result("walklist.get.rps", "req/s", median(ours, rps), median(raw, rps), RPS_GOAL, higher=True),
        Result("walklist.get.p50", "ms", median(ours, p50), median(raw, p50), LATENCY_GOAL),
        Result("walklist.get.p99", "ms", median(ours, p99), median(raw, p99), LATENCY_GOAL),
        Result("walklist.size.gzip", "B", gzipped, size, SIZE_GOAL, goal_on="value"),
    ]


def describe(run: Load) -> str:
    return f"{run.rps:.0f} req/s, p50 {run.ms(50):.1f} ms, p99 {run.ms(99):.1f} ms"
