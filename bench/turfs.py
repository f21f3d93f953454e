"""Cutting all of Cambridge into turfs of about 50 doors, beside scikit-learn KMeans with the same k.

turfs.cut.city.<backend>          seconds for the whole-city cut through the service (reads, geometry, writes);
                                  baseline: KMeans clustering alone, every precinct, same k; goal: under 5 s
turfs.cut.cv.<backend>            coefficient of variation of doors per turf; baseline KMeans'; goal: under 0.10
turfs.cut.compactness.<backend>   mean Polsby-Popper of the turf shapes (KMeans' turfs get the same Voronoi-cell
                                  shapes); KMeans' round clusters score higher, at the price of balance;
                                  goal: at least 0.4 (a 1:4 rectangle scores 0.5, a square 0.79)
turfs.cut.split_blocks.<backend>  share of street blocks split between turfs; goal: fewer than KMeans
"""

import time

import numpy as np
import pandas as pd
import shapely
from sklearn.cluster import KMeans
from sqlalchemy import select

from app.addresses.models import Building, Household
from app.addresses.service import ADDRESS_FIELDS, import_addresses
from app.campaigns.service import create_campaign
from app.db import make_engine, make_sessionmaker
from app.geo.cut import cell_turfs, cut_quality
from app.ingest import parse_map
from app.precincts import service as precinct_service
from app.precincts.models import Precinct
from app.precincts.service import import_precincts
from app.streets.service import STREET_FIELDS, import_streets
from app.turfs import cutting as cut_service
from bench.common import DATA, Context, Result, Timings, benchmark, fresh_database

TARGET = 50


async def load_city(session) -> int:
    campaign = await create_campaign(session, "cambridge", "Cambridge")
    assert campaign.id is not None
    await import_precincts(session, campaign.id, DATA / "precincts.geojson", label="precincts", name_field="name")
    await import_addresses(session, campaign.id, DATA / "addresses.csv", label="addresses",
                           mapping=parse_map(None, ADDRESS_FIELDS))
    await import_streets(session, campaign.id, DATA / "streets.geojson", label="streets",
                         mapping=parse_map(None, STREET_FIELDS))
    return campaign.id


async def load_and_cut_city(session) -> int:
    """Cambridge loaded and cut at TARGET doors a turf, as the benchmarks of what comes after cutting start."""
    campaign_id = await load_city(session)
    job = await cut_service.start_cut(session, campaign_id, codes=None, target=TARGET, created_by="bench")
    assert job.id is not None
    await cut_service.cut_turfs(session, campaign_id, codes=None, target=TARGET, cut_id=job.id)
    return campaign_id


def kmeans_cut(households: pd.DataFrame, precincts: pd.DataFrame, k_of: dict[str, int],
               projection) -> tuple[float, dict]:
    """KMeans on each precinct's projected building points (weighted by doors) with our k: seconds, quality."""
    sites = households.groupby(["precinct_id", "lon", "lat"], sort=True).agg(
        doors=("id", "size"), block=("street_id", "first")).reset_index()
    x, y = projection.points(sites["lon"].to_numpy(), sites["lat"].to_numpy())
    sites["x"], sites["y"] = x, y
    labels = np.zeros(len(sites), dtype=np.int64)
    start = time.perf_counter()
    for precinct_id, group in sites.groupby("precinct_id", sort=True):
        k = min(k_of[precinct_id], len(group))
        model = KMeans(n_clusters=k, random_state=0, n_init="auto")
        labels[group.index] = model.fit_predict(group[["x", "y"]].to_numpy(), sample_weight=group["doors"])
    seconds = time.perf_counter() - start

    doors, expected, shapes, turf_of_site = [], [], [], np.zeros(len(sites), dtype=np.int64)
    for precinct_id, group in sites.groupby("precinct_id", sort=True):
        k = min(k_of[precinct_id], len(group))
        region = projection.to_metres(shapely.from_wkb(precincts.loc[precinct_id, "geometry"]))
        polygons = cell_turfs(group["x"].to_numpy(), group["y"].to_numpy(), labels[group.index], k, region)
        counts = np.bincount(labels[group.index], weights=group["doors"], minlength=k)
        turf_of_site[group.index] = labels[group.index] + len(doors)
        doors += counts.tolist()
        expected += [group["doors"].sum() / k] * k
        shapes += polygons
    site_of = households.merge(sites.reset_index(names="site")[["site", "precinct_id", "lon", "lat"]],
                               on=["precinct_id", "lon", "lat"])
    quality = cut_quality(np.array(doors), np.array(expected), np.array(shapes, dtype=object),
                          site_of["street_id"].fillna(-1).astype(np.int64).to_numpy(),
                          site_of["building_id"].to_numpy(), turf_of_site[site_of["site"].to_numpy()])
    return seconds, quality


@benchmark("turfs.cut", per_backend=True)
async def cut_city(ctx: Context, backend: str) -> list[Result]:
    """The whole-city cut at 50 doors: its time and quality beside KMeans with the same k."""
    async with fresh_database(ctx, backend) as url:
        engine = make_engine(url)
        maker = make_sessionmaker(engine)
        async with maker() as session:
            campaign_id = await load_city(session)
        ours, theirs = Timings(), []
        report: dict = {}
        for run in range(ctx.repeats):
            async with maker() as session:
                job = await cut_service.start_cut(session, campaign_id, codes=None, target=TARGET, created_by="bench")
                assert job.id is not None
                async with ours.measure():
                    report = await cut_service.cut_turfs(session, campaign_id, codes=None, target=TARGET,
                                                          cut_id=job.id)
            ctx.say(f"turfs.cut.{backend} #{run + 1}: {ours.runs[-1]:.2f} s, {report['overall']['turfs']} turfs")
        async with maker() as session:
            households = pd.DataFrame((await session.execute(
                select(Household.id, Household.building_id, Household.precinct_id, Building.lon, Building.lat,
                       Building.street_id).join(Building, Building.id == Household.building_id)
                .where(Household.campaign_id == campaign_id))).all(),
                columns=["id", "building_id", "precinct_id", "lon", "lat", "street_id"])
            precincts = pd.DataFrame((await session.execute(
                select(Precinct.id, Precinct.code, Precinct.geometry).where(Precinct.campaign_id == campaign_id)))
                .all(), columns=["id", "code", "geometry"]).set_index("id")
            projection = await precinct_service.projection(session, campaign_id)
        await engine.dispose()
    k_of = {pid: report["precincts"][code]["turfs"] for pid, code in precincts["code"].items()
            if report["precincts"][code]["turfs"]}
    households = households[households["precinct_id"].isin(k_of)]
    quality = {}
    for _ in range(ctx.repeats):
        seconds, quality = kmeans_cut(households, precincts, k_of, projection)
        theirs.append(seconds)
    mine = report["overall"]
    kmeans_seconds = float(np.median(theirs))
    ctx.say(f"turfs.cut.{backend}: ours {mine}, KMeans {quality}")
    return [
        Result(f"turfs.cut.city.{backend}", "s", ours.median, kmeans_seconds, 5.0, goal_on="value"),
        Result(f"turfs.cut.cv.{backend}", "cv", mine["doors_cv"], quality["doors_cv"], 0.10, goal_on="value"),
        Result(f"turfs.cut.compactness.{backend}", "pp", mine["polsby_popper_mean"], quality["polsby_popper_mean"],
               0.4, goal_on="value", higher=True),
        Result(f"turfs.cut.split_blocks.{backend}", "share", mine["split_block_share"],
               quality["split_block_share"], 1.0),
    ]
