"""The audit of reads of voter data: who read what, when and from where. Append-only."""

import uuid
from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class AuditEvent(SQLModel, table=True):
    """One read of personal data (a walk list, households, people, results with names, an export)."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_campaign_at", "campaign_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Who: a user or an API key (no foreign keys: the audit outlives a removed user or key).
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    # What: the kind of read (walklist.read, ...) and what it named (a turf id, a window), never the data itself.
    action: str = Field(max_length=32)
    subject: str = Field(max_length=200)
    # How many people's records the answer held, where that is known.
    records: int | None = None
    # From where: the client's address and its user agent, cut short.
    client: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=200)
