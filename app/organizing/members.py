"""Volunteers come and go: signing up with a join code, and an admin taking a member out of a campaign."""

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.passwords import check_password, hash_password, password_matches
from app.auth.service import open_session
from app.auth.sessions import end_sessions
from app.campaigns.models import Campaign, Membership
from app.campaigns.roles import Role
from app.campaigns.service import add_member, find_user, normal_email
from app.db import begin_write, utcnow
from app.errors import Conflict, NotFound, Unauthenticated
from app.organizing.codes import Gone, live_code
from app.organizing.models import EventAttendee, JoinCode, TurfHolding
from app.organizing.pool import holders_changed, record


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
    live_code((await session.execute(select(JoinCode).where(JoinCode.code == code))).scalar_one_or_none(), utcnow())
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
    found = live_code((await session.execute(select(JoinCode).where(JoinCode.code == code))).scalar_one_or_none(),
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
        await record(session, campaign_id, [{"turf_id": turf_id, "user_id": user_id, "action": "unassigned",
                                             "by_user_id": by} for turf_id in held])
        await holders_changed(session, dict.fromkeys(held, -1))
    await session.execute(update(JoinCode).where(JoinCode.campaign_id == campaign_id, JoinCode.created_by == user_id,
                                                 JoinCode.revoked_at.is_(None)).values(revoked_at=utcnow())
                          .execution_options(synchronize_session=False))
    await session.delete(membership)
    await end_sessions(session, user_id, reason="removed", cut_off=False)
    await session.commit()
