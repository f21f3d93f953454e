"""Getting turf into volunteers' hands: organizers assign, volunteers claim, hosts run canvass launches.

Every change of who holds a turf writes `turf_history` (append-only) and keeps `turf.holders`.
"""

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.passwords import check_password, hash_password, password_matches
from app.auth.service import open_session
from app.auth.sessions import end_sessions
from app.campaigns.models import Campaign, Membership, Role, User
from app.campaigns.service import add_member, find_user, normal_email, note_change
from app.db import begin_write, utcnow
from app.errors import AppError, Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from app.organizing.models import Event, EventAttendee, EventTurf, JoinCode, TurfHistory, TurfHolding
from app.precincts.models import Precinct
from app.turfs.models import Turf
from app.webhooks import service as webhooks

ACTIVE = "active"


class Gone(AppError):
    status, title, slug = 410, "No longer valid", "gone"


# History

# Holding changes that hand a turf to someone: webhooks hear of them as turf.assigned.
ASSIGNED = frozenset({"assigned", "claimed", "checked_out"})


async def _record(session: AsyncSession, campaign_id: int, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        at = utcnow()
        await session.execute(insert(TurfHistory), [{"campaign_id": campaign_id, "at": at, **r} for r in rows])
        await note_change(session, campaign_id)
        taken = [r for r in rows if r["action"] in ASSIGNED]
        if taken and (hooks := (await webhooks.subscribed(session, campaign_id)).get("turf.assigned")):
            await webhooks.enqueue(session, hooks, "turf.assigned", [
                {"turf_id": r["turf_id"], "user_id": str(r["user_id"]), "action": r["action"],
                 "event_id": r.get("event_id")} for r in taken])


async def _holders_changed(session: AsyncSession, deltas: dict[int, int]) -> None:
    """Add each turf's change of holders to its stored count.

    An increment, not a recount: concurrent changes to one turf queue on its row lock and add up, where a
    recount could miss a holding another transaction hasn't committed yet.
    """
    for turf_id, delta in sorted(deltas.items()):
        if delta:
            await session.execute(update(Turf).where(Turf.id == turf_id).values(holders=Turf.holders + delta)
                                  .execution_options(synchronize_session=False))


def _on(now: datetime) -> tuple[Any, ...]:
    """The events still on: not over, not cancelled. Everything that reads a pool goes by it."""
    return Event.ends_at > now, Event.cancelled_at.is_(None)


def _reserved_now(now: datetime) -> Any:
    """Turfs a running or coming event holds in its pool, not yet checked out."""
    return (select(EventTurf.turf_id).join(Event, Event.id == EventTurf.event_id)
            .where(*_on(now), EventTurf.checked_out_at.is_(None)))


async def _active_turf(session: AsyncSession, campaign_id: int, turf_id: int) -> None:
    """Check the campaign has this turf, active. Raises NotFound, Conflict."""
    status = await session.scalar(select(Turf.status).where(Turf.campaign_id == campaign_id, Turf.id == turf_id))
    if status is None:
        raise NotFound(f"No turf {turf_id} in this campaign.")
    if status != ACTIVE:
        raise Conflict(f"Turf {turf_id} is archived.")


async def _members(session: AsyncSession, campaign_id: int, user_ids: Sequence[UUID]) -> None:
    found = set((await session.execute(select(Membership.user_id).where(
        Membership.campaign_id == campaign_id, Membership.user_id.in_(list(user_ids))))).scalars())
    missing = [str(u) for u in user_ids if u not in found]
    if missing:
        raise Invalid(f"not members of this campaign: {', '.join(missing)}", field="user_ids")


# Assignment by organizers


async def assign(session: AsyncSession, campaign_id: int, turf_id: int, user_ids: Sequence[UUID], *,
                 by: UUID | None) -> list[Any]:
    """Give a turf to members (it may be held by several: a pair). Already holding is no change."""
    await begin_write(session)
    await _active_turf(session, campaign_id, turf_id)
    await _members(session, campaign_id, user_ids)
    held = set((await session.execute(select(TurfHolding.user_id).where(TurfHolding.turf_id == turf_id))).scalars())
    new = [u for u in dict.fromkeys(user_ids) if u not in held]
    if new:
        await session.execute(insert(TurfHolding), [{"campaign_id": campaign_id, "turf_id": turf_id, "user_id": u,
                                                     "via": "assigned", "since": utcnow(),
                                                     "last_activity_at": utcnow()} for u in new])
        await _record(session, campaign_id, [{"turf_id": turf_id, "user_id": u, "action": "assigned",
                                              "by_user_id": by} for u in new])
        await _holders_changed(session, {turf_id: len(new)})
    await session.commit()
    return await holders(session, campaign_id, turf_id=turf_id)


async def unassign(session: AsyncSession, campaign_id: int, turf_id: int, user_id: UUID, *, by: UUID | None,
                   action: str = "unassigned") -> None:
    """Take a turf back from a holder (or, as `released`, a holder gives it back). Raises NotFound."""
    await begin_write(session)
    await _active_turf(session, campaign_id, turf_id)
    gone = await session.execute(delete(TurfHolding).where(TurfHolding.turf_id == turf_id,
                                                           TurfHolding.user_id == user_id))
    if not gone.rowcount:
        raise NotFound(f"That user doesn't hold turf {turf_id}.")
    await _record(session, campaign_id, [{"turf_id": turf_id, "user_id": user_id, "action": action,
                                          "by_user_id": by}])
    await _holders_changed(session, {turf_id: -1})
    await session.commit()


async def holders(session: AsyncSession, campaign_id: int, *, turf_id: int | None = None,
                  user_id: UUID | None = None) -> list[Any]:
    """Who holds what: holdings with the turf's name and the holder's name and email."""
    query = (select(TurfHolding.turf_id, Turf.name.label("turf_name"), TurfHolding.user_id, User.name, User.email,
                    TurfHolding.via, TurfHolding.event_id, TurfHolding.since, TurfHolding.last_activity_at)
             .join(Turf, Turf.id == TurfHolding.turf_id).join(User, User.id == TurfHolding.user_id)
             .where(TurfHolding.campaign_id == campaign_id).order_by(TurfHolding.turf_id, User.email))
    if turf_id is not None:
        query = query.where(TurfHolding.turf_id == turf_id)
    if user_id is not None:
        query = query.where(TurfHolding.user_id == user_id)
    return list((await session.execute(query)).all())


async def history(session: AsyncSession, campaign_id: int, *, turf_id: int | None = None) -> list[Any]:
    query = (select(TurfHistory).where(TurfHistory.campaign_id == campaign_id)
             .order_by(TurfHistory.at, TurfHistory.id))
    if turf_id is not None:
        query = query.where(TurfHistory.turf_id == turf_id)
    return list((await session.execute(query)).scalars())


# Claims


async def lapse_claims(session: AsyncSession, campaign_id: int, *, hours: int, now: datetime | None = None) -> int:
    """End claims with no activity for `hours`; the turfs go back to the pool. Flushes only."""
    cutoff = (now or utcnow()) - timedelta(hours=hours)
    stale = (await session.execute(delete(TurfHolding).where(
        TurfHolding.campaign_id == campaign_id, TurfHolding.via == "claimed", TurfHolding.last_activity_at < cutoff)
        .returning(TurfHolding.turf_id, TurfHolding.user_id))).all()
    if stale:
        await _record(session, campaign_id, [{"turf_id": s.turf_id, "user_id": s.user_id, "action": "lapsed"}
                                             for s in stale])
        deltas: dict[int, int] = {}
        for s in stale:
            deltas[s.turf_id] = deltas.get(s.turf_id, 0) - 1
        await _holders_changed(session, deltas)
    return len(stale)


@dataclass(frozen=True)
class Claim:
    turf_id: int
    name: str
    precinct_code: str
    doors: int
    new: bool


async def claim(session: AsyncSession, campaign: Campaign, user_id: UUID, *, lon: float, lat: float) -> Claim:
    """Give a volunteer the nearest unheld turf, the least worked first; their open claim if they have one.

    Under concurrent claims no turf is handed out twice: on PostgreSQL the candidate row is locked with
    FOR UPDATE SKIP LOCKED, so a second claimer takes the next one; SQLite runs writers one at a time.
    Raises Conflict when no turf is free. A hot path: plain statements, only the columns needed.
    """
    assert campaign.id is not None
    campaign_id = campaign.id
    await begin_write(session)
    await lapse_claims(session, campaign_id, hours=campaign.claim_lapse_hours)
    columns = (Turf.id, Turf.name, Precinct.code, Turf.doors)
    mine = (await session.execute(
        select(*columns).join(Precinct, Precinct.id == Turf.precinct_id)
        .join(TurfHolding, TurfHolding.turf_id == Turf.id)
        .where(TurfHolding.user_id == user_id, TurfHolding.via == "claimed", Turf.campaign_id == campaign_id)
        .order_by(Turf.id).limit(1))).first()
    if mine is not None:
        await session.commit()
        return Claim(*mine, new=False)
    turf = (await session.execute(
        select(*columns).join(Precinct, Precinct.id == Turf.precinct_id)
        .where(Turf.campaign_id == campaign_id, Turf.status == ACTIVE, Turf.holders == 0,
               Turf.id.not_in(_reserved_now(utcnow())))
        .order_by(Turf.knocks, _distance(lon, lat), Turf.id).limit(1)
        .with_for_update(of=Turf, skip_locked=True))).first()
    if turf is None:
        await session.commit()
        raise Conflict("Every turf is held or reserved right now; ask an organizer.")
    now = utcnow()
    await session.execute(insert(TurfHolding).values(campaign_id=campaign_id, turf_id=turf.id, user_id=user_id,
                                                     via="claimed", since=now, last_activity_at=now))
    await _record(session, campaign_id, [{"turf_id": turf.id, "user_id": user_id, "action": "claimed",
                                          "by_user_id": user_id}])
    await _holders_changed(session, {turf.id: 1})
    await session.commit()
    return Claim(*turf, new=True)


async def release(session: AsyncSession, campaign_id: int, turf_id: int, user_id: UUID) -> None:
    """A holder gives a turf back. Raises NotFound when they don't hold it."""
    await unassign(session, campaign_id, turf_id, user_id, by=user_id, action="released")


async def remove_member(session: AsyncSession, campaign_id: int, user_id: UUID, *, by: UUID | None) -> None:
    """Take a member out of a campaign: the turfs they hold there go back (with history), the join codes they
    made there stop, and every login session of theirs ends (their refresh tokens are refused; their access
    tokens are a 404 in this campaign, as any campaign not theirs).

    Raises NotFound for someone not a member, Conflict for the campaign's last admin.
    """
    await begin_write(session)
    membership = (await session.execute(select(Membership).where(
        Membership.campaign_id == campaign_id, Membership.user_id == user_id))).scalar_one_or_none()
    if membership is None:
        raise NotFound(f"No member {user_id} in this campaign.")
    if membership.role == Role.admin:
        admins = await session.scalar(select(func.count()).select_from(Membership).where(
            Membership.campaign_id == campaign_id, Membership.role == Role.admin))
        if admins == 1:
            raise Conflict("This is the campaign's last admin; make another admin first.")
    held = (await session.execute(delete(TurfHolding).where(
        TurfHolding.campaign_id == campaign_id, TurfHolding.user_id == user_id)
        .returning(TurfHolding.turf_id))).scalars().all()
    if held:
        await _record(session, campaign_id, [{"turf_id": turf_id, "user_id": user_id, "action": "unassigned",
                                              "by_user_id": by} for turf_id in held])
        await _holders_changed(session, dict.fromkeys(held, -1))
    await session.execute(update(JoinCode).where(JoinCode.campaign_id == campaign_id, JoinCode.created_by == user_id,
                                                 JoinCode.revoked_at.is_(None)).values(revoked_at=utcnow())
                          .execution_options(synchronize_session=False))
    await session.delete(membership)
    await end_sessions(session, user_id, reason="removed", cut_off=False)
    await session.commit()


# Join codes and sign-up

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed on phones
# Which roles each role may hand out in a join code.
GRANTS = {Role.admin: set(Role), Role.organizer: {Role.organizer, Role.host, Role.canvasser},
          Role.host: {Role.canvasser}}


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))


async def create_join_code(session: AsyncSession, campaign_id: int, *, role: Role, expires_at: datetime,
                           max_uses: int | None, event_id: int | None, by: UUID, by_role: Role) -> JoinCode:
    """Make a join code. Raises Forbidden for a role the maker can't grant, Invalid for a bad expiry or event."""
    if role not in GRANTS.get(by_role, set()):
        raise Forbidden(f"A {by_role} can't hand out the role {role}.")
    if expires_at <= utcnow():
        raise Invalid("expires_at is in the past", field="expires_at")
    if event_id is not None:
        event = await get_event(session, campaign_id, event_id)
        if by_role == Role.host and event.host_id != by:
            raise NotFound(f"No event {event_id} of yours.")
        if event.cancelled_at is not None or event.ends_at <= utcnow():
            raise Conflict(f"Event {event_id} is over or cancelled: nobody can join it.")
    await begin_write(session)
    code = JoinCode(campaign_id=campaign_id, code=_new_code(), role=str(role), expires_at=expires_at,
                    max_uses=max_uses, event_id=event_id, created_by=by)
    session.add(code)
    await session.commit()
    return code


async def list_join_codes(session: AsyncSession, campaign_id: int, *, by: UUID, by_role: Role) -> list[JoinCode]:
    """An organizer's view: every code; a host's: their own."""
    query = select(JoinCode).where(JoinCode.campaign_id == campaign_id).order_by(JoinCode.id)
    if by_role == Role.host:
        query = query.where(JoinCode.created_by == by)
    return list((await session.execute(query)).scalars())


async def revoke_join_code(session: AsyncSession, campaign_id: int, code_id: int, *, by: UUID,
                           by_role: Role) -> JoinCode:
    await begin_write(session)
    code = (await session.execute(select(JoinCode).where(JoinCode.campaign_id == campaign_id,
                                                         JoinCode.id == code_id))).scalar_one_or_none()
    if code is None or (by_role == Role.host and code.created_by != by):
        raise NotFound(f"No join code {code_id}.")
    if code.revoked_at is None:
        code.revoked_at = utcnow()
    await session.commit()
    return code


@dataclass(frozen=True)
class Joined:
    token: str
    user_id: UUID
    campaign: Campaign
    role: str
    event_id: int | None
    new_account: bool
    refresh_token: str = ""


# The same whether the email has an account or not, so a join can't tell anyone which emails have one.
CANT_JOIN = "This email and password can't be used; if the email has an account, give its password."


def _live_code(found: JoinCode | None, now: datetime) -> JoinCode:
    """Raises NotFound for no code, Gone for a revoked, expired or used-up one."""
    if found is None:
        raise NotFound("No such join code.")
    if found.revoked_at is not None:
        raise Gone("This join code was revoked.")
    if found.expires_at <= now:
        raise Gone("This join code has expired.")
    if found.max_uses is not None and found.uses >= found.max_uses:
        raise Gone("This join code has been used up.")
    return found


async def join(session: AsyncSession, *, code: str, name: str, email: str, password: str, secret: str,
               minutes: int, refresh_days: int = 30) -> Joined:
    """Sign up with a join code: make the account (or, with its password, add to an existing one) and log in,
    starting a login session.

    Raises NotFound for an unknown code, Gone for an expired, used-up or revoked one (nothing is created, and
    no password is hashed), Invalid for a password the policy refuses, Unauthenticated (CANT_JOIN) for an
    existing account's wrong password.
    """
    email = normal_email(email)
    code = code.strip().upper()
    # The code first: a bad one costs no argon2 work, so unauthenticated calls can't queue hashing for free.
    _live_code((await session.execute(select(JoinCode).where(JoinCode.code == code))).scalar_one_or_none(), utcnow())
    # The policy knows nothing of accounts, so it refuses a password alike whether the email has one or not.
    check_password(password, email=email)
    known = await find_user(session, email)
    if known is not None:
        session.expunge(known)
    # End the reads before argon2 works (no pooled connection held in a transaction meanwhile), and before the
    # write transaction: no writer waits on it. Exactly one hash or one check either way, so both take as long.
    await session.rollback()
    if known is not None and (not await password_matches(known.password_hash, password)
                              or known.disabled_at is not None):
        raise Unauthenticated(CANT_JOIN)
    hashed = await hash_password(password) if known is None else None
    await begin_write(session)
    found = _live_code((await session.execute(select(JoinCode).where(JoinCode.code == code))).scalar_one_or_none(),
                       utcnow())
    user = await find_user(session, email)
    new_account = user is None
    if user is not None and known is None:
        # Made by a sign-up that raced this one: no password check while the write lock is held; a retry checks.
        raise Unauthenticated(CANT_JOIN)
    # Counted in the row itself, so two people racing for the last use can't both have it.
    used = await session.execute(update(JoinCode).where(JoinCode.id == found.id, or_(
        JoinCode.max_uses.is_(None), JoinCode.uses < JoinCode.max_uses)).values(uses=JoinCode.uses + 1))
    if not used.rowcount:
        raise Gone("This join code has been used up.")
    campaign = await session.get(Campaign, found.campaign_id)
    assert campaign is not None
    existing = (await session.execute(select(Membership).where(
        Membership.campaign_id == campaign.id, Membership.user_id == user.id))).scalar_one_or_none() if user else None
    # A join code never lowers a role someone already has.
    role = existing.role if existing is not None else found.role
    user, _ = await add_member(session, campaign, email, role, name=name if user is None else None,
                               password_hash=hashed if user is None else None, commit=False)
    if found.event_id is not None:
        attending = await session.scalar(select(EventAttendee.id).where(EventAttendee.event_id == found.event_id,
                                                                         EventAttendee.user_id == user.id))
        if attending is None:
            session.add(EventAttendee(event_id=found.event_id, user_id=user.id))
    tokens = await open_session(session, user.id, secret=secret, minutes=minutes, days=refresh_days, commit=False)
    await session.commit()
    return Joined(token=tokens.access_token, user_id=user.id, campaign=campaign, role=role, event_id=found.event_id,
                  new_account=new_account, refresh_token=tokens.refresh_token)


# Canvass launches

# A host reads the walk lists of their launch's turfs from this long before it starts: attendees gather, get
# their turfs, and the host helps them find their way.
HOST_LEAD = timedelta(hours=1)


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
               Event.ends_at > utcnow(), Event.cancelled_at.is_(None), EventTurf.checked_out_at.is_(None))) or 0
    if elsewhere >= most:
        raise Conflict(f"Your other live events reserve {elsewhere} turfs not yet handed out, the most a host may "
                       f"({most}): hand them out, or change or cancel an event.")
    if turfs is not None and turfs > most - elsewhere:
        raise Invalid(f"turfs: at most {most - elsewhere}; your other live events reserve {elsewhere} of the "
                      f"{most} a host may", field="turfs")
    return min(size, most - elsewhere)


def _distance(lon: float, lat: float) -> Any:
    """Squared distance of a turf's bounding-box centre from a point, in degrees scaled to equal metres."""
    scale = math.cos(math.radians(lat))
    dx = ((Turf.min_lon + Turf.max_lon) / 2 - lon) * scale
    dy = (Turf.min_lat + Turf.max_lat) / 2 - lat
    return dx * dx + dy * dy


async def _reserve(session: AsyncSession, campaign_id: int, event: Event, n: int) -> None:
    """Add to the event's pool up to `n` of the unworked, unheld, unreserved turfs nearest its meeting point."""
    if n <= 0:
        return
    pool = (await session.execute(
        select(Turf.id).where(Turf.campaign_id == campaign_id, Turf.status == ACTIVE, Turf.holders == 0,
                              Turf.knocks == 0, Turf.id.not_in(_reserved_now(utcnow())),
                              # Its own turfs handed out and given back since: in the pool already.
                              Turf.id.not_in(select(EventTurf.turf_id).where(EventTurf.event_id == event.id)))
        .order_by(_distance(event.lon, event.lat), Turf.id).limit(n)
        .with_for_update(skip_locked=True))).scalars().all()
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
    code = JoinCode(campaign_id=campaign_id, code=_new_code(), role=str(Role.canvasser), event_id=event.id,
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
    if title is not None:
        event.title = title.strip()
    if lon is not None:
        event.lon = lon
    if lat is not None:
        event.lat = lat
    if capacity is not None:
        event.capacity = capacity
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
            .order_by(_distance(event.lon, event.lat).desc(), EventTurf.id.desc()).limit(size - target))
               ).scalars().all()
        await session.execute(delete(EventTurf).where(EventTurf.id.in_(far)))
    else:
        await _reserve(session, campaign_id, event, target - size)
    if target != size:
        await note_change(session, campaign_id)  # progress of the event reads its pool
    code = await _event_code(session, event.id)
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
        await note_change(session, campaign_id)
    await session.commit()
    return event


async def _event_code(session: AsyncSession, event_id: int | None) -> int | None:
    """The id of the code an event's attendees join with: its first one not revoked."""
    return await session.scalar(select(JoinCode.id).where(JoinCode.event_id == event_id, JoinCode.revoked_at.is_(
        None)).order_by(JoinCode.id).limit(1))


async def list_events(session: AsyncSession, campaign_id: int, *, user: UUID | None,
                      role: Role | None) -> list[Event]:
    query = select(Event).where(Event.campaign_id == campaign_id).order_by(Event.starts_at, Event.id)
    if role == Role.host:
        query = query.where(Event.host_id == user)
    return list((await session.execute(query)).scalars())


async def event_detail(session: AsyncSession, event: Event) -> dict[str, Any]:
    """An event's code, its turf pool and its attendees."""
    code = await session.scalar(select(JoinCode.code).where(JoinCode.event_id == event.id, JoinCode.revoked_at.is_(
        None)).order_by(JoinCode.id).limit(1))
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
        slot = (await session.execute(
            select(EventTurf).join(Turf, Turf.id == EventTurf.turf_id)
            .where(EventTurf.event_id == event_id, EventTurf.checked_out_at.is_(None), Turf.status == ACTIVE)
            .order_by(_distance(event.lon, event.lat), EventTurf.id).limit(1)
            .with_for_update(skip_locked=True))).scalar_one_or_none()
        if slot is None:
            raise Conflict("Every turf of this event is out; pair this person with someone.")
        slot.checked_out_at = now
        turf_id = slot.turf_id
    attendee.checked_in_at, attendee.turf_id = now, turf_id
    session.add(TurfHolding(campaign_id=campaign_id, turf_id=turf_id, user_id=user_id, via="event",
                            event_id=event_id))
    await session.flush()
    await _record(session, campaign_id, [{"turf_id": turf_id, "user_id": user_id, "action": "checked_out",
                                          "by_user_id": by, "event_id": event_id}])
    await _holders_changed(session, {turf_id: 1})
    await session.commit()
    return turf_id


async def turf_ids_visible(session: AsyncSession, campaign_id: int, user_id: UUID, role: Role, *,
                           people: bool = False) -> Any:
    """A select of the turf ids a host or canvasser may see: those they hold and, for a host, the pools of their
    events still on (names and counts, to run the launch).

    With `people` (a walk list, a turf's households) a host's events give only the turfs checked out at them,
    from HOST_LEAD before the start to the end: a host reads the doors their attendees walk, while they walk them.
    """
    held = select(TurfHolding.turf_id).where(TurfHolding.campaign_id == campaign_id, TurfHolding.user_id == user_id)
    if role != Role.host:
        return held
    now = utcnow()
    hosted = (select(EventTurf.turf_id).join(Event, Event.id == EventTurf.event_id)
              .where(Event.campaign_id == campaign_id, Event.host_id == user_id, *_on(now)))
    if people:
        hosted = hosted.where(EventTurf.checked_out_at.is_not(None), Event.starts_at <= now + HOST_LEAD)
    return held.union(hosted)


async def turfs_visible_to(session: AsyncSession, access: Any, *, people: bool = False) -> Any:
    """The turf ids the caller may see (turf_ids_visible, `people` for voters' data) for a host or canvasser;
    None for organizers, admins and API keys, who see every turf of the campaign."""
    if access.role in (Role.host, Role.canvasser):
        assert access.caller.user_id is not None
        return await turf_ids_visible(session, access.campaign_id, access.caller.user_id, access.role,
                                      people=people)
    return None

