"""Join codes: made by organizers and hosts (each for the roles they may hand out), revoked, and checked when
someone signs up with one (app.organizing.members.join)."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.roles import Role
from app.db import begin_write, utcnow
from app.errors import AppError, Conflict, Forbidden, Invalid, NotFound
from app.organizing.launches import get_event
from app.organizing.models import JoinCode
from app.organizing.pool import new_code

# Which roles each role may hand out in a join code.
GRANTS = {Role.admin: set(Role), Role.organizer: {Role.organizer, Role.host, Role.canvasser},
          Role.host: {Role.canvasser}}


class Gone(AppError):
    status, title, slug = 410, "No longer valid", "gone"


def live_code(found: JoinCode | None, now: datetime) -> JoinCode:
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
    code = JoinCode(campaign_id=campaign_id, code=new_code(), role=str(role), expires_at=expires_at,
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
