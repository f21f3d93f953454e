"""Turfs: the piece of a precinct one canvasser (or a pair) walks in a shift; and the jobs that cut them."""

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Text
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow
from app.precincts.models import Counted, Shaped


class Turf(Shaped, Counted, table=True):
    __table_args__ = (
        CheckConstraint("status IN ('active', 'archived')", name="status"),
        CheckConstraint("source IN ('drawn', 'cut')", name="source"),
        Index("ix_turf_campaign_status_precinct", "campaign_id", "status", "precinct_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    # The precinct holding most of its doors (a drawn turf may reach into others).
    precinct_id: int = Field(foreign_key="precinct.id")
    name: str = Field(max_length=200)
    source: str = Field(max_length=8)
    cut_id: int | None = Field(default=None, foreign_key="turf_cut.id", ondelete="SET NULL")
    status: str = Field(default="active", max_length=8)
    # Kept when membership changes, so lists never count rows.
    doors: int = 0
    buildings: int = 0
    # Kept by organizing: who holds it now.
    holders: int = 0
    # Goes up whenever its walk list changes (doors, order, results, script, name), so phones can refresh.
    version: int = 1
    # The walking route (a GeoJSON LineString, served as stored), its length, and the version it last changed at.
    route: str | None = Field(default=None, sa_type=Text)
    route_m: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    route_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # The script its organizers chose for it, if any; the script version it uses (this one, else its
    # precinct's, else the campaign's default), kept by app.scripts; and the version that changed it.
    script_id: int | None = Field(default=None, foreign_key="script.id", ondelete="SET NULL")
    script_version_id: int | None = Field(default=None, foreign_key="script_version.id")
    script_since: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TurfCut(SQLModel, table=True):
    """A request to cut precincts into turfs automatically, and how it went."""

    __tablename__ = "turf_cut"
    __table_args__ = (CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True, ondelete="CASCADE")
    target_doors: int
    # Space-separated precinct codes asked for; null for all of the campaign's precincts.
    precincts: str | None = Field(default=None, sa_type=Text)
    state: str = Field(default="queued", max_length=8)
    precincts_total: int = 0
    precincts_done: int = 0
    turfs_made: int = 0
    # The quality report (JSON), once done.
    report: str | None = Field(default=None, sa_type=Text)
    error: str | None = Field(default=None, sa_type=Text)
    created_by: str | None = Field(default=None, max_length=320)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
