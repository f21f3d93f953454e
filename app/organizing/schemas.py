from datetime import datetime
from uuid import UUID

from pydantic import AwareDatetime
from sqlmodel import Field, SQLModel

from app.campaigns.models import Role
from app.text import Text


class AssignmentCreate(SQLModel):
    user_ids: list[UUID] = Field(min_length=1, max_length=20, description="Members to give the turf to (a pair).")


class HolderRead(SQLModel):
    turf_id: int
    turf_name: str
    user_id: UUID
    name: str
    email: str | None = Field(description="For members only; API keys don't get volunteers' emails.")
    via: str = Field(description="assigned, claimed or event")
    event_id: int | None
    since: datetime
    last_activity_at: datetime


class HistoryRead(SQLModel):
    turf_id: int
    user_id: UUID
    action: str
    by_user_id: UUID | None
    event_id: int | None
    at: datetime


class ClaimCreate(SQLModel):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class ClaimRead(SQLModel):
    turf_id: int
    name: str
    precinct_id: str
    doors: int
    new: bool = Field(description="False when this is the claim the caller already had.")


class JoinCodeCreate(SQLModel):
    role: Role
    expires_at: AwareDatetime
    max_uses: int | None = Field(None, ge=1, le=100000)
    event_id: int | None = None


class JoinCodeRead(SQLModel):
    id: int
    code: str
    role: Role
    event_id: int | None
    expires_at: datetime
    max_uses: int | None
    uses: int
    revoked_at: datetime | None


class JoinRequest(SQLModel):
    code: Text = Field(min_length=4, max_length=32)
    name: Text = Field(min_length=1, max_length=200)
    email: Text = Field(min_length=3, max_length=320)
    password: str = Field(min_length=8, max_length=200)


class Joined(SQLModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    campaign_id: str
    role: Role
    event_id: int | None
    new_account: bool


class EventCreate(SQLModel):
    title: Text = Field(min_length=1, max_length=200)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    lon: float = Field(ge=-180, le=180, description="Meeting point.")
    lat: float = Field(ge=-90, le=90)
    capacity: int = Field(ge=1, le=1000)
    turfs: int | None = Field(None, ge=0, le=1000, description="Turfs to reserve; the capacity when absent.")


class EventTurfRead(SQLModel):
    id: int
    name: str
    doors: int
    checked_out_at: datetime | None


class AttendeeRead(SQLModel):
    user_id: UUID
    name: str
    joined_at: datetime
    checked_in_at: datetime | None
    turf_id: int | None


class EventRead(SQLModel):
    id: int
    title: str
    host_id: UUID
    starts_at: datetime
    ends_at: datetime
    lon: float
    lat: float
    capacity: int
    code: str | None = Field(description="The code attendees join with.")
    turfs: list[EventTurfRead]
    attendees: list[AttendeeRead]


class EventSummary(SQLModel):
    id: int
    title: str
    host_id: UUID
    starts_at: datetime
    ends_at: datetime
    capacity: int


class CheckIn(SQLModel):
    user_id: UUID | None = Field(None, description="The attendee; the caller when absent.")
    pair_with: UUID | None = Field(None, description="Put them on this attendee's turf (hosts and organizers).")


class CheckedIn(SQLModel):
    user_id: UUID
    turf_id: int
