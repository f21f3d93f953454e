"""Precincts: the campaign's voting precincts, the unit every import and cut is organised by."""

from datetime import datetime

from sqlalchemy import LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Shaped(SQLModel):
    """The columns of a stored shape (a precinct's, a turf's)."""

    # WKB Polygon or MultiPolygon in EPSG:4326, portable across SQLite and PostgreSQL; the bounding box filters
    # without decoding it.
    geometry: bytes = Field(sa_type=LargeBinary)
    # The same shape as GeoJSON snapped to 10 cm (app.geo.geojson), written with it: maps, progress and walk
    # lists embed it.
    geojson: str = Field(sa_type=Text)
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


class Counted(SQLModel):
    """The progress counters sync keeps of a precinct's or a turf's doors: knocks, doors attempted and
    contacted, the latest knock (corrected)."""

    knocks: int = 0
    doors_attempted: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    doors_contacted: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_knock_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Precinct(Shaped, Counted, table=True):
    __table_args__ = (UniqueConstraint("campaign_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    # The campaign's own id for the precinct (`9-1`), used in URLs.
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    # Kept by every import, so reads never count rows.
    building_count: int = 0
    household_count: int = 0
    person_count: int = 0
    # Added after precincts held rows, unlike a turf's, so it has a server default.
    knocks: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # The script its turfs use unless a turf has its own.
    script_id: int | None = Field(default=None, foreign_key="script.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
