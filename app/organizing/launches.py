"""Canvass launches: a host's event, with a pool of the free turfs nearest its meeting point reserved for it,
a join code for its attendees, and check-ins that hand them the pool's turfs."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign, User
from app.campaigns.roles import Role
from app.db import begin_write, skip_locked, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.events import EventPoolChanged, publish
from app.organizing.models import Event, EventAttendee, EventTurf, JoinCode, TurfHolding
from app.organizing.pool import ACTIVE, distance, events_on, holders_changed, new_code, record, reserved_now
from app.partial import set_given
from app.turfs.models import Turf


def _check_times(starts_at: datetime, ends_at: datetime, *, max_hours: int, max_days_ahead: int,
                 blame: str = "ends_at") -> tuple[datetime, datetime]:
    """The event's times in UTC, if they make a canvass launch. `blame` is the field named when the two don't fit
    together (the one the caller changed). Raises Invalid.

    The times are within app.values' sane range (the API's Moment), so none of this arithmetic overflows.
    """
    starts_at, ends_at = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
    now = utcnow()
    if starts_at > now + timedelta(days=max_days_ahead):
        raise Invalid(f"starts_at: an event starts at most {max_days_ahead} days ahead", field="starts_at")
    if ends_at <= starts_at:
        raise Invalid("ends_at must come after starts_at", field=blame)
    if ends_at - starts_at > timedelta(hours=max_hours):
        raise Invalid(f"an event lasts at most {max_hours} hours", field=blame)
    if ends_at <= now:
        raise Invalid("the event would be over already", field="ends_at")
    return starts_at, ends_at


async def _pool_size(session: AsyncSession, campaign_id: int, *, capacity: int, turfs: int | None,
                     host: UUID | None = None, event_id: int | None = None) -> int:
    """How many turfs an event's pool may hold: `turfs`, or the capacity when absent, within the capacity and the
    campaign's event_max_turfs.

    An explicit `turfs` past a bound is refused (Invalid), not clamped: a host who asked for 30 and silently got
    20 would find out at the door; when absent the bound is only the default's ceiling.

    With `host` (a volunteer host, not field staff), the bound holds for all their live events together, this
    one (`event_id`) aside: one host making many events of the bound each would otherwise reserve a city again.
    Raises Conflict when their other live events hold the whole bound already.
    """
    most = await session.scalar(select(Campaign.event_max_turfs).where(Campaign.id == campaign_id))
    assert most is not None
    if turfs is not None and turfs > capacity:
        raise Invalid(f"turfs: at most the capacity, {capacity} (a turf per attendee)", field="turfs")
    if turfs is not None and turfs > most:
        raise Invalid(f"turfs: an event of this campaign reserves at most {most}", field="turfs")
    size = min(capacity, most) if turfs is None else turfs
    if host is None:
        return size
    elsewhere = await session.scalar(
        select(func.count()).select_from(EventTurf).join(Event, Event.id == EventTurf.event_id)
        .where(Event.campaign_id == campaign_id, Event.host_id == host, Event.id != (event_id or 0),
               *events_on(utcnow()), EventTurf.checked_out_at.is_(None))) or 0
    if elsewhere >= most:
        raise Conflict(f"Your other live events reserve {elsewhere} turfs not yet handed out, the most a host may "
                       f"({most}): hand them out, or change or cancel an event.")
    if turfs is not None and turfs > most - elsewhere:
        raise Invalid(f"turfs: at most {most - elsewhere}; your other live events reserve {elsewhere} of the "
                      f"{most} a host may", field="turfs")
    return min(size, most - elsewhere)


async def _reserve(session: AsyncSession, campaign_id: int, event: Event, n: int) -> None:
    """Add to the event's pool up to `n` of the unworked, unheld, unreserved turfs nearest its meeting point."""
    if n <= 0:
        return
    pool = (await session.execute(await skip_locked(session, (
        select(Turf.id).where(Turf.campaign_id == campaign_id, Turf.status == ACTIVE, Turf.holders == 0,
                              Turf.knocks == 0, Turf.id.not_in(reserved_now(utcnow())),
                              # Its own turfs handed out and given back since: in the pool already.
                              Turf.id.not_in(select(EventTurf.turf_id).where(EventTurf.event_id == event.id)))
        .order_by(distance(event.lon, event.lat), Turf.id).limit(n))))).scalars().all()
    if pool:
        await session.execute(insert(EventTurf), [{"event_id": event.id, "turf_id": t} for t in pool])


async def create_event(session: AsyncSession, campaign_id: int, *, host: UUID, title: str, starts_at: datetime,
                       ends_at: datetime, lon: float, lat: float, capacity: int, turfs: int | None,
                       max_hours: int, max_days_ahead: int, role: Role | None = None) -> Event:
    """A host's canvass launch, with a pool of the unworked, unheld turfs nearest the meeting point.

    Raises Invalid for times out of order, longer than `max_hours` or starting past `max_days_ahead`, and for a
    pool past the capacity or the campaign's event_max_turfs.
    """
    starts_at, ends_at = _check_times(starts_at, ends_at, max_hours=max_hours, max_days_ahead=max_days_ahead)
    await begin_write(session)
    size = await _pool_size(session, campaign_id, capacity=capacity, turfs=turfs,
                            host=host if role == Role.host else None)
    event = Event(campaign_id=campaign_id, host_id=host, title=title.strip(), starts_at=starts_at, ends_at=ends_at,
                  lon=lon, lat=lat, capacity=capacity)
    session.add(event)
    await session.flush()
    await _reserve(session, campaign_id, event, size)
    code = JoinCode(campaign_id=campaign_id, code=new_code(), role=str(Role.canvasser), event_id=event.id,
                    expires_at=ends_at, max_uses=capacity, created_by=host)
    session.add(code)
    await session.commit()
    return event


async def get_event(session: AsyncSession, campaign_id: int, event_id: int, *, for_update: bool = False) -> Event:
    query = select(Event).where(Event.campaign_id == campaign_id, Event.id == event_id)
    if for_update:
        query = query.with_for_update()
    event = (await session.execute(query)).scalar_one_or_none()
    if event is None:
        raise NotFound(f"No event {event_id} in this campaign.")
    return event


async def visible_event(session: AsyncSession, campaign_id: int, event_id: int, *, user: UUID | None,
                        role: Role | None, for_update: bool = False) -> Event:
    """The event, if the caller may see it: organizers any, a host their own. Raises NotFound otherwise."""
    event = await get_event(session, campaign_id, event_id, for_update=for_update)
    if role == Role.host and event.host_id != user:
        raise NotFound(f"No event {event_id} in this campaign.")
    return event


async def update_event(session: AsyncSession, campaign_id: int, event_id: int, *, user: UUID | None,
                       role: Role | None, title: str | None = None, starts_at: datetime | None = None,
                       ends_at: datetime | None = None, lon: float | None = None, lat: float | None = None,
                       capacity: int | None = None, turfs: int | None = None, max_hours: int,
                       max_days_ahead: int) -> Event:
    """Change an event; what is None stays. Its join code follows the new end and capacity.

    The pool takes `turfs` as its new size (absent: it keeps its size, down to a lowered capacity), within the
    bounds create_event keeps: a smaller pool releases the turfs not handed out farthest from the meeting point, a
    larger one reserves the free turfs nearest it. A new meeting point moves no turf already in the pool.

    Raises NotFound (another host's event), Conflict (cancelled or over), Invalid (as create_event, or a pool
    smaller than the turfs already checked out).
    """
    await begin_write(session)
    # Locked: a check-in or another change of this event waits, so the pool's count holds until commit.
    event = await visible_event(session, campaign_id, event_id, user=user, role=role, for_update=True)
    if event.cancelled_at is not None:
        raise Conflict("The event was cancelled.")
    if event.ends_at <= utcnow():
        raise Conflict("The event is over.")
    if starts_at is not None or ends_at is not None:
        event.starts_at, event.ends_at = _check_times(
            starts_at or event.starts_at, ends_at or event.ends_at, max_hours=max_hours,
            max_days_ahead=max_days_ahead, blame="ends_at" if ends_at is not None else "starts_at")
    set_given(event, title=title.strip() if title is not None else None, lon=lon, lat=lat, capacity=capacity)
    rows = (await session.execute(select(EventTurf.checked_out_at).where(EventTurf.event_id == event.id))
            ).scalars().all()
    size, out = len(rows), sum(1 for at in rows if at is not None)
    target = (min(size, event.capacity) if turfs is None
              else await _pool_size(session, campaign_id, capacity=event.capacity, turfs=turfs,
                                    host=event.host_id if role == Role.host else None, event_id=event.id))
    if target < out:
        raise Invalid(f"{out} of the event's turfs are checked out already: the pool can't be smaller",
                      field="turfs" if turfs is not None else "capacity")
    if target < size:
        far = (await session.execute(
            select(EventTurf.id).join(Turf, Turf.id == EventTurf.turf_id)
            .where(EventTurf.event_id == event.id, EventTurf.checked_out_at.is_(None))
            .order_by(distance(event.lon, event.lat).desc(), EventTurf.id.desc()).limit(size - target))
               ).scalars().all()
        await session.execute(delete(EventTurf).where(EventTurf.id.in_(far)))
    else:
        await _reserve(session, campaign_id, event, target - size)
    if target != size:
        await publish(session, EventPoolChanged(campaign_id, event_id=event.id))
    code = await _event_code(session, event.id, JoinCode.id)
    if code is not None:
        await session.execute(update(JoinCode).where(JoinCode.id == code).values(
            expires_at=event.ends_at, max_uses=event.capacity).execution_options(synchronize_session=False))
    await session.commit()
    return event


async def cancel_event(session: AsyncSession, campaign_id: int, event_id: int, *, user: UUID | None,
                       role: Role | None) -> Event:
    """Cancel an event: it is over at once. The turfs of its pool not handed out go back (claims and other events
    may take them), and its join codes stop working. Turfs already checked out stay with the attendees holding
    them, as when an event ends: an organizer takes them back. Cancelling it again changes nothing.

    Raises NotFound for another host's event.
    """
    await begin_write(session)
    event = await visible_event(session, campaign_id, event_id, user=user, role=role, for_update=True)
    if event.cancelled_at is None:
        now = utcnow()
        event.cancelled_at = now
        await session.execute(delete(EventTurf).where(EventTurf.event_id == event.id,
                                                      EventTurf.checked_out_at.is_(None)))
        await session.execute(update(JoinCode).where(JoinCode.event_id == event.id, JoinCode.revoked_at.is_(None))
                              .values(revoked_at=now).execution_options(synchronize_session=False))
        await publish(session, EventPoolChanged(campaign_id, event_id=event.id))
    await session.commit()
    return event


async def _event_code(session: AsyncSession, event_id: int | None, column: Any) -> Any:
    """`column` (its id, its code) of the code an event's attendees join with: its first one not revoked."""
    return await session.scalar(select(column).where(JoinCode.event_id == event_id, JoinCode.revoked_at.is_(None))
                                .order_by(JoinCode.id).limit(1))


async def list_events(session: AsyncSession, campaign_id: int, *, user: UUID | None,
                      role: Role | None) -> list[Event]:
    query = select(Event).where(Event.campaign_id == campaign_id).order_by(Event.starts_at, Event.id)
    if role == Role.host:
        query = query.where(Event.host_id == user)
    return list((await session.execute(query)).scalars())


async def event_detail(session: AsyncSession, event: Event) -> dict[str, Any]:
    """An event's code, its turf pool and its attendees."""
    code = await _event_code(session, event.id, JoinCode.code)
    turfs = (await session.execute(select(Turf.id, Turf.name, Turf.doors, EventTurf.checked_out_at)
                                   .join(Turf, Turf.id == EventTurf.turf_id)
                                   .where(EventTurf.event_id == event.id).order_by(Turf.id))).all()
    attendees = (await session.execute(select(EventAttendee.user_id, User.name, EventAttendee.joined_at,
                                              EventAttendee.checked_in_at, EventAttendee.turf_id)
                                       .join(User, User.id == EventAttendee.user_id)
                                       .where(EventAttendee.event_id == event.id).order_by(EventAttendee.id))).all()
    return {"code": code, "turfs": turfs, "attendees": attendees}


async def check_in(session: AsyncSession, campaign_id: int, event_id: int, user_id: UUID, *, by: UUID,
                   pair_with: UUID | None = None) -> int:
    """Check an attendee in and hand them a turf from the event's pool; returns its id.

    Two attendees never get one turf unless the host pairs them (`pair_with`: an attendee already out).
    Raises NotFound for a non-attendee, Conflict when the pool is empty or the event is over or cancelled.
    """
    await begin_write(session)
    # Shared: check-ins go on side by side, while a change or a cancellation of the event waits for them.
    event = (await session.execute(select(Event).where(Event.campaign_id == campaign_id, Event.id == event_id)
                                   .with_for_update(read=True))).scalar_one_or_none()
    if event is None:
        raise NotFound(f"No event {event_id} in this campaign.")
    now = utcnow()
    if event.cancelled_at is not None:
        raise Conflict("The event was cancelled; its turfs went back to the pool.")
    if event.ends_at <= now:
        raise Conflict("The event is over; its turfs went back to the pool.")
    attendee = (await session.execute(select(EventAttendee).where(EventAttendee.event_id == event_id,
                                                                  EventAttendee.user_id == user_id))
                ).scalar_one_or_none()
    if attendee is None:
        raise NotFound("That person hasn't joined this event.")
    if user_id == event.host_id:
        # A host checked out at their own launch would keep turfs (and their walk lists) past its end, one
        # event at a time: the host runs it, the pool is for attendees.
        raise Conflict("The host runs this event; its turfs are for the people who join it.")
    if attendee.turf_id is not None:
        await session.commit()
        return attendee.turf_id
    if pair_with is not None:
        partner = (await session.execute(select(EventAttendee.turf_id).where(
            EventAttendee.event_id == event_id, EventAttendee.user_id == pair_with))).scalar_one_or_none()
        if partner is None:
            raise Invalid("pair_with must be an attendee who has a turf already", field="pair_with")
        turf_id = partner
    else:
        slot = (await session.execute(await skip_locked(session, (
            select(EventTurf).join(Turf, Turf.id == EventTurf.turf_id)
            .where(EventTurf.event_id == event_id, EventTurf.checked_out_at.is_(None), Turf.status == ACTIVE)
            .order_by(distance(event.lon, event.lat), EventTurf.id).limit(1))))).scalar_one_or_none()
        if slot is None:
            raise Conflict("Every turf of this event is out; pair this person with someone.")
        slot.checked_out_at = now
        turf_id = slot.turf_id
    attendee.checked_in_at, attendee.turf_id = now, turf_id
    session.add(TurfHolding(campaign_id=campaign_id, turf_id=turf_id, user_id=user_id, via="event",
                            event_id=event_id))
    await session.flush()
    await record(session, campaign_id, [{"turf_id": turf_id, "user_id": user_id, "action": "checked_out",
                                         "by_user_id": by, "event_id": event_id}])
    await holders_changed(session, {turf_id: 1})
    await session.commit()
    return turf_id
