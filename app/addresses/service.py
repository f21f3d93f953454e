"""Addresses and people: import them, make up demo people, and list households."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely import MultiPolygon, Polygon
from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import contact
from app.addresses.models import Building, Household, Person
from app.attributes.schemas import Kind, Of
from app.attributes.service import TAGS, Keep, keep_tags, keep_values, kept_columns, typed
from app.db import begin_write
from app.errors import BadFile
from app.events import HouseholdsChanged, publish
from app.geo.assign import assign_points
from app.ingest import (
    FieldSpec,
    ImportReport,
    Progress,
    Rejection,
    drop_too_long,
    mapped_columns,
    no_progress,
    parse_numbers,
    read_in_thread,
    read_source,
    source_column,
)
from app.pagination import int_cursor, page
from app.precincts.models import Precinct
from app.precincts.service import precinct_shapes, refresh_counts
from app.streets.service import match_buildings
from app.upsert import apply_upsert, frame_values, plan_upsert, stored_rows

ADDRESS_FIELDS = FieldSpec(
    defaults={"id": "address_id", "number": "number", "street": "street", "unit": "unit",
              "lon": "lon", "lat": "lat", "parcel": "parcel_id", "do_not_contact": "do_not_contact"},
    optional=frozenset({"unit", "parcel", "do_not_contact"}),
    max_length={"id": 64, "number": 32, "street": 200, "unit": 64, "parcel": 64},
)
PEOPLE_FIELDS = FieldSpec(
    defaults={"id": "voter_id", "household": "address_id", "first_name": "first_name",
              "last_name": "last_name", "birth_year": "birth_year", "language": "language",
              "do_not_contact": "do_not_contact"},
    optional=frozenset({"birth_year", "language", "do_not_contact"}),
    max_length={"id": 64, "first_name": 100, "last_name": 100, "language": 32},
)
# An address this close outside every precinct is a geocoding or boundary-mismatch slip, not a foreign door.
SNAP_M = 50.0


@dataclass
class AddressPlan:
    """What an address file holds, grouped into buildings and placed in precincts."""

    read: int
    buildings: pd.DataFrame  # key, number, street, parcel, lon, lat, precinct_id, snapped_m
    households: pd.DataFrame  # external_id, key, number, street, unit, precinct_id
    rejected: list[Rejection]
    snapped: int


def _reject_rows(rejected: list[Rejection], label: str, rows: np.ndarray, column: str, reason: str,
                 ids: Sequence[str] | None = None) -> None:
    for n, row in enumerate(rows):
        rejected.append(Rejection(label, int(row) + 1, column, reason, ids[n] if ids is not None else None))


def _first_rows(frame: pd.DataFrame, label: str, id_column: str, rejected: list[Rejection]) -> pd.DataFrame:
    """Drop rows without an id and later rows repeating an id, reporting each."""
    no_id = frame["id"] == ""
    _reject_rows(rejected, label, frame.index[no_id].to_numpy(), id_column, "no id")
    repeated = frame["id"].duplicated() & ~no_id
    first_row = frame[~repeated & ~no_id].reset_index().set_index("id")["index"]
    for row, ident in zip(frame.index[repeated], frame["id"][repeated], strict=True):
        rejected.append(Rejection(label, int(row) + 1, id_column,
                                  f"id repeats row {int(first_row[ident]) + 1}; the first is kept", ident))
    return frame[~no_id & ~repeated]


def _contact_flags(table: pd.DataFrame, mapping: dict[str, list[str]], label: str) -> None:
    """A file's `do_not_contact` column as flags (1 yes, 0 no, NaN blank), in place. Raises BadFile naming the row
    and column of a value that is no yes or no."""
    if "do_not_contact" in table:
        table["do_not_contact"] = typed(table["do_not_contact"].rename(source_column(mapping, "do_not_contact")),
                                        Kind.boolean, label=label)[0]


def plan_addresses(path: Path, label: str, mapping: dict[str, list[str]], precinct_ids: list[int],
                   shapes: list[Polygon | MultiPolygon], keeps: Sequence[Keep] = ()) -> AddressPlan:
    """Read an address file, group its units into buildings and put each building in a precinct.

    Raises BadFile for an unreadable file, a missing column or a corrupt coordinate.
    """
    frame = read_source(path, label)
    has_points = (isinstance(frame, gpd.GeoDataFrame) and frame.geometry.notna().any()
                  and set(frame.geometry.dropna().geom_type) == {"Point"})
    table = mapped_columns(frame, mapping, ADDRESS_FIELDS, label,
                           present=lambda name: name in ("lon", "lat") and has_points)
    table = pd.concat([table, kept_columns(frame, keeps, label)], axis=1)
    table.index = pd.RangeIndex(len(table))
    if "lon" in table and "lat" in table:
        lon = parse_numbers(table["lon"], label=label, column=source_column(mapping, "lon"), low=-180, high=180)
        lat = parse_numbers(table["lat"], label=label, column=source_column(mapping, "lat"), low=-90, high=90)
    else:
        points = frame.geometry.to_crs(4326) if frame.crs is not None else frame.geometry
        lon = np.where(points.isna(), np.nan, shapely.get_x(points.to_numpy()))
        lat = np.where(points.isna(), np.nan, shapely.get_y(points.to_numpy()))
    table["lon"], table["lat"] = lon, lat
    for optional in ("unit", "parcel"):
        if optional not in table:
            table[optional] = ""
    _contact_flags(table, mapping, label)

    rejected: list[Rejection] = []
    table = _first_rows(table, label, source_column(mapping, "id"), rejected)
    table = drop_too_long(table, ADDRESS_FIELDS, mapping, label, rejected)
    no_point = table["lon"].isna() | table["lat"].isna()
    _reject_rows(rejected, label, table.index[no_point].to_numpy(), "lon" if "lon" in mapping else "geometry",
                 "no coordinates", table["id"][no_point].tolist())
    table = table[~no_point]

    if table.empty:
        empty = pd.DataFrame(columns=["key", "number", "street", "parcel", "lon", "lat", "precinct_id", "snapped_m"])
        return AddressPlan(read=len(frame), buildings=empty, households=empty.assign(external_id=[], unit=[]),
                           rejected=rejected, snapped=0)
    # Units at one point, or on one parcel, are one building: one stop on a walk.
    point_key = "pt:" + table["lon"].map("{:.7f}".format) + "," + table["lat"].map("{:.7f}".format)
    table = table.assign(key=np.where(table["parcel"] != "", "parcel:" + table["parcel"], point_key))
    buildings = table.drop_duplicates("key")[["key", "number", "street", "parcel", "lon", "lat"]]
    index, distance = assign_points(buildings["lon"].to_numpy(), buildings["lat"].to_numpy(), shapes, snap_m=SNAP_M)
    ids = np.asarray([*precinct_ids, 0], dtype=np.int64)
    buildings = buildings.assign(precinct_id=ids[index], snapped_m=np.where(distance > 0, distance, np.nan))
    far = set(buildings["key"][index < 0])
    if far:
        lost = table["key"].isin(far)
        _reject_rows(rejected, label, table.index[lost].to_numpy(), source_column(mapping, "lon"),
                     f"more than {SNAP_M:g} m outside every precinct", table["id"][lost].tolist())
        table, buildings = table[~lost], buildings[index >= 0]
    households = table.merge(buildings[["key", "precinct_id", "snapped_m"]], on="key")
    rejected.sort(key=lambda r: r.row)
    return AddressPlan(read=len(frame), buildings=buildings, rejected=rejected,
                       households=households.rename(columns={"id": "external_id"}),
                       snapped=int(households["snapped_m"].notna().sum()))


BUILDING_FIELDS = ("precinct_id", "number", "street", "parcel", "lon", "lat", "snapped_m")
HOUSEHOLD_FIELDS = ("building_id", "precinct_id", "number", "street", "unit")
PERSON_FIELDS = ("household_id", "first_name", "last_name", "birth_year", "language", "synthetic")


async def import_addresses(session: AsyncSession, campaign_id: int, path: Path, *, label: str,
                           mapping: dict[str, list[str]], keeps: Sequence[Keep] = (),
                           progress: Progress = no_progress) -> ImportReport:
    """Create or update the campaign's buildings and households from an address file, with the columns `keeps`
    names as household attributes, in one transaction.

    Raises BadFile when the file can't be imported at all; rows that can't be placed are reported.
    """
    await begin_write(session)
    precinct_ids, shapes = await precinct_shapes(session, campaign_id)
    if not precinct_ids:
        raise BadFile(f"{label}: the campaign has no precincts yet; import them first")
    plan = await read_in_thread(lambda: plan_addresses(path, label, mapping, precinct_ids, shapes, keeps), progress)

    buildings = plan.buildings.assign(parcel=plan.buildings["parcel"].astype(object).replace("", None))
    wanted_b = frame_values(buildings, ("key", *BUILDING_FIELDS))
    upsert_b = plan_upsert(await stored_rows(session, Building, "key", BUILDING_FIELDS, campaign_id), wanted_b,
                           BUILDING_FIELDS)
    await apply_upsert(session, Building, "key", BUILDING_FIELDS, campaign_id, upsert_b, progress, "buildings")

    building_id = dict((await session.execute(select(Building.key, Building.id)
                                              .where(Building.campaign_id == campaign_id))).all())
    households = plan.households.assign(building_id=plan.households["key"].map(building_id))
    wanted_h = frame_values(households, ("external_id", *HOUSEHOLD_FIELDS))
    upsert_h = plan_upsert(await stored_rows(session, Household, "external_id", HOUSEHOLD_FIELDS, campaign_id),
                           wanted_h, HOUSEHOLD_FIELDS)
    await apply_upsert(session, Household, "external_id", HOUSEHOLD_FIELDS, campaign_id, upsert_h, progress,
                       "households")

    # A building whose every unit moved elsewhere is no stop any more.
    if upsert_h.changed:
        await session.execute(delete(Building).where(
            Building.campaign_id == campaign_id, ~exists().where(Household.building_id == Building.id)))
    if upsert_b.new or upsert_b.changed:
        await match_buildings(session, campaign_id)
    # Turfs whose doors changed address or moved get a new walking order, and phones learn of the doors.
    moved = [c["id"] for c in upsert_h.changed]
    moved_buildings = [c["id"] for c in upsert_b.changed]
    turfs = set()
    for start in range(0, max(len(moved), len(moved_buildings)), 5000):
        turfs |= set((await session.execute(select(Household.turf_id).where(
            Household.turf_id.is_not(None),
            Household.id.in_(moved[start:start + 5000]) | Household.building_id.in_(
                moved_buildings[start:start + 5000])).distinct())).scalars())
    await publish(session, HouseholdsChanged(campaign_id, turf_ids=frozenset(turfs), household_ids=frozenset(moved)))
    await refresh_counts(session, campaign_id)
    kept, flagged = set(), "do_not_contact" in plan.households
    if keeps or flagged:
        ids = dict((await session.execute(select(Household.external_id, Household.id)
                                          .where(Household.campaign_id == campaign_id))).all())
        doors = plan.households["external_id"].map(ids).tolist()
        kept = await keep_values(session, campaign_id, keeps, Of.household, doors, plan.households, label=label)
        if flagged:
            kept |= await contact.from_import(session, Household, doors,
                                              plan.households["do_not_contact"].to_numpy())
    # A household whose row stood but whose kept values or mark moved was updated too.
    restyled = len(kept - set(moved) - {ids[row[0]] for row in upsert_h.new}) if keeps or flagged else 0
    await session.commit()
    return ImportReport("addresses", label, read=plan.read, created=len(upsert_h.new),
                        updated=len(upsert_h.changed) + restyled, unchanged=upsert_h.unchanged - restyled,
                        snapped=plan.snapped, rejected=plan.rejected,
                        extra={"buildings_created": len(upsert_b.new)})


def read_people(path: Path, label: str, mapping: dict[str, list[str]], keeps: Sequence[Keep] = (),
                tags: str | None = None) -> tuple[int, pd.DataFrame, list[Rejection]]:
    """Read a voter file: rows read, the people (external_id, household, names, birth_year, language, and the
    kept columns as `keep:NAME`), rejections.

    Raises BadFile for an unreadable file, a missing column or a corrupt birth year.
    """
    frame = read_source(path, label)
    table = mapped_columns(frame, mapping, PEOPLE_FIELDS, label)
    table = pd.concat([table, kept_columns(frame, keeps, label, tags=tags)], axis=1)
    table.index = pd.RangeIndex(len(table))
    this_year = datetime.now(UTC).year
    if "birth_year" in table:
        years = parse_numbers(table["birth_year"], label=label, column=source_column(mapping, "birth_year"),
                              low=1880, high=this_year, integer=True)
        table["birth_year"] = pd.array(years, dtype="Int64")
    else:
        table["birth_year"] = pd.array([None] * len(table), dtype="Int64")
    if "language" not in table:
        table["language"] = ""
    _contact_flags(table, mapping, label)
    rejected: list[Rejection] = []
    table = _first_rows(table, label, source_column(mapping, "id"), rejected)
    table = drop_too_long(table, PEOPLE_FIELDS, mapping, label, rejected)
    no_name = (table["first_name"] == "") & (table["last_name"] == "")
    _reject_rows(rejected, label, table.index[no_name].to_numpy(), source_column(mapping, "last_name"),
                 "no name", table["id"][no_name].tolist())
    return len(frame), table[~no_name].rename(columns={"id": "external_id"}), rejected


async def import_people(session: AsyncSession, campaign_id: int, path: Path, *, label: str,
                        mapping: dict[str, list[str]], keeps: Sequence[Keep] = (), tags: str | None = None,
                        progress: Progress = no_progress) -> ImportReport:
    """Create or update the campaign's people from a voter file linked by address id, with the columns `keeps`
    names as their attributes and the tags column `tags` names, in one transaction."""
    await begin_write(session)
    read, table, rejected = await read_in_thread(lambda: read_people(path, label, mapping, keeps, tags), progress)
    households = dict((await session.execute(select(Household.external_id, Household.id)
                                             .where(Household.campaign_id == campaign_id))).all())
    household_id = table["household"].map(households)
    unknown = household_id.isna()
    household_column = source_column(mapping, "household")
    _reject_rows(rejected, label, table.index[unknown].to_numpy(), household_column,
                 "no household has this address id", table["external_id"][unknown].tolist())
    table = table[~unknown].assign(household_id=household_id[~unknown].astype(int))
    rejected.sort(key=lambda r: r.row)
    counts, written = await upsert_people(session, campaign_id, table, synthetic=False, progress=progress)
    if keeps or tags or "do_not_contact" in table:
        ids = dict((await session.execute(select(Person.external_id, Person.id)
                                          .where(Person.campaign_id == campaign_id))).all())
        people = table["external_id"].map(ids).tolist()
        changed = await keep_values(session, campaign_id, keeps, Of.person, people, table, label=label)
        if tags:
            changed |= await keep_tags(session, campaign_id, people, table[TAGS].rename(tags), label=label)
        if "do_not_contact" in table:
            changed |= await contact.from_import(session, Person, people, table["do_not_contact"].to_numpy())
        # A person whose row stood but whose kept values moved was updated too.
        moved = len(changed - written["updated"] - {ids[key] for key in written["created"]})
        counts["updated"] += moved
        counts["unchanged"] -= moved
    await session.commit()
    return ImportReport("people", label, read=read, rejected=rejected, **counts)


async def upsert_people(session: AsyncSession, campaign_id: int, table: pd.DataFrame, *, synthetic: bool,
                        progress: Progress) -> tuple[dict[str, int], dict[str, set[Any]]]:
    """Insert new people and update changed ones; counts of created, updated and unchanged, and the ids of those
    updated and external ids of those created. Flushes only."""
    people = table.assign(synthetic=synthetic, language=table["language"].astype(object).replace("", None))
    wanted = frame_values(people, ("external_id", *PERSON_FIELDS))
    upsert = plan_upsert(await stored_rows(session, Person, "external_id", PERSON_FIELDS, campaign_id), wanted,
                         PERSON_FIELDS)
    await apply_upsert(session, Person, "external_id", PERSON_FIELDS, campaign_id, upsert, progress, "people")
    # Walk lists holding these people's doors move on, so phones get the new names.
    await publish(session, HouseholdsChanged(campaign_id, household_ids=frozenset(
        [row[1] for row in upsert.new] + [c["household_id"] for c in upsert.changed])))
    await refresh_counts(session, campaign_id)
    # Those of the people kept before: a kept value that moved updates them too (import_people).
    return {"created": len(upsert.new), "updated": len(upsert.changed), "unchanged": upsert.unchanged}, {
        "updated": {c["id"] for c in upsert.changed}, "created": {row[0] for row in upsert.new}}


FIRST_NAMES = ("Maria", "James", "Ana", "John", "Wei", "Fatima", "Michael", "Sofia", "David", "Aisha", "Daniel",
               "Lucia", "Joseph", "Mei", "Samuel", "Grace", "Carlos", "Emily", "Ahmed", "Olivia", "Kevin", "Rosa",
               "Thomas", "Hannah", "Luis", "Priya", "Robert", "Chloe", "Ibrahim", "Julia", "Pedro", "Sarah")
LAST_NAMES = ("Silva", "Smith", "Nguyen", "Johnson", "Garcia", "Chen", "Williams", "Santos", "Brown", "Kim",
              "Jones", "Costa", "Miller", "Patel", "Davis", "Rodriguez", "Wilson", "Li", "Moore", "Pereira",
              "Taylor", "Haddad", "Anderson", "Murphy", "Thomas", "Okafor", "Martin", "Wang", "Lee", "Walsh")
LANGUAGES = ("", "", "", "", "", "", "", "", "es", "pt", "zh", "ht")


def synthetic_people(households: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Made-up people for households (external_id, id): one to four each, the same for the same seed.

    Examples
    --------
    >>> doors = pd.DataFrame({"external_id": ["A-1", "A-2"], "id": [1, 2]})
    >>> people = synthetic_people(doors, seed=7)
    >>> people["external_id"].str.startswith("SYN-").all(), people["household_id"].isin([1, 2]).all()
    (np.True_, np.True_)
    >>> people.equals(synthetic_people(doors, seed=7))
    True
    """
    rng = np.random.default_rng(seed)
    households = households.sort_values("external_id")
    sizes = rng.choice([1, 2, 3, 4], size=len(households), p=[0.35, 0.4, 0.2, 0.05])
    n = int(sizes.sum())
    door = np.repeat(np.arange(len(households)), sizes)
    ordinal = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes) + 1
    family = rng.integers(len(LAST_NAMES), size=len(households))[door]
    # Most people share their household's family name; some don't.
    own = np.where(rng.random(n) < 0.8, family, rng.integers(len(LAST_NAMES), size=n))
    ext = households["external_id"].to_numpy()[door]
    return pd.DataFrame({
        "external_id": [f"SYN-{e}-{o}" for e, o in zip(ext, ordinal, strict=True)],
        "household_id": households["id"].to_numpy()[door],
        "first_name": np.asarray(FIRST_NAMES)[rng.integers(len(FIRST_NAMES), size=n)],
        "last_name": np.asarray(LAST_NAMES)[own],
        "birth_year": pd.array(rng.integers(1935, 2007, size=n), dtype="Int64"),
        "language": np.asarray(LANGUAGES)[rng.integers(len(LANGUAGES), size=n)],
    })


async def make_demo_people(session: AsyncSession, campaign_id: int, *, seed: int = 7,
                           progress: Progress = no_progress) -> dict[str, int]:
    """Give every household of the campaign seeded synthetic people, in one transaction."""
    await begin_write(session)
    households = pd.DataFrame((await session.execute(
        select(Household.external_id, Household.id).where(Household.campaign_id == campaign_id))).all(),
        columns=["external_id", "id"])
    counts, _ = await upsert_people(session, campaign_id, synthetic_people(households, seed=seed), synthetic=True,
                                    progress=progress)
    await session.commit()
    return counts


async def list_households(session: AsyncSession, campaign_id: int, *, precinct_id: int | None,
                          cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the campaign's households (optionally of one precinct) with their point and people count."""
    after = int_cursor(cursor)
    people = select(func.count()).where(Person.household_id == Household.id).scalar_subquery()
    query = (select(Household.id, Household.external_id, Household.number, Household.street, Household.unit,
                    Household.building_id, Precinct.code.label("precinct_id"), Building.lon, Building.lat,
                    people.label("people"))
             .join(Building, Building.id == Household.building_id)
             .join(Precinct, Precinct.id == Household.precinct_id)
             .where(Household.campaign_id == campaign_id, Household.id > after)
             .order_by(Household.id).limit(limit + 1))
    if precinct_id is not None:
        query = query.where(Household.precinct_id == precinct_id)
    rows = [dict(r._mapping) for r in (await session.execute(query)).all()]
    return page(rows, limit, key=lambda row: row["id"])
