"""Who holds which turf, and how they came to: assignments, claims, join codes and canvass launches."""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class TurfHolding(SQLModel, table=True):
    """A user holding a turf now: assigned by an organizer, claimed, or checked out at an event."""

    __tablename__ = "turf_holding"
    __table_args__ = (
        UniqueConstraint("turf_id", "user_id"),
        CheckConstraint("via IN ('assigned', 'claimed', 'event')", name="via"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True, ondelete="CASCADE")
    turf_id: int = Field(foreign_key="turf.id", ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    via: str = Field(max_length=8)
    event_id: int | None = Field(default=None, foreign_key="event.id", ondelete="SET NULL")
    since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # A claim with no synced activity for the campaign's lapse time goes back to the pool; sync moves this.
    last_activity_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TurfHistory(SQLModel, table=True):
    """Every assignment, claim, release, lapse and check-out: append-only, never updated.

    Sync reads it to accept a knock made while the canvasser held the turf, even if it was taken back since.
    """

    __tablename__ = "turf_history"
    # No cascade from turf: a turf with history is archived, never deleted.
    __table_args__ = (
        CheckConstraint("action IN ('assigned', 'unassigned', 'claimed', 'released', 'lapsed', 'checked_out', "
                        "'returned')", name="action"),
        Index("ix_turf_history_turf_user_at", "turf_id", "user_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True, ondelete="CASCADE")
    turf_id: int = Field(foreign_key="turf.id")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", ondelete="CASCADE")
    action: str = Field(max_length=12)
    # Who did it: an organizer or host for assignments and check-outs, the user themselves for claims; null for
    # what the system does (a lapse).
    by_user_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    event_id: int | None = Field(default=None, foreign_key="event.id", ondelete="SET NULL")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Event(SQLModel, table=True):
    """A canvass launch run by a host: a meeting point, a time and a pool of turfs reserved for it."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True, ondelete="CASCADE")
    host_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    title: str = Field(max_length=200)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    lon: float
    lat: float
    capacity: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Set by DELETE: a cancelled event is over at once, its unhanded pool released.
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class _OfEvent(SQLModel):
    """An event's row: gone with its event."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="event.id", ondelete="CASCADE")


class EventTurf(_OfEvent, table=True):
    """A turf reserved for an event until it ends; checked out to an attendee, or back to the pool after."""

    __tablename__ = "event_turf"
    __table_args__ = (UniqueConstraint("event_id", "turf_id"),)

    turf_id: int = Field(foreign_key="turf.id", index=True, ondelete="CASCADE")
    checked_out_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EventAttendee(_OfEvent, table=True):
    __tablename__ = "event_attendee"
    __table_args__ = (UniqueConstraint("event_id", "user_id"),)

    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    joined_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    checked_in_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    turf_id: int | None = Field(default=None, foreign_key="turf.id", ondelete="SET NULL")


class JoinCode(SQLModel, table=True):
    """A code that lets anyone sign up (or add a membership) with a role, and join an event if it names one."""

    __tablename__ = "join_code"
    __table_args__ = (CheckConstraint("role IN ('admin', 'organizer', 'host', 'canvasser')", name="role"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True, ondelete="CASCADE")
    code: str = Field(max_length=32, unique=True)
    role: str = Field(max_length=16)
    event_id: int | None = Field(default=None, foreign_key="event.id", ondelete="CASCADE")
    expires_at: datetime = Field(sa_type=UTCDateTime)
    max_uses: int | None = None
    uses: int = 0
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# Turf history actions that hand a turf to someone (webhooks hear of them as turf.assigned), and those that take
# it back: between the two, sync accepts the holder's knocks.
ASSIGNED = frozenset({"assigned", "claimed", "checked_out"})
TAKEN_BACK = frozenset({"unassigned", "released", "lapsed", "returned"})
