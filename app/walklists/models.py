"""A turf's stored walking order, door by door, with what changed when (for `?since=` refreshes)."""

from sqlmodel import Field, SQLModel


class WalkStop(SQLModel, table=True):
    """A door on a turf's walk list. A door that leaves the turf stays as a removed row, so a phone that
    downloaded the list earlier learns it is gone."""

    __tablename__ = "walk_stop"

    turf_id: int = Field(foreign_key="turf.id", primary_key=True, ondelete="CASCADE")
    household_id: int = Field(foreign_key="household.id", primary_key=True, index=True, ondelete="CASCADE")
    # Position in walking order: buildings along the route, units in natural order within a building.
    seq: int
    removed: bool = False
    # The turf version at which this door was added, removed, or its people or last result changed.
    changed: int
    # Kept by sync: knocks at this door on this turf, and whether one reached someone (turf progress counts
    # doors attempted and contacted from these).
    knocks: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    contacted: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
