"""Door knocks as phones sync them, and the tallies progress reads, kept in the same transaction."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, Text
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime


class DoorKnock(SQLModel, table=True):
    """One visit to a door, as the phone recorded it, with the server's stamps beside the phone's clock."""

    __tablename__ = "door_knock"
    __table_args__ = (
        # Progress over a time window reads only this index: the window's knocks with what it counts of them.
        Index("ix_door_knock_window", "campaign_id", "corrected_at", "turf_id", "precinct_id", "household_id",
              "result", "contacted"),
        # The results feed pages a campaign's knocks by sequence.
        Index("ix_door_knock_campaign_seq", "campaign_id", "seq"),
        {"sqlite_autoincrement": True},
    )

    # The server's order of storing knocks, never a clock: a results feed pages by it.
    seq: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"),
                                                           primary_key=True, autoincrement=True))
    # The phone makes the id: it is the knock's identity, so a resent knock is recognised.
    id: uuid.UUID = Field(unique=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    # No cascade from turf or household: a turf with knocks is archived, a knock is never lost.
    turf_id: int = Field(foreign_key="turf.id", index=True)
    household_id: int = Field(foreign_key="household.id", index=True)
    # The door's precinct when the knock came in (progress by precinct counts it there).
    precinct_id: int = Field(foreign_key="precinct.id")
    person_id: int | None = Field(default=None, foreign_key="person.id", ondelete="SET NULL")
    user_id: uuid.UUID = Field(foreign_key="user_account.id")
    device_id: str = Field(max_length=64)
    batch_id: str = Field(max_length=64)
    # The script version answered; null for door results alone.
    script_version_id: int | None = Field(default=None, foreign_key="script_version.id")
    result: str = Field(max_length=32)
    contacted: bool
    answers: str = Field(sa_type=Text)  # JSON object: question id -> choice id, choice ids or text
    note: str | None = Field(default=None, sa_type=Text)
    lon: float | None = None
    lat: float | None = None
    # The phone's clock; the batch's offset (server minus phone, seconds); the knock's time by the server's
    # clock (never later than received_at); and whether the offset was implausible (days), kept as sent.
    knocked_at: datetime = Field(sa_type=UTCDateTime)
    clock_offset_s: float
    corrected_at: datetime = Field(sa_type=UTCDateTime)
    clock_suspect: bool = False
    received_at: datetime = Field(sa_type=UTCDateTime)
    # sha256 of what the phone sent for this knock: the same id with another digest is a conflict.
    digest: str = Field(max_length=64)


class ResultTally(SQLModel, table=True):
    """Knocks by result, per turf and door precinct; kept by sync, so progress never counts knocks."""

    __tablename__ = "result_tally"

    turf_id: int = Field(foreign_key="turf.id", primary_key=True)
    precinct_id: int = Field(foreign_key="precinct.id", primary_key=True, index=True)
    result: str = Field(max_length=32, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True, ondelete="CASCADE")
    knocks: int = 0
