"""API keys for third-party tools: campaign-scoped, with scopes, stored hashed."""

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


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


class LoginSession(SQLModel, table=True):
    """One login (a password log-in or a join): the family its refresh tokens belong to.

    Refresh tokens rotate: each names its session and a one-time id, and only the session's current id buys
    new tokens. A refresh token used twice means it was stolen (or replayed), so the whole family is revoked
    (OAuth 2.0 Security BCP, section 4.14). Access tokens name their session too: logging out ends them.
    """

    __tablename__ = "login_session"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    # The id of the one refresh token that may be used next.
    refresh_jti: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Why: logout, reuse, password, removed, disabled.
    revoked_reason: str | None = Field(default=None, max_length=16)
