"""Canvass launches listed for an organizer at a glance: one row an event, its counts taken in the same query."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import User
from app.organizing.models import Event, EventAttendee, EventTurf


@dataclass(frozen=True)
class EventSummary:
    id: int
    title: str
    starts_at: datetime
    ends_at: datetime
    host_email: str | None
    attendees: int
    turfs: int
    turfs_out: int


async def list_event_summaries(session: AsyncSession, campaign_id: int) -> list[EventSummary]:
    """Every event of a campaign, soonest first: its host's email, attendees, and turfs in its pool and out."""
    of_event = EventTurf.event_id == Event.id
    attendees = select(func.count()).where(EventAttendee.event_id == Event.id).correlate(Event).scalar_subquery()
    turfs = select(func.count()).where(of_event).correlate(Event).scalar_subquery()
    turfs_out = (select(func.count()).where(of_event, EventTurf.checked_out_at.is_not(None))
                 .correlate(Event).scalar_subquery())
    rows = await session.execute(
        select(Event.id, Event.title, Event.starts_at, Event.ends_at, User.email, attendees, turfs, turfs_out)
        .outerjoin(User, User.id == Event.host_id)
        .where(Event.campaign_id == campaign_id).order_by(Event.starts_at, Event.id))
    return [EventSummary(*row) for row in rows]
