"""Cutting all of Cambridge into turfs: coverage, shape, balance, determinism, re-cuts."""

import asyncio
from datetime import timedelta

import numpy as np
import pytest
import shapely
from sqlalchemy import func, select, update

from app.addresses.models import Household
from app.campaigns.models import Campaign
from app.db import make_engine, make_sessionmaker, utcnow
from app.geo.shapes import Projection
from app.precincts.models import Precinct
from app.turfs.cutting import run_cut, start_cut
from app.turfs.models import Turf, TurfCut
from tests.cli import doorstep, one_json_object
from tests.factories import stale_shapes
from tests.test_db import behind_another_writer
from tests.test_errors import assert_problem

HOME = "/v1/campaigns/cambridge"
# Shapes are stored on a grid of 1e-6 degrees (8 cm of longitude by 11 of latitude here): a snapped vertex or edge
# is at most half a cell's diagonal from where the cut put it.
TOLERANCE_M = 0.07


async def read_cut(url: str) -> dict:
    """Everything a test checks about the cut in the database at `url`."""
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        cid = await session.scalar(select(Campaign.id).where(Campaign.slug == "cambridge"))
        turfs = (await session.execute(select(Turf).where(Turf.campaign_id == cid, Turf.status == "active")
                                       .order_by(Turf.id))).scalars().all()
        precincts = dict((await session.execute(select(Precinct.id, Precinct.geometry)
                                                .where(Precinct.campaign_id == cid))).all())
        households = (await session.execute(select(Household.id, Household.turf_id, Household.building_id)
                                            .where(Household.campaign_id == cid))).all()
    await engine.dispose()
    return {"turfs": turfs, "precincts": {k: shapely.from_wkb(v) for k, v in precincts.items()},
            "households": households}


def snapshot(cut: dict) -> list[tuple]:
    """The cut as names, doors and shapes: what must come out the same from the same data."""
    members: dict[int, list[int]] = {}
    for h in cut["households"]:
        members.setdefault(h.turf_id, []).append(h.id)
    return sorted((t.name, tuple(sorted(members.get(t.id, []))), t.geometry) for t in cut["turfs"] if t.source == "cut")


@pytest.fixture(scope="module")
def projection():
    return Projection(np.array([-71.16, -71.06]), np.array([42.35, 42.40]))


class TestCityCut:
    async def test_every_household_is_in_exactly_one_turf(self, cut_template):
        cut = await read_cut(cut_template[0])
        assert len(cut["households"]) == 25336
        assert all(h.turf_id is not None for h in cut["households"])
        counts = np.bincount([h.turf_id for h in cut["households"]])
        buildings: dict[int, set[int]] = {}
        for h in cut["households"]:
            buildings.setdefault(h.turf_id, set()).add(h.building_id)
        for turf in cut["turfs"]:
            assert turf.doors == counts[turf.id] > 0 and turf.buildings == len(buildings[turf.id])
        assert sum(t.doors for t in cut["turfs"]) == 25336

    async def test_turfs_are_one_piece_inside_their_precinct_and_tile_it(self, cut_template, projection):
        cut = await read_cut(cut_template[0])
        shapes = projection.to_metres(np.array([shapely.from_wkb(t.geometry) for t in cut["turfs"]], dtype=object))
        assert all(s.geom_type == "Polygon" and s.is_valid for s in shapes)
        by_precinct: dict[int, list[int]] = {}
        for i, turf in enumerate(cut["turfs"]):
            by_precinct.setdefault(turf.precinct_id, []).append(i)
        for precinct_id, members in by_precinct.items():
            precinct = projection.to_metres(cut["precincts"][precinct_id])
            mine = shapes[members]
            # Nothing of them lies further outside the precinct than the grid moved it.
            assert shapely.area(shapely.difference(mine, precinct.buffer(TOLERANCE_M))).max() == 0
            covered = shapely.union_all(mine)
            assert precinct.buffer(-TOLERANCE_M).difference(covered).area < 0.01  # square metres: no real gap
        # No two turfs overlap, beyond that same tolerance.
        inner = shapely.buffer(shapes, -TOLERANCE_M)
        left, right = shapely.STRtree(inner).query(inner, predicate="intersects")
        assert not np.any(left < right)

    async def test_every_turf_keeps_its_shape_as_geojson(self, cut_template):
        engine = make_engine(cut_template[0])
        async with make_sessionmaker(engine)() as session:
            assert await stale_shapes(session) == []
        await engine.dispose()

    async def test_doors_are_balanced(self, cut_template):
        cut = await read_cut(cut_template[0])
        doors = np.array([t.doors for t in cut["turfs"]])
        assert doors.std() / doors.mean() < 0.10
        expected = {}
        for turf in cut["turfs"]:
            expected.setdefault(turf.precinct_id, []).append(turf.doors)
        mean = np.array([sum(expected[t.precinct_id]) / len(expected[t.precinct_id]) for t in cut["turfs"]])
        outside = np.abs(doors - mean) > 0.15 * mean
        # Only where buildings don't allow: a building of a turf's size is a turf, its neighbours what is left.
        assert outside.mean() < 0.08
        k = {p: max(1, round(sum(d) / 50)) for p, d in expected.items()}
        assert all(abs(len(expected[p]) - k[p]) <= 1 for p in expected)

    async def test_report_states_the_quality(self, cut_template):
        report = cut_template[1]
        overall = report["overall"]
        assert overall["turfs"] == len((await read_cut(cut_template[0]))["turfs"])
        assert overall["doors"] == 25336 and overall["non_contiguous"] == 0
        assert overall["doors_cv"] < 0.10 and 0.3 < overall["polsby_popper_mean"] <= 1
        assert overall["split_block_share"] < 0.3 and overall["blocks"] > 1000
        assert set(report["precincts"]) == {f"{w}-{p}" for w, p in
                                            [(w, p) for w in range(1, 12) for p in range(1, 4)]}
        assert report["precincts"]["9-1"]["turfs"] == round(1402 / 50)


class TestRecut:
    async def test_the_same_data_cuts_the_same(self, cut_db_url, cut_client, world):
        before = snapshot(await read_cut(cut_db_url))
        r = await cut_client.post(f"{HOME}/turf-cuts", json={"target_doors": 50}, headers=world.headers("organizer"))
        job = await wait_for(cut_client, r.headers["location"], world)
        assert job["state"] == "done" and job["report"]["turfs_replaced"] == len(before)
        assert snapshot(await read_cut(cut_db_url)) == before

    async def test_held_worked_and_drawn_turfs_stay(self, cut_db_url, cut_session, cut_client, world):
        cid = await cut_session.scalar(select(Campaign.id).where(Campaign.slug == "cambridge"))
        precinct = await cut_session.scalar(select(Precinct.id).where(Precinct.code == "9-1",
                                                                      Precinct.campaign_id == cid))
        held, worked = (await cut_session.execute(select(Turf.id).where(Turf.precinct_id == precinct)
                                                  .order_by(Turf.id).limit(2))).scalars().all()
        # Assignment and sync keep these counters; here they are set as those would.
        await cut_session.execute(update(Turf).where(Turf.id == held).values(holders=1))
        await cut_session.execute(update(Turf).where(Turf.id == worked).values(knocks=3))
        await cut_session.commit()
        before = await read_cut(cut_db_url)
        kept = {t.id: (t.geometry, t.version, sorted(h.id for h in before["households"] if h.turf_id == t.id))
                for t in before["turfs"] if t.id in (held, worked)}

        r = await cut_client.post(f"{HOME}/turf-cuts", json={"precincts": ["9-1"], "target_doors": 40},
                                  headers=world.headers("organizer"))
        job = await wait_for(cut_client, r.headers["location"], world)
        assert job["report"]["turfs_kept"] >= 2 and job["turfs_made"] > 0
        after = await read_cut(cut_db_url)
        for turf_id, (geometry, version, members) in kept.items():
            turf = next(t for t in after["turfs"] if t.id == turf_id)
            # Where a new turf's corner lies on its edge, the edge bends through it, within the grid; its walk
            # list shows the polygon, so its version moves.
            was, now = shapely.from_wkb(geometry), shapely.from_wkb(turf.geometry)
            assert shapely.hausdorff_distance(was, now) < 1e-6
            assert turf.version == version + (0 if was.equals(now) else 1)
            assert sorted(h.id for h in after["households"] if h.turf_id == turf_id) == members
        assert all(h.turf_id is not None for h in after["households"])
        new = [shapely.from_wkb(t.geometry) for t in after["turfs"] if t.precinct_id == precinct
               and t.id not in kept]
        old = [shapely.from_wkb(t.geometry) for t in after["turfs"] if t.id in kept]
        # They tile still: no overlap beyond float noise (1e-15 square degrees is about 10 square micrometres).
        assert max(a.intersection(b).area for a in new for b in old) < 1e-15
        # Other precincts' turfs are untouched.
        untouched = {t.id for t in before["turfs"] if t.precinct_id != precinct}
        assert untouched <= {t.id for t in after["turfs"]}


async def wait_for(client, location: str, world, seconds: float = 60) -> dict:
    for _ in range(int(seconds * 10)):
        job = (await client.get(location, headers=world.headers("organizer"))).json()
        if job["state"] in ("done", "failed"):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"cut at {location} did not finish")


class TestCutJobs:
    async def test_a_cut_runs_in_the_background_and_reports(self, client, world, session):
        r = await client.post(f"{HOME}/turf-cuts", json={"precincts": ["9-1", "5-2"]},
                              headers=world.headers("admin"))
        assert r.status_code == 202 and r.json()["state"] in ("queued", "running", "done")
        assert r.json()["precincts"] == ["9-1", "5-2"] and r.json()["precincts_total"] == 2
        job = await wait_for(client, r.headers["location"], world)
        assert (job["state"], job["precincts_done"], job["error"]) == ("done", 2, None)
        assert set(job["report"]["precincts"]) == {"9-1", "5-2"}
        turfs = (await client.get(f"{HOME}/turfs", params={"limit": 1000}, headers=world.headers("organizer"))).json()
        assert len(turfs["items"]) == job["turfs_made"] == job["report"]["overall"]["turfs"]
        assert sum(t["doors"] for t in turfs["items"]) == 1402 + 80

    async def test_bad_requests_are_refused_and_start_nothing(self, client, world, session):
        r = await client.post(f"{HOME}/turf-cuts", json={"precincts": ["9-1", "99-9"]},
                              headers=world.headers("organizer"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "precincts" and "99-9" in r.text
        r = await client.post(f"{HOME}/turf-cuts", json={"target_doors": 0}, headers=world.headers("organizer"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "body.target_doors"
        assert await session.scalar(select(func.count()).select_from(TurfCut)) == 0
        assert_problem(await client.get(f"{HOME}/turf-cuts/999", headers=world.headers("organizer")), 404)

    async def test_one_cut_at_a_time_and_a_stale_one_is_failed(self, client, world, session):
        cid = await session.scalar(select(Campaign.id).where(Campaign.slug == "cambridge"))
        running = TurfCut(campaign_id=cid, target_doors=50, state="running")
        session.add(running)
        await session.commit()
        r = await client.post(f"{HOME}/turf-cuts", json={}, headers=world.headers("organizer"))
        assert assert_problem(r, 409)["cut_id"] == running.id
        running.created_at = utcnow() - timedelta(hours=1)
        await session.commit()
        r = await client.post(f"{HOME}/turf-cuts", json={"precincts": ["5-2"]}, headers=world.headers("organizer"))
        assert r.status_code == 202
        await wait_for(client, r.headers["location"], world)
        await session.refresh(running)
        assert running.state == "failed" and "nothing was written" in running.error

    async def test_a_cut_waits_its_turn_behind_another_writer(self, db_url):
        engine = make_engine(db_url)
        maker = make_sessionmaker(engine)
        async with maker() as session:
            cid = await session.scalar(select(Campaign.id).where(Campaign.slug == "cambridge"))
            job = await start_cut(session, cid, codes=["5-2"], target=50, created_by=None)
        await behind_another_writer(maker, lambda: run_cut(maker, job.id))
        async with maker() as session:
            done = await session.get(TurfCut, job.id)
            assert (done.state, done.error, done.precincts_done) == ("done", None, 1) and done.turfs_made > 0
        await engine.dispose()


class TestCli:
    async def test_turfs_cut_prints_the_report_and_refuses_bad_input(self, db_url, tmp_path):
        report = one_json_object(await doorstep(db_url, tmp_path, "turfs", "cut", "--campaign", "cambridge",
                                                "--precinct", "9-1", "--target", "50", "--json"))
        assert report["overall"]["doors"] == 1402 and report["overall"]["turfs"] == 28
        bad = await doorstep(db_url, tmp_path, "turfs", "cut", "--campaign", "cambridge", "--precinct", "99-9")
        assert bad.code == 2 and bad.err.strip() == "doorstep: no precinct 99-9 in this campaign", bad


# A database of its own: cuts run as background jobs.
pytestmark = pytest.mark.own_database
