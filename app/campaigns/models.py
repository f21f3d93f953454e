"""Campaigns, the people who log in, and their role in each campaign."""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Campaign(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # The campaign's id in URLs: `/v1/campaigns/cambridge/...`.
    slug: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    # A claimed turf with no synced activity for this long goes back to the pool.
    claim_lapse_hours: int = Field(default=48, sa_column_kwargs={"server_default": "48"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Moves on whenever progress would read differently (knocks synced, turfs cut, drawn, assigned or claimed,
    # addresses imported): progress responses take their ETag from it.
    changes: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # The most turfs one event may hold in its pool (a host reserving a whole city blocks every self-claim).
    event_max_turfs: int = Field(default=20, sa_column_kwargs={"server_default": "20"})


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Stored lower-cased, so one person has one account whatever they type.
    email: str = Field(max_length=320, unique=True)
    name: str = Field(max_length=200)
    password_hash: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # A disabled user can't log in, and every token they hold stops working.
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Tokens issued before this (a password change, a disabling) are refused, whichever login they came from.
    tokens_valid_after: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Membership(SQLModel, table=True):
    """A user's one role in one campaign; a person may hold different roles in different campaigns."""

    __table_args__ = (
        UniqueConstraint("campaign_id", "user_id"),
        CheckConstraint("role IN ('admin', 'organizer', 'host', 'canvasser')", name="role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    role: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
