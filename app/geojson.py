"""GeoJSON geometries as requests carry them (RFC 7946), checked for shape before any geometry code sees them:
a position is [longitude, latitude] (an altitude may follow), a ring a list of positions, a Polygon a list of
rings, a MultiPolygon a list of Polygons. A wrong inner shape is a 422 naming where it is."""

from typing import Annotated, Any, Literal, Self

from annotated_types import Len
from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Numbers as numbers: GeoJSON has no coordinate written as a string.
Position = Annotated[list[Annotated[float, Strict(), AllowInfNan(False)]], Len(2, 3)]
# Rings too short to close are left to shapely, which says so in words a person drawing understands.
Ring = list[Position]
PolygonCoordinates = Annotated[list[Ring], Len(min_length=1)]
MultiPolygonCoordinates = Annotated[list[PolygonCoordinates], Len(min_length=1)]

COORDINATES: dict[str, TypeAdapter[Any]] = {
    "Point": TypeAdapter(Position),
    "MultiPoint": TypeAdapter(list[Position]),
    "LineString": TypeAdapter(list[Position]),
    "MultiLineString": TypeAdapter(list[list[Position]]),
    "Polygon": TypeAdapter(PolygonCoordinates),
    "MultiPolygon": TypeAdapter(MultiPolygonCoordinates),
}
WHAT = {"Point": "a position", "MultiPoint": "a list of positions", "LineString": "a list of positions",
        "MultiLineString": "a list of lists of positions", "Polygon": "a list of rings, each a list of positions",
        "MultiPolygon": "a list of polygons, each a list of rings of positions"}


def check_coordinates(kind: str, coordinates: Any) -> Any:
    """`coordinates` validated as `kind`'s; a ValueError naming the first wrong place, as coordinates[i][j]."""
    try:
        return COORDINATES[kind].validate_python(coordinates)
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        where = "".join(f"[{part}]" for part in error["loc"])
        raise ValueError(f"coordinates{where}: {error['msg'].lower()} ({kind} coordinates are {WHAT[kind]}; "
                         "a position is [longitude, latitude])") from None


def vertices(kind: str, coordinates: Any) -> int:
    """How many positions validated coordinates hold, counted by rings (cheap even for a million)."""
    if kind == "Point":
        return 1
    if kind in ("MultiPoint", "LineString"):
        return len(coordinates)
    if kind in ("MultiLineString", "Polygon"):
        return sum(len(ring) for ring in coordinates)
    return sum(len(ring) for polygon in coordinates for ring in polygon)


class PolygonalIn(BaseModel):
    """A GeoJSON Polygon or MultiPolygon in longitude/latitude (RFC 7946)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any] = Field(min_length=1, description="Polygon: rings of [lon, lat] positions, the first "
                                                             "the outline; MultiPolygon: a list of those.")

    @field_validator("coordinates")
    @classmethod
    def shaped(cls, coordinates: list[Any], info: ValidationInfo) -> list[Any]:
        kind = info.data.get("type")
        return check_coordinates(kind, coordinates) if kind else coordinates

    @property
    def vertices(self) -> int:
        return vertices(self.type, self.coordinates)


class GeometryIn(BaseModel):
    """Any RFC 7946 geometry, each type's coordinates checked for shape (an import rejects non-polygons one by
    one, so they parse)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                  "GeometryCollection"]
    coordinates: list[Any] | None = None
    geometries: list["GeometryIn"] | None = None

    @field_validator("coordinates")
    @classmethod
    def shaped(cls, coordinates: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        kind = info.data.get("type")
        return check_coordinates(kind, coordinates) if kind and kind in COORDINATES and coordinates is not None \
            else coordinates

    @model_validator(mode="after")
    def complete(self) -> Self:
        if self.type == "GeometryCollection" and self.geometries is None:
            raise ValueError("a GeometryCollection holds `geometries`")
        if self.type != "GeometryCollection" and self.coordinates is None:
            raise ValueError(f"a {self.type} holds `coordinates`")
        return self

    @property
    def vertices(self) -> int:
        if self.type == "GeometryCollection":
            return sum(g.vertices for g in self.geometries or [])
        return vertices(self.type, self.coordinates)
