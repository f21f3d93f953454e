"""Buildings (one stop on a walk), households (one door) and people (voters)."""

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime


def _where_set(name: str, column: str) -> Index:
    """An index of the rows where `column` is set, on both dialects: rows without it are never looked up by it,
    and an import writes no entries for them."""
    return Index(name, column, postgresql_where=text(f"{column} IS NOT NULL"),
                 sqlite_where=text(f"{column} IS NOT NULL"))


class _OfCampaign(SQLModel):
    """A campaign's row: gone with its campaign."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")


class Building(_OfCampaign, table=True):
    """Units that share a point (or a parcel) are one building: one stop on a walk list."""

    __table_args__ = (UniqueConstraint("campaign_id", "key"), _where_set("ix_building_street_id", "street_id"))

    precinct_id: int = Field(foreign_key="precinct.id", index=True)
    # What grouped the units: `parcel:<id>` where the file has parcels, else `pt:<lon>,<lat>`.
    key: str = Field(max_length=160)
    number: str = Field(max_length=32)
    street: str = Field(max_length=200)
    parcel: str | None = Field(default=None, max_length=64)
    lon: float
    lat: float
    # Metres to the precinct it was snapped to; null when the precinct contains it.
    snapped_m: float | None = None
    # The street segment it fronts (its block), which side (+1 left, -1 right of the segment's direction)
    # and how far along: set when streets are imported, used to cut turf along streets and order walks.
    street_id: int | None = Field(default=None, foreign_key="street.id", ondelete="SET NULL")
    street_side: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    street_pos_m: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})


class Household(_OfCampaign, table=True):
    """One door: a unit in a building, under the address file's own id."""

    # Doors are looked up by turf, never by "no turf".
    __table_args__ = (UniqueConstraint("campaign_id", "external_id"), _where_set("ix_household_turf_id", "turf_id"))

    building_id: int = Field(foreign_key="building.id", index=True)
    # The building's precinct, kept here too: precinct filters and counters then need no join.
    precinct_id: int = Field(foreign_key="precinct.id", index=True)
    external_id: str = Field(max_length=64)
    number: str = Field(max_length=32)
    street: str = Field(max_length=200)
    unit: str = Field(default="", max_length=64)
    # The active turf holding this door, if any; kept by drawing and cutting.
    turf_id: int | None = Field(default=None, foreign_key="turf.id", ondelete="SET NULL")
    # The latest result at this door by corrected time (a result code), and that time; kept by sync.
    last_result: str | None = Field(default=None, max_length=32)
    last_result_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Kept by sync: knocks at this door, the first (corrected) and the first that reached someone.
    knocks: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    first_knock_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    contacted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    do_not_contact: str | None = Field(default=None, max_length=16)
    do_not_contact_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Person(_OfCampaign, table=True):
    """A voter, under the voter file's own id. Only what a canvasser needs is kept."""

    __table_args__ = (UniqueConstraint("campaign_id", "external_id"),)

    household_id: int = Field(foreign_key="household.id", index=True)
    external_id: str = Field(max_length=64)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    birth_year: int | None = None
    language: str | None = Field(default=None, max_length=32)
    # True for the people `doorstep demo-data` makes up: no voter file is public.
    synthetic: bool = False
    # Why this person (or, on Household, this door) is on no list any more, and since when: `import` (the file
    # said so), `organizer`, or a result (`refused`, `deceased`, `moved`). None: they may be knocked.
    do_not_contact: str | None = Field(default=None, max_length=16)
    do_not_contact_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
