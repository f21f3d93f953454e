"""Schemas every domain shares: the RFC 9457 problem, the one shape of every error answer and of a rejected knock.

The contract declares it once (`#/components/schemas/Problem`); app/errors.py builds the dicts it describes.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def absent(description: str) -> Any:
    """A member an answer leaves out when it doesn't apply: optional, and with no default in the contract (which
    generators would read as "always sent")."""
    return Field(default=None, description=description, json_schema_extra=lambda schema: schema.pop("default"))


class FieldError(BaseModel):
    field: str = Field(description="Where the fault is: `body.name`, `query.limit`, `knocks[3].result`, `file`.")
    message: str
    type: str | None = absent("A machine-readable kind of fault, where one is known.")


class TurfBrief(BaseModel):
    id: int
    name: str


class Problem(BaseModel):
    """An RFC 9457 problem detail. `type` is a URI reference that resolves to a page saying what it means;
    members past the standard five name what is at fault."""

    # Members a later version adds stay readable by today's clients (RFC 9457 section 3.2: extensions).
    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`/problems/{kind}`: one kind of error, e.g. `/problems/invalid`.")
    title: str = Field(description="The kind's short summary; the same for every problem of that type.")
    status: int = Field(description="The HTTP status (for a rejected knock: the one a request would get).")
    detail: str = Field(description="What happened, for a person.")
    instance: str | None = absent("The path of the request that failed.")
    errors: list[FieldError] | None = absent("Each field at fault (422, 413, 415).")
    accepted: list[str] | None = absent("The formats a route reads (415).")
    limit: int | None = absent("The limit a request went over (413).")
    cut_id: int | None = absent("The turf cut still running (409).")
    turfs: list[TurfBrief] | None = absent("The active turfs a polygon overlaps (409).")


class Geometry(BaseModel):
    """An RFC 7946 Polygon or MultiPolygon: exterior rings counter-clockwise, holes clockwise, 6 decimals."""

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any] = Field(description="Rings of [longitude, latitude] positions (a list of them for each "
                                                "polygon of a MultiPolygon).")


class Feature(BaseModel):
    type: Literal["Feature"]
    id: int | str = Field(description="The precinct's code or the turf's id, also among its properties.")
    bbox: list[float] | None = absent("[west, south, east, north].")
    geometry: Geometry | None
    properties: dict[str, Any] = Field(description="The row's fields, as its JSON answer gives them.")


class FeatureCollection(BaseModel):
    """An RFC 7946 FeatureCollection of precincts or turfs."""

    type: Literal["FeatureCollection"]
    features: list[Feature]
    next_cursor: str | None = absent(
        "Where a page of a paged list ends (also in the `Link: rel=\"next\"` header); absent on the last page.")
