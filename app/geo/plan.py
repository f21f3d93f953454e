"""Plan a cut: a precinct's free doors into turfs (`app.geo.cut`) with their walking orders (`app.geo.order`),
and the quality report of a whole cut.

Households come as a DataFrame of id, building_id, unit, lon, lat (EPSG:4326), street_id, street_side and
street_pos_m; regions and kept turfs in the metric CRS of `projection`; planned shapes go out in EPSG:4326.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from app.geo.coverage import snap_coverage
from app.geo.cut import cut_precinct, cut_quality
from app.geo.geojson import DIGITS, texts
from app.geo.order import WALK_COLUMNS, Streets, TurfWalk, order_turfs
from app.geo.shapes import Projection
from app.text import natural_key

__all__ = ["Measure", "PrecinctPlan", "StrayDoors", "cut_report", "plan_precinct", "plan_turfs", "snap_plans"]


class StrayDoors(ValueError):
    """A precinct can't be cut: some of its free doors lie inside a turf that doesn't hold them."""


@dataclass(frozen=True)
class Measure:
    """What `cut_quality` measures of a precinct's turfs: per turf its doors, the doors expected (doors / k)
    and its metric shape; per household (in id order) its street block (-1 for none), building and turf."""

    doors: NDArray[np.int64]
    expected: NDArray[np.float64]
    shapes: NDArray[np.object_]
    household_block: NDArray[np.int64]
    household_building: NDArray[np.int64]
    household_turf: NDArray[np.int64]

    def quality(self) -> dict[str, Any]:
        return cut_quality(self.doors, self.expected, self.shapes, self.household_block, self.household_building,
                           self.household_turf)


@dataclass
class PrecinctPlan:
    """One precinct's new turfs, ready to write."""

    precinct_id: int
    code: str
    shapes: list[BaseGeometry]  # EPSG:4326; snapped to the stored grid by `snap_plans`
    households: list[list[int]]  # per turf
    buildings: list[int]  # per turf
    expected: float  # doors / k
    quality: dict[str, Any] = field(default_factory=dict)
    walks: list[TurfWalk] = field(default_factory=list)  # per turf
    geojson: list[str] = field(default_factory=list)  # per turf: its shape's stored GeoJSON text (`snap_plans`)
    measure: Measure | None = None  # None when the precinct had no free door


def plan_precinct(precinct_id: int, code: str, region_m: BaseGeometry, households: pd.DataFrame,
                  projection: Projection, *, target: int) -> PrecinctPlan:
    """Cut one precinct's free households into turfs of about `target` doors."""
    if households.empty:
        return PrecinctPlan(precinct_id, code, [], [], [], 0.0)
    # Buildings at one point are one site: a Voronoi cell has one point.
    sites = households.groupby(["lon", "lat"], sort=True).agg(
        doors=("id", "size"), block=("street_id", "first")).reset_index()
    x, y = projection.points(sites["lon"].to_numpy(), sites["lat"].to_numpy())
    block = sites["block"].fillna(-1).astype(np.int64).to_numpy()
    cut = cut_precinct(x, y, sites["doors"].to_numpy(), block, region_m, target=target)
    site_of = households.merge(sites[["lon", "lat"]].reset_index(names="site"), on=["lon", "lat"])
    members: list[list[int]] = [[] for _ in range(cut.k)]
    for site, group in site_of.groupby("site", sort=True):
        if site in cut.big:
            ordered = sorted(zip(group["unit"], group["id"], strict=True), key=lambda u: (natural_key(u[0]), u[1]))
            for label, chunk in zip(cut.big[site], np.array_split(np.arange(len(ordered)), len(cut.big[site])),
                                    strict=True):
                members[label] += [ordered[i][1] for i in chunk]
        else:
            members[int(cut.labels[site])] += group["id"].tolist()
    building_of = dict(zip(households["id"], households["building_id"], strict=True))
    keep = [i for i in range(cut.k) if members[i]]
    if any(cut.polygons[i].is_empty for i in keep):
        # Doors whose cell the region leaves nothing of: they stand where a drawn turf lies without taking them.
        raise StrayDoors(f"Precinct {code}: some free doors stand inside a turf that doesn't hold them; redraw that "
                         "turf around them (or with take_over) and cut again.")
    polygons = list(cut.polygons)
    shapes = list(projection.to_degrees(np.array(polygons, dtype=object)))
    # Numbered in reading order: north to south in 200 m bands, west to east within a band.
    centroids = [polygons[i].centroid for i in keep]
    keep = [i for _, i in sorted(zip([(-round(c.y / 200), c.x) for c in centroids], keep, strict=True))]
    plan = PrecinctPlan(precinct_id, code, [shapes[i] for i in keep], [sorted(members[i]) for i in keep],
                        [len({building_of[h] for h in members[i]}) for i in keep],
                        expected=len(households) / cut.k)
    turf_of = {h: n for n, hs in enumerate(plan.households) for h in hs}
    ordered = households.sort_values("id")
    plan.measure = Measure(
        np.array([len(h) for h in plan.households]), np.full(len(keep), plan.expected),
        np.array([polygons[i] for i in keep], dtype=object),
        ordered["street_id"].fillna(-1).astype(np.int64).to_numpy(), ordered["building_id"].to_numpy(),
        np.array([turf_of[h] for h in ordered["id"]]))
    plan.quality = plan.measure.quality()
    return plan


def plan_turfs(precinct_id: int, code: str, region_m: BaseGeometry, kept_m: NDArray[np.object_],
               households: pd.DataFrame, streets: Streets | None, projection: Projection, *,
               target: int) -> PrecinctPlan:
    """Cut a precinct's free households into turfs, outside the turfs kept (`kept_m`), and walk each."""
    if len(kept_m):
        near = kept_m[shapely.intersects(kept_m, region_m)]
        if len(near):
            rest = region_m.difference(shapely.union_all(near))
            region_m = rest if rest.area > 0 else region_m
    plan = plan_precinct(precinct_id, code, region_m, households, projection, target=target)
    turf_of = pd.Series({h: n for n, hs in enumerate(plan.households) for h in hs}, dtype=np.int64)
    members = households.rename(columns={"id": "household_id"}).assign(
        turf=lambda d: d["household_id"].map(turf_of))
    walks = order_turfs(streets, projection, members[WALK_COLUMNS])
    plan.walks = [walks[n] for n in range(len(plan.households))]
    return plan


def snap_plans(plans: list[PrecinctPlan], kept: NDArray[np.object_]) -> NDArray[np.object_]:
    """Snap the new turfs of every plan, with the turfs kept beside them (`kept`, EPSG:4326), to the stored grid
    as one coverage (app.geo.coverage), and give each plan its shapes' GeoJSON text. Returns the kept turfs
    snapped: where a new turf's corner lies on a kept turf's edge, that edge now bends through it (by less than
    the grid), so the turfs go on tiling each precinct, and the city.
    """
    new = [shape for plan in plans for shape in plan.shapes]
    snapped = snap_coverage([*new, *kept], DIGITS)
    start = 0
    for plan in plans:
        plan.shapes = list(snapped[start:start + len(plan.shapes)])
        plan.geojson = texts(plan.shapes)
        start += len(plan.shapes)
    return snapped[len(new):]


def _overall(measures: list[Measure]) -> Measure:
    """The measures of several precincts as one. Street blocks stay per precinct, as each precinct's report
    counts them: a street on a precinct's edge is split by the edge, not by the cut."""
    blocks, turfs = [], []
    block_base = turf_base = 0
    for m in measures:
        blocks.append(np.where(m.household_block >= 0, m.household_block + block_base, -1))
        block_base += int(m.household_block.max(initial=-1)) + 1
        turfs.append(m.household_turf + turf_base)
        turf_base += len(m.doors)
    return Measure(np.concatenate([m.doors for m in measures]), np.concatenate([m.expected for m in measures]),
                   np.concatenate([m.shapes for m in measures]), np.concatenate(blocks),
                   np.concatenate([m.household_building for m in measures]), np.concatenate(turfs))


def cut_report(plans: list[PrecinctPlan], *, target: int, replaced: int, kept: int) -> dict[str, Any]:
    """The cut's quality overall (from every turf and household) and per precinct."""
    overall: dict[str, Any] = {}
    measures = [p.measure for p in plans if p.measure is not None]
    if measures:
        measure = _overall(measures)
        quality = measure.quality()
        overall = {"turfs": quality.pop("turfs"), "doors": int(measure.doors.sum()), **quality}
    return {"target_doors": target, "turfs_replaced": replaced, "turfs_kept": kept, "overall": overall,
            "precincts": {p.code: p.quality for p in plans}}
