"""Street centrelines: one row per segment between two intersections, a block face on each side."""

from sqlalchemy import LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


class Street(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("campaign_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    external_id: str = Field(max_length=64)
    # Upper case with single spaces, the form addresses are matched in ("CAMBRIDGE ST").
    name: str = Field(max_length=200)
    # The street graph's node ids at each end; null where the file has none.
    from_node: str | None = Field(default=None, max_length=32)
    to_node: str | None = Field(default=None, max_length=32)
    # Address ranges on each side; null where the file has none.
    l_from: int | None = None
    l_to: int | None = None
    r_from: int | None = None
    r_to: int | None = None
    # 0 both ways, 1 one-way along the line's direction, -1 against it.
    direction: int = 0
    length_m: float
    # WKB LineString (or MultiLineString) in EPSG:4326.
    geometry: bytes = Field(sa_type=LargeBinary)
