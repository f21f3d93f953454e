from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from app.auth import service as auth_service
from app.campaigns import service as campaign_service
from app.campaigns.models import User
from app.campaigns.schemas import MembershipRead, RefreshRequest, Token, UserRead
from app.config import Settings
from app.errors import Forbidden
from app.routers.deps import CallerDep, SessionDep, SettingsDep

router = APIRouter(prefix="/v1", tags=["auth"])


@router.post("/auth/token")
async def log_in(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
                 settings: SettingsDep) -> Token:
    """Log in with email (as `username`) and password; returns a short-lived bearer token."""
    user = await auth_service.authenticate(session, form.username, form.password)
    return tokens(user.id, settings)


def tokens(user_id: UUID, settings: Settings) -> Token:
    """An access token and a refresh token for the user."""
    assert settings.jwt_secret is not None
    secret = settings.jwt_secret.get_secret_value()
    return Token(access_token=auth_service.issue_token(user_id, secret=secret, minutes=settings.token_minutes),
                 expires_in=settings.token_minutes * 60,
                 refresh_token=auth_service.issue_refresh_token(user_id, secret=secret, days=settings.refresh_days),
                 refresh_expires_in=settings.refresh_days * 86400)


@router.post("/auth/refresh")
async def refresh_token(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> Token:
    """A new access token (and refresh token) for a refresh token, without the password."""
    assert settings.jwt_secret is not None
    user_id = await auth_service.refresh(session, body.refresh_token, secret=settings.jwt_secret.get_secret_value())
    return tokens(user_id, settings)


@router.get("/me")
async def who_am_i(caller: CallerDep, session: SessionDep) -> UserRead:
    """The logged-in user and their role in each campaign."""
    if caller.user_id is None:
        raise Forbidden("An API key is no user; /v1/me is for users.")
    user = await session.get(User, caller.user_id)
    assert user is not None
    memberships = await campaign_service.user_memberships(session, user.id)
    return UserRead(id=user.id, email=user.email, name=user.name,
                    memberships=[MembershipRead(**m) for m in memberships])
