"""Who holds which turf: organizers assign and take back, volunteers claim and release, claims lapse; and the
turfs a host or canvasser may see for what they hold or host."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign, Membership, User
from app.campaigns.roles import Role
from app.db import begin_write, skip_locked, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.organizing.models import Event, EventTurf, TurfHistory, TurfHolding
from app.organizing.pool import ACTIVE, active_turf, distance, events_on, holders_changed, record, reserved_now
from app.precincts.models import Precinct
from app.turfs.models import Turf

# A host reads the walk lists of their launch's turfs from this long before it starts: attendees gather, get
# their turfs, and the host helps them find their way.
HOST_LEAD = timedelta(hours=1)


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
    await active_turf(session, campaign_id, turf_id)
    await _members(session, campaign_id, user_ids)
    held = set((await session.execute(select(TurfHolding.user_id).where(TurfHolding.turf_id == turf_id))).scalars())
    new = [u for u in dict.fromkeys(user_ids) if u not in held]
    if new:
        await session.execute(insert(TurfHolding), [{"campaign_id": campaign_id, "turf_id": turf_id, "user_id": u,
                                                     "via": "assigned", "since": utcnow(),
                                                     "last_activity_at": utcnow()} for u in new])
        await record(session, campaign_id, [{"turf_id": turf_id, "user_id": u, "action": "assigned",
                                             "by_user_id": by} for u in new])
        await holders_changed(session, {turf_id: len(new)})
    await session.commit()
    return await holders(session, campaign_id, turf_id=turf_id)


async def unassign(session: AsyncSession, campaign_id: int, turf_id: int, user_id: UUID, *, by: UUID | None,
                   action: str = "unassigned") -> None:
    """Take a turf back from a holder (or, as `released`, a holder gives it back). Raises NotFound."""
    await begin_write(session)
    await active_turf(session, campaign_id, turf_id)
    gone = await session.execute(delete(TurfHolding).where(TurfHolding.turf_id == turf_id,
                                                           TurfHolding.user_id == user_id))
    if not gone.rowcount:
        raise NotFound(f"That user doesn't hold turf {turf_id}.")
    await record(session, campaign_id, [{"turf_id": turf_id, "user_id": user_id, "action": action,
                                         "by_user_id": by}])
    await holders_changed(session, {turf_id: -1})
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
        await record(session, campaign_id, [{"turf_id": s.turf_id, "user_id": s.user_id, "action": "lapsed"}
                                            for s in stale])
        deltas: dict[int, int] = {}
        for s in stale:
            deltas[s.turf_id] = deltas.get(s.turf_id, 0) - 1
        await holders_changed(session, deltas)
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
    columns = (Turf.id, Turf.name, Precinct.code.label("precinct_code"), Turf.doors)
    mine = (await session.execute(
        select(*columns).join(Precinct, Precinct.id == Turf.precinct_id)
        .join(TurfHolding, TurfHolding.turf_id == Turf.id)
        .where(TurfHolding.user_id == user_id, TurfHolding.via == "claimed", Turf.campaign_id == campaign_id)
        .order_by(Turf.id).limit(1))).first()
    if mine is not None:
        await session.commit()
        return Claim(*mine, new=False)
    turf = (await session.execute(await skip_locked(session, (
        select(*columns).join(Precinct, Precinct.id == Turf.precinct_id)
        .where(Turf.campaign_id == campaign_id, Turf.status == ACTIVE, Turf.holders == 0,
               Turf.id.not_in(reserved_now(utcnow())))
        .order_by(Turf.knocks, distance(lon, lat), Turf.id).limit(1)), of=Turf))).first()
    if turf is None:
        await session.commit()
        raise Conflict("Every turf is held or reserved right now; ask an organizer.")
    now = utcnow()
    await session.execute(insert(TurfHolding).values(campaign_id=campaign_id, turf_id=turf.id, user_id=user_id,
                                                     via="claimed", since=now, last_activity_at=now))
    await record(session, campaign_id, [{"turf_id": turf.id, "user_id": user_id, "action": "claimed",
                                         "by_user_id": user_id}])
    await holders_changed(session, {turf.id: 1})
    await session.commit()
    return Claim(*turf, new=True)


async def release(session: AsyncSession, campaign_id: int, turf_id: int, user_id: UUID) -> None:
    """A holder gives a turf back. Raises NotFound when they don't hold it."""
    await unassign(session, campaign_id, turf_id, user_id, by=user_id, action="released")


# What a host or canvasser sees


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
              .where(Event.campaign_id == campaign_id, Event.host_id == user_id, *events_on(now)))
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
