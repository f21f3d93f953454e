from datetime import datetime
from enum import StrEnum

from pydantic import Field
from sqlmodel import SQLModel


class Kind(StrEnum):
    """What an attribute holds."""

    text = "text"
    integer = "integer"
    number = "number"
    boolean = "boolean"
    date = "date"


class Of(StrEnum):
    """Whose an attribute is: a person's (the voter file's) or a household's (the address file's)."""

    person = "person"
    household = "household"


# The types `--keep NAME:TYPE` and `keep` form fields take, with the short names voter-file people write.
KINDS: dict[str, Kind] = {k.value: k for k in Kind} | {"int": Kind.integer, "float": Kind.number,
                                                       "num": Kind.number, "bool": Kind.boolean, "str": Kind.text}


class AttributeIn(SQLModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="As the file's column is named.")
    type: Kind = Kind.text
    of: Of = Of.person
    canvassers_see: bool = Field(default=False, description=(
        "Shown to canvassers in walk lists; otherwise only to callers with `people:read` and organizers."))


class AttributeRead(SQLModel):
    id: int
    name: str
    type: Kind
    of: Of
    canvassers_see: bool
    created_at: datetime
