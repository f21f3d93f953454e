from datetime import datetime
from uuid import UUID

from sqlmodel import Field, SQLModel

from app.campaigns.roles import Role
from app.text import Text


class CampaignRead(SQLModel):
    id: str = Field(description="The campaign's slug, its id in URLs.")
    name: str
    role: Role | None = Field(None, description="The caller's role in the campaign; null for an API key.")
    created_at: datetime


class CampaignSummary(CampaignRead):
    claim_lapse_hours: int = Field(description="A claimed turf with no synced activity this long goes back.")
    event_max_turfs: int = Field(description="The most turfs one event may reserve in its pool.")
    precincts: int
    buildings: int
    households: int
    people: int


class MembershipRead(SQLModel):
    campaign_id: str
    campaign_name: str
    role: Role


class UserRead(SQLModel):
    id: UUID
    email: str
    name: str
    memberships: list[MembershipRead]


class Token(SQLModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    refresh_token: str = Field(description="Trade it at POST /v1/auth/refresh for a new access token (a phone back "
                                           "from hours offline does, before it syncs).")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires.")


class RefreshRequest(SQLModel):
    refresh_token: str = Field(max_length=2000)


class PasswordChange(SQLModel):
    current_password: str = Field(max_length=1000)
    new_password: str = Field(max_length=1000, description="At least 8 characters, not a common password nor the "
                                                            "email; at most 256.")


class MemberRead(SQLModel):
    user_id: UUID
    email: str
    name: str
    role: Role
    joined_at: datetime


class MemberPage(SQLModel):
    items: list[MemberRead]
    next_cursor: str | None


class CampaignUpdate(SQLModel):
    name: Text | None = Field(None, min_length=1, max_length=200)
    claim_lapse_hours: int | None = Field(None, ge=1, le=24 * 30)
    event_max_turfs: int | None = Field(None, ge=0, le=1000, description=(
        "The most turfs one event may reserve; pools already reserved keep their size."))
