"""The walk list's shape, for the OpenAPI contract: the endpoint writes it with orjson straight from rows."""

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from app.scripts.schemas import Question, ResultCode


class WalkPerson(SQLModel):
    """All of a voter a canvasser gets: no birth date, no voter file id, nothing else."""

    id: int
    name: str
    age_band: str | None = Field(description="18-24, 25-34, ... 75+, or under 18; null if unknown.")
    language: str | None


class LastResult(SQLModel):
    result: str = Field(description="A result code.")
    at: datetime = Field(description="When, by the server's corrected clock.")


class WalkHousehold(SQLModel):
    id: int = Field(description="The household id knocks are synced against.")
    unit: str
    people: list[WalkPerson]
    last_result: LastResult | None


class WalkBuilding(SQLModel):
    id: int
    address: str
    point: tuple[float, float] = Field(description="Longitude, latitude.")
    households: list[WalkHousehold] = Field(description="In natural unit order; in a delta, only changed ones.")


class WalkScript(SQLModel):
    script_id: int | None = Field(description="Null when the turf has no script: door results only.")
    version: int
    name: str
    questions: list[Question]
    result_codes: list[ResultCode]


class WalkTurf(SQLModel):
    id: int
    name: str
    precinct_id: str
    status: str
    doors: int
    geometry: dict[str, Any] = Field(description="A GeoJSON Polygon or MultiPolygon.")


class WalkList(SQLModel):
    turf: WalkTurf
    version: int = Field(description="Send it back as `since` to get only what changes after it.")
    since: int | None
    full: bool = Field(description="True for a whole list; false for the changes after `since`.")
    script: WalkScript | None = Field(
        default=None, description="Always in a whole list; in a delta only if the script version changed.")
    route: dict[str, Any] | None = Field(
        default=None, description="A GeoJSON LineString along the streets, in walking order; in a delta only if "
                                  "the doors or their order changed.")
    route_m: float | None = Field(default=None, description="The route's length on foot, in metres.")
    order: list[int] | None = Field(default=None, description="Delta only, when the order changed: every "
                                                              "household id in walking order.")
    removed: list[int] | None = Field(default=None, description="Delta only: household ids no longer on the turf.")
    buildings: list[WalkBuilding] = Field(description="In walking order; in a delta, those with changed doors.")
