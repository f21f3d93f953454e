"""Ending a user's login sessions: below the services that do it (a password set, a member removed, a user
disabled), so the campaigns package can call it without importing the auth service."""

from uuid import UUID

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginSession
from app.campaigns.models import User
from app.db import utcnow


async def end_sessions(session: AsyncSession, user_id: UUID, *, reason: str, cut_off: bool = True) -> int:
    """Revoke every live session of the user, in the caller's transaction; returns how many.

    `cut_off` also refuses every access token issued until now, sessions or not (tokens_valid_after).
    """
    now = utcnow()
    ended = await session.execute(update(LoginSession).where(LoginSession.user_id == user_id,
                                                             LoginSession.revoked_at.is_(None))
                                  .values(revoked_at=now, revoked_reason=reason)
                                  .execution_options(synchronize_session=False))
    if cut_off:
        await session.execute(update(User).where(User.id == user_id).values(tokens_valid_after=now)
                              .execution_options(synchronize_session=False))
    return ended.rowcount
