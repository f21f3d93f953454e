from datetime import datetime
from uuid import UUID

from sqlmodel import Field, SQLModel

from app.campaigns.models import Role
from app.text import Text


class CampaignRead(SQLModel):
    id: str = Field(description="The campaign's slug, its id in URLs.")
    name: str
    role: Role | None = Field(None, description="The caller's role in the campaign; null for an API key.")
    created_at: datetime


class CampaignSummary(CampaignRead):
    claim_lapse_hours: int = Field(description="A claimed turf with no synced activity this long goes back.")
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


class CampaignUpdate(SQLModel):
    name: Text | None = Field(None, min_length=1, max_length=200)
    claim_lapse_hours: int | None = Field(None, ge=1, le=24 * 30)
