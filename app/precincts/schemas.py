from typing import Any, Literal

from pydantic import ConfigDict
from sqlmodel import Field, SQLModel

from app.geojson import GeometryIn


class PrecinctRead(SQLModel):
    id: str = Field(description="The campaign's own precinct id, e.g. `9-1`.")
    name: str
    bbox: tuple[float, float, float, float] = Field(description="min lon, min lat, max lon, max lat (EPSG:4326).")
    buildings: int
    households: int
    people: int


class PrecinctDetail(PrecinctRead):
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon, EPSG:4326.")


class PrecinctPage(SQLModel):
    items: list[PrecinctRead]
    next_cursor: str | None


class FeatureIn(SQLModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["Feature"]
    properties: dict[str, Any] | None = None
    geometry: GeometryIn | None


class FeatureCollectionIn(SQLModel):
    """An RFC 7946 FeatureCollection of precinct polygons (a legacy `crs` member is honoured)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["FeatureCollection"]
    features: list[FeatureIn] = Field(min_length=1)


class RejectionRead(SQLModel):
    file: str
    row: int = Field(description="Data row, counting from 1 (a CSV's line number is row + 1).")
    column: str | None
    reason: str
    id: str | None


class ImportReportRead(SQLModel):
    kind: str
    file: str
    read: int
    created: int
    updated: int
    unchanged: int
    snapped: int = Field(description="Rows placed in a precinct they lie just outside (within 50 m).")
    rejected: int = Field(description="Rows rejected, in all.")
    rejections: list[RejectionRead] = Field(description="The first 1,000 rejected rows, by row.")
    rejections_omitted: int = Field(0, description="Rejected rows not listed (`rejected` less the 1,000 listed).")
    model_config = ConfigDict(extra="allow")
