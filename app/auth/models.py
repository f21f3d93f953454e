"""API keys for third-party tools: campaign-scoped, with scopes, stored hashed."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Scope(StrEnum):
    progress_read = "progress:read"
    turfs_read = "turfs:read"
    results_read = "results:read"
    people_read = "people:read"
    webhooks_write = "webhooks:write"


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    # The first characters of the key, shown in lists so a key can be recognised without its secret.
    prefix: str = Field(max_length=16)
    # SHA-256 of the whole key: keys are 256 random bits, so a slow password hash adds nothing.
    key_hash: str = Field(max_length=64, unique=True)
    scopes: str = Field(max_length=500)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
