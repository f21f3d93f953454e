from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel import SQLModel

from app.schemas import Problem
from app.text import no_nul
from app.values import Id

# Limits on one batch: a phone with more sends several.
MAX_KNOCKS = 500
MAX_BYTES = 1 << 20

DeviceText = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(no_nul)]
Answer = Annotated[str, StringConstraints(max_length=1000), AfterValidator(no_nul)]


class KnockIn(BaseModel):
    """One knock as the phone recorded it. Validated one by one: a bad knock never sinks its batch.

    Plain pydantic models (not SQLModel) for the batch: SQLModel copies every dict it validates.
    """

    model_config = ConfigDict(extra="ignore")

    id: UUID = Field(description="Made by the phone, once per knock: resending it is harmless.")
    household_id: Id
    person_id: Id | None = Field(default=None, description="The person spoken to, if any.")
    turf_id: Id = Field(description="The turf the door was worked on.")
    result: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="A result code of the script version.")
    answers: dict[Annotated[str, StringConstraints(max_length=32)], Answer | list[Answer]] = Field(
        default_factory=dict, max_length=100, description="Question id to a choice id, several choice ids, or text.")
    # Not bounded like other times: a wrong clock's knock is stored, flagged (see sync.checks.times).
    knocked_at: AwareDatetime = Field(description="By the phone's clock, with its offset. A time outside 2000 to "
                                                  "2100 is kept, flagged clock_suspect, corrected to its arrival.")
    script_id: Id | None = Field(default=None, description="The script answered, from the walk list; null for none.")
    script_version: Id | None = Field(default=None, description="Its version, from the walk list.")
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    note: Annotated[str, StringConstraints(max_length=2000), AfterValidator(no_nul)] | None = None
    do_not_contact: bool = Field(default=False, description=(
        "The door asked not to be knocked again (\"don't come back\"): it is kept off every list from now on. A "
        "`deceased` or `moved` result keeps the person spoken to (or, with no `person_id`, the door) off too."))


class SyncBatch(BaseModel):
    """A phone's upload, as the contract states it."""

    device_id: DeviceText
    batch_id: DeviceText = Field(description="The phone's id for this upload; a retry may reuse it.")
    sent_at: AwareDatetime = Field(description="When the phone sent it, by its own clock: the server estimates the "
                                               "phone's clock offset from it.")
    knocks: list[KnockIn] = Field(max_length=MAX_KNOCKS, description="The knocks, in the order made.")


class SyncEnvelope(SyncBatch):
    """A phone's upload as the server reads it: any item parses here, and each is then validated as a KnockIn
    alone, so a knock of the wrong shape is rejected alone."""

    knocks: list[Any]


class KnockOutcome(SQLModel):
    id: str
    status: Literal["accepted", "duplicate", "rejected"] = Field(
        description="accepted: stored now; duplicate: stored before, identical; rejected: see problem.")
    problem: Problem | None = Field(default=None, description="Why a rejected knock wasn't stored, naming its field.")


class SyncResult(SQLModel):
    batch_id: str
    received_at: datetime
    clock_offset_s: float = Field(description="Server clock minus the phone's, estimated from sent_at.")
    clock_suspect: bool = Field(description="The offset is implausible (a day or more): times are kept, and flagged.")
    accepted: int
    duplicate: int
    rejected: int
    knocks: list[KnockOutcome] = Field(description="One per knock sent, in the order sent.")


class FeedKnock(BaseModel):
    seq: int = Field(description="The server's order of storing: never a clock.")
    id: str
    turf_id: int
    precinct: str
    household_id: int
    household_ref: str = Field(description="The household's id in the address file.")
    address: str
    person_id: int | None
    result: str
    contacted: bool
    answers: dict[str, Any]
    note: str | None = Field(description="The canvasser's free-text note: with people:read only (null without).")
    knocked_at: datetime = Field(description="By the phone's clock.")
    corrected_at: datetime = Field(description="By the server's clock: what time windows use.")
    received_at: datetime
    clock_suspect: bool
    person_ref: str | None = Field(default=None, description="The voter file's id; with people:read only.")
    person_name: str | None = Field(default=None, description="With people:read only.")


class KnockFeed(BaseModel):
    items: list[FeedKnock]
    next: str = Field(description="Send it back as `after` for the knocks stored since.")
