from datetime import datetime
from typing import Any, Literal

from sqlmodel import Field, SQLModel

from app.addresses.schemas import HouseholdBrief
from app.geojson import PolygonalIn as GeometryIn
from app.text import Text


class TurfCreate(SQLModel):
    name: Text | None = Field(None, max_length=200, description="Defaults to `<precinct>-Dnn`.")
    geometry: GeometryIn
    take_over: bool = Field(False, description="Take the doors of active turfs the polygon overlaps.")


class TurfUpdate(SQLModel):
    name: Text | None = Field(None, min_length=1, max_length=200)
    geometry: GeometryIn | None = None
    take_over: bool = False


class TurfRead(SQLModel):
    id: int
    name: str
    precinct_id: str = Field(description="The precinct holding most of its doors.")
    source: Literal["drawn", "cut"]
    status: Literal["active", "archived"]
    doors: int = Field(description="Households.")
    buildings: int
    holders: int
    knocks: int = Field(description="Door knocks synced on it.")
    doors_attempted: int = Field(description="Its doors knocked at least once.")
    doors_contacted: int = Field(description="Its doors where someone was reached.")
    last_knock_at: datetime | None = Field(description="The latest knock, by the server's corrected clock.")
    bbox: tuple[float, float, float, float]
    version: int = Field(description="Its walk list's version (see the walk list's `since`).")
    created_at: datetime
    updated_at: datetime


class TurfDetail(TurfRead):
    precincts: list[str]
    geometry: dict[str, Any]
    households: list[HouseholdBrief]


class TurfPage(SQLModel):
    items: list[TurfRead]
    next_cursor: str | None


class TurfDeleted(SQLModel):
    id: int
    outcome: Literal["deleted", "archived"] = Field(description="A worked turf is archived, its history kept.")


class TurfCutCreate(SQLModel):
    precincts: list[Text] | None = Field(None, description="Precinct ids; all of the campaign's when absent.")
    target_doors: int = Field(50, ge=5, le=1000)


class TurfCutRead(SQLModel):
    id: int
    state: Literal["queued", "running", "done", "failed"]
    target_doors: int
    precincts: list[str] | None
    precincts_total: int
    precincts_done: int
    turfs_made: int
    report: dict[str, Any] | None = Field(description="Quality, overall and per precinct, once done.")
    error: str | None
    created_at: datetime
    finished_at: datetime | None
