from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from app.auth import service as auth_service
from app.auth.service import Caller, Tokens
from app.campaigns import service as campaign_service
from app.campaigns.models import User
from app.campaigns.schemas import MembershipRead, PasswordChange, RefreshRequest, Token, UserRead
from app.config import Settings
from app.errors import Forbidden
from app.routers.deps import CallerDep, SessionDep, SettingsDep
from app.routers.ratelimits import rate_limit

router = APIRouter(prefix="/v1", tags=["auth"])


def _secret(settings: Settings) -> str:
    assert settings.jwt_secret is not None
    return settings.jwt_secret.get_secret_value()


def _token(tokens: Tokens, settings: Settings) -> Token:
    return Token(access_token=tokens.access_token, expires_in=settings.token_minutes * 60,
                 refresh_token=tokens.refresh_token, refresh_expires_in=settings.refresh_days * 86400)


@router.post("/auth/token", responses={401: {"description": "Wrong email or password."}})
async def log_in(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, session: SessionDep,
                 settings: SettingsDep) -> Token:
    """Log in with email (as `username`) and password; starts a login session. Rate-limited (429)."""
    await rate_limit(request, "login", account=form.username)
    user = await auth_service.authenticate(session, form.username, form.password)
    return _token(await auth_service.open_session(session, user.id, secret=_secret(settings),
                                                  minutes=settings.token_minutes, days=settings.refresh_days),
                  settings)


@router.post("/auth/refresh", responses={401: {"description": "The refresh token is unknown, used or expired."}})
async def refresh_token(body: RefreshRequest, request: Request, session: SessionDep, settings: SettingsDep) -> Token:
    """New tokens for a refresh token, without the password. Each refresh token works once: the answer holds
    the next one, and one sent again ends its login (a copy was made). Rate-limited (429)."""
    user_id = auth_service.refresh_user(body.refresh_token, secret=_secret(settings))
    await rate_limit(request, "refresh", account=str(user_id) if user_id else None)
    return _token(await auth_service.refresh(session, body.refresh_token, secret=_secret(settings),
                                             minutes=settings.token_minutes, days=settings.refresh_days), settings)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT,
             responses={401: {"description": "Not logged in."}})
async def log_out(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> Response:
    """End the login a refresh token belongs to: its refresh and access tokens stop at once. Twice is harmless."""
    await auth_service.log_out(session, body.refresh_token, secret=_secret(settings))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _user_id(caller: Caller) -> UUID:
    if caller.user_id is None:
        raise Forbidden("An API key is no user; this is for users.")
    return caller.user_id


@router.post("/me/password")
async def change_password(body: PasswordChange, caller: CallerDep, request: Request, session: SessionDep,
                          settings: SettingsDep) -> Token:
    """Change the caller's password: every login of theirs ends, and the answer holds tokens for a new one
    (so this phone stays logged in). Rate-limited (429)."""
    user_id = _user_id(caller)
    await rate_limit(request, "password", account=str(user_id))
    return _token(await auth_service.change_password(
        session, user_id, current=body.current_password, new=body.new_password, secret=_secret(settings),
        minutes=settings.token_minutes, days=settings.refresh_days), settings)


@router.get("/me")
async def get_me(caller: CallerDep, session: SessionDep) -> UserRead:
    """The logged-in user and their role in each campaign."""
    user = await session.get(User, _user_id(caller))
    assert user is not None
    memberships = await campaign_service.user_memberships(session, user.id)
    return UserRead(id=user.id, email=user.email, name=user.name,
                    memberships=[MembershipRead(**m) for m in memberships])
