from sqlmodel import Field, SQLModel


class HouseholdRead(SQLModel):
    id: int
    address_id: str = Field(description="The address file's own id.")
    number: str
    street: str
    unit: str
    building_id: int
    precinct_id: str
    lon: float
    lat: float
    people: int


class HouseholdPage(SQLModel):
    items: list[HouseholdRead]
    next_cursor: str | None
