from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from app.auth import service as auth_service
from app.campaigns import service as campaign_service
from app.campaigns.models import User
from app.campaigns.schemas import MembershipRead, Token, UserRead
from app.errors import Forbidden
from app.routers.deps import CallerDep, SessionDep, SettingsDep

router = APIRouter(prefix="/v1", tags=["auth"])


@router.post("/auth/token")
async def log_in(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
                 settings: SettingsDep) -> Token:
    """Log in with email (as `username`) and password; returns a short-lived bearer token."""
    user = await auth_service.authenticate(session, form.username, form.password)
    assert settings.jwt_secret is not None
    token = auth_service.issue_token(user.id, secret=settings.jwt_secret.get_secret_value(),
                                     minutes=settings.token_minutes)
    return Token(access_token=token, expires_in=settings.token_minutes * 60)


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
