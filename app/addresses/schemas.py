from datetime import datetime

from sqlmodel import Field, SQLModel


class HouseholdBrief(SQLModel):
    """A door: its address, building, precinct and point."""

    id: int
    address_id: str = Field(description="The address file's own id.")
    number: str
    street: str
    unit: str
    building_id: int
    precinct_id: str
    lon: float
    lat: float


class HouseholdRead(HouseholdBrief):
    people: int


class HouseholdPage(SQLModel):
    items: list[HouseholdRead]
    next_cursor: str | None


class ContactChange(SQLModel):
    do_not_contact: bool


class ContactRead(SQLModel):
    """Whether a person or a door is kept off every list, why (`import`, `organizer`, `refused`, `deceased`,
    `moved`) and since when."""

    id: int
    do_not_contact: bool
    reason: str | None
    since: datetime | None
