"""Campaigns, users and memberships."""

import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.passwords import check_password, hash_password
from app.auth.sessions import end_sessions
from app.campaigns.models import Campaign, Membership, User
from app.campaigns.roles import Role
from app.db import begin_write, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.partial import set_given
from app.precincts.models import Precinct

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


async def create_campaign(session: AsyncSession, slug: str, name: str) -> Campaign:
    """Create a campaign. Raises Invalid for a bad slug, Conflict when the slug is taken."""
    if not SLUG.match(slug):
        raise Invalid(f"slug {slug!r}: use lower-case letters, digits and dashes (at most 64)", field="slug")
    if not name.strip():
        raise Invalid("a campaign needs a name", field="name")
    await begin_write(session)
    if await find_campaign(session, slug) is not None:
        raise Conflict(f"A campaign {slug!r} exists already.")
    campaign = Campaign(slug=slug, name=name.strip())
    session.add(campaign)
    await session.commit()
    return campaign


async def find_campaign(session: AsyncSession, slug: str) -> Campaign | None:
    return (await session.execute(select(Campaign).where(Campaign.slug == slug))).scalar_one_or_none()


async def get_campaign(session: AsyncSession, slug: str) -> Campaign:
    """The campaign with this slug. Raises NotFound."""
    campaign = await find_campaign(session, slug)
    if campaign is None:
        raise NotFound(f"No campaign {slug!r}.")
    return campaign


async def list_campaigns(session: AsyncSession) -> Sequence[Campaign]:
    return (await session.execute(select(Campaign).order_by(Campaign.slug))).scalars().all()


async def campaign_counts(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Precincts, buildings, households and people of a campaign, from the precincts' stored counts."""
    row = (await session.execute(select(
        func.count(), func.coalesce(func.sum(Precinct.building_count), 0),
        func.coalesce(func.sum(Precinct.household_count), 0), func.coalesce(func.sum(Precinct.person_count), 0))
        .where(Precinct.campaign_id == campaign_id))).one()
    return dict(zip(("precincts", "buildings", "households", "people"), (int(v) for v in row), strict=True))


def normal_email(email: str) -> str:
    """The stored form of an email. Raises Invalid naming `email`."""
    email = email.strip().lower()
    # The length first: the pattern backtracks over a long run of dots (seconds on a megabyte).
    if len(email) > 320:
        raise Invalid("an email address has at most 320 characters", field="email")
    if not EMAIL.match(email):
        raise Invalid(f"{email!r} is not an email address", field="email")
    return email


async def find_user(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()


async def add_member(session: AsyncSession, campaign: Campaign, email: str, role: Role | str, *,
                     name: str | None = None, password: str | None = None, password_hash: str | None = None,
                     commit: bool = True) -> tuple[User, Membership]:
    """Give a user (created if new, which needs a password) a role in a campaign, replacing any role they had.

    `password_hash`, hashed before a write transaction began, stands in for `password` (no lock held while
    argon2 works).

    A new password for an existing user ends every session and token they hold.

    Raises Invalid for a bad email or role, or a password the policy refuses (app.auth.passwords).
    """
    email = normal_email(email)
    if commit:
        await begin_write(session)
    if role not in Role.__members__:
        raise Invalid(f"role {role!r}: one of {', '.join(Role)}", field="role")
    if password is not None:
        check_password(password, email=email)
    if password_hash is None and password is not None:
        password_hash = await hash_password(password)
    user = await find_user(session, email)
    if user is None:
        if password_hash is None:
            raise Invalid("a new user needs a password", field="password")
        user = User(email=email, name=(name or email.split("@")[0]).strip(), password_hash=password_hash)
        session.add(user)
    elif password_hash is not None:
        user.password_hash = password_hash
        await end_sessions(session, user.id, reason="password")
    if name:
        user.name = name.strip()
    await session.flush()
    membership = (await session.execute(select(Membership).where(
        Membership.campaign_id == campaign.id, Membership.user_id == user.id))).scalar_one_or_none()
    if membership is None:
        membership = Membership(campaign_id=campaign.id, user_id=user.id, role=str(role))
        session.add(membership)
    else:
        membership.role = str(role)
    if commit:
        await session.commit()
    else:
        await session.flush()
    return user, membership


async def user_memberships(session: AsyncSession, user_id: UUID) -> list[dict[str, Any]]:
    rows = (await session.execute(
        select(Campaign.slug, Campaign.name, Membership.role).join(Membership, Membership.campaign_id == Campaign.id)
        .where(Membership.user_id == user_id).order_by(Campaign.slug))).all()
    return [{"campaign_id": r.slug, "campaign_name": r.name, "role": r.role} for r in rows]


async def list_members(session: AsyncSession, campaign_id: int, *, after: int, limit: int) -> list[Any]:
    """A page of the campaign's members in the order they joined (keyset on the membership id, past `after`):
    rows of membership id, user id, email, name, role and when they joined."""
    return list((await session.execute(
        select(Membership.id, Membership.user_id, User.email, User.name, Membership.role,
               Membership.created_at.label("joined_at"))
        .join(User, User.id == Membership.user_id)
        .where(Membership.campaign_id == campaign_id, Membership.id > after)
        .order_by(Membership.id).limit(limit))).all())


async def set_disabled(session: AsyncSession, email: str, *, disabled: bool) -> User:
    """Disable a user (they can't log in, and every token they hold stops at once) or enable them again.

    Raises NotFound.
    """
    await begin_write(session)
    user = await find_user(session, email)
    if user is None:
        raise NotFound(f"No user {email.strip().lower()}.")
    if disabled:
        user.disabled_at = user.disabled_at or utcnow()
        await end_sessions(session, user.id, reason="disabled")
    else:
        user.disabled_at = None
    await session.commit()
    return user


async def caller_campaigns(session: AsyncSession, *, user_id: UUID | None,
                           campaign_id: int | None) -> list[tuple[Campaign, Role | None]]:
    """A user's campaigns with their role, or an API key's one campaign."""
    if user_id is None:
        campaign = await session.get(Campaign, campaign_id)
        return [(campaign, None)] if campaign else []
    rows = (await session.execute(
        select(Campaign, Membership.role).join(Membership, Membership.campaign_id == Campaign.id)
        .where(Membership.user_id == user_id).order_by(Campaign.slug))).all()
    return [(c, Role(role)) for c, role in rows]


async def update_campaign(session: AsyncSession, campaign_id: int, *, name: str | None,
                          claim_lapse_hours: int | None, event_max_turfs: int | None = None) -> Campaign:
    """Change a campaign's settings. A lower `event_max_turfs` bounds events made or changed after; pools
    already reserved keep their turfs."""
    await begin_write(session)
    campaign = await session.get(Campaign, campaign_id)
    assert campaign is not None
    set_given(campaign, name=name.strip() if name is not None else None, claim_lapse_hours=claim_lapse_hours,
              event_max_turfs=event_max_turfs)
    await session.commit()
    return campaign
