from datetime import datetime
from uuid import UUID

from sqlmodel import Field, SQLModel

from app.campaigns.roles import Role
from app.text import Text
from app.values import Id, Moment


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
    expires_at: Moment
    max_uses: int | None = Field(None, ge=1, le=100000)
    event_id: Id | None = None


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
    password: str = Field(min_length=8, max_length=256, description="New accounts: at least 8 characters, not a "
                                                                   "common password nor the email.")


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
    starts_at: Moment
    ends_at: Moment
    lon: float = Field(ge=-180, le=180, description="Meeting point.")
    lat: float = Field(ge=-90, le=90)
    capacity: int = Field(ge=1, le=1000)
    turfs: int | None = Field(None, ge=0, le=1000, description=(
        "Turfs to reserve, at most the capacity and the campaign's event_max_turfs; when absent, the capacity "
        "up to event_max_turfs."))


class EventUpdate(SQLModel):
    """What a host changes of an event; what is absent stays."""

    title: Text | None = Field(None, min_length=1, max_length=200)
    starts_at: Moment | None = None
    ends_at: Moment | None = None
    lon: float | None = Field(None, ge=-180, le=180, description="Meeting point.")
    lat: float | None = Field(None, ge=-90, le=90)
    capacity: int | None = Field(None, ge=1, le=1000)
    turfs: int | None = Field(None, ge=0, le=1000, description=(
        "The pool's new size: smaller releases turfs not handed out, larger reserves more nearby. When absent the "
        "pool keeps its size, down to a lowered capacity."))


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
    cancelled_at: datetime | None = Field(description="When it was cancelled; null for an event that stands.")
    code: str | None = Field(description="The code attendees join with; null once the event is cancelled.")
    turfs: list[EventTurfRead]
    attendees: list[AttendeeRead]


class EventSummary(SQLModel):
    id: int
    title: str
    host_id: UUID
    starts_at: datetime
    ends_at: datetime
    capacity: int
    cancelled_at: datetime | None = Field(description="When it was cancelled; null for an event that stands.")


class CheckIn(SQLModel):
    user_id: UUID | None = Field(None, description="The attendee; the caller when absent.")
    pair_with: UUID | None = Field(None, description="Put them on this attendee's turf (hosts and organizers).")


class CheckedIn(SQLModel):
    user_id: UUID
    turf_id: int
