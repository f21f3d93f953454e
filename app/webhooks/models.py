"""Webhooks a campaign's tools register, and the outbox of their deliveries."""

import uuid
from datetime import datetime

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow

EVENTS = ("knock.accepted", "turf.completed", "turf.assigned")
URL_MAX = 2000


class Webhook(SQLModel, table=True):
    """A URL that gets the campaign's events, signed with its secret."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True, ondelete="CASCADE")
    url: str = Field(max_length=URL_MAX)
    events: str = Field(max_length=200)  # space-separated, from EVENTS
    # The HMAC-SHA256 key of its signatures: shown once, when made; kept, since the server signs with it.
    secret: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookDelivery(SQLModel, table=True):
    """One event for one webhook: written in the transaction that caused it (an outbox), sent by the worker,
    retried with backoff until the receiver answers 2xx or the attempts run out."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_due", "next_attempt_at"),)

    # The delivery id the receiver sees: a retry sends the same one, so it can drop what it had already.
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    webhook_id: uuid.UUID = Field(foreign_key="webhook.id", index=True, ondelete="CASCADE")
    event: str = Field(max_length=32)
    payload: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    attempts: int = 0
    # When it is next due; null once delivered or given up.
    next_attempt_at: datetime | None = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status: int | None = None
    # A class of failure, one of app.webhooks.targets.FAILURES (rows from before: the HTTP library's message).
    last_error: str | None = Field(default=None, max_length=500)
