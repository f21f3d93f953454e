"""Dependencies every router shares: the session, the settings, the caller and their rights in a campaign."""

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth_service
from app.auth.scopes import Scope
from app.auth.service import Access, Caller
from app.campaigns.roles import Role
from app.config import Settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

oauth2 = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False,
                              description="A user's token from POST /v1/auth/token, or an API key (`dsk_...`).")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="A campaign's API key.")


def _secret(settings: Settings) -> str:
    return settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""


async def get_caller(session: SessionDep, settings: SettingsDep,
                     bearer: Annotated[str | None, Depends(oauth2)],
                     api_key: Annotated[str | None, Depends(api_key_header)]) -> Caller:
    return await auth_service.resolve_caller(session, bearer=bearer, api_key=api_key, secret=_secret(settings))


CallerDep = Annotated[Caller, Depends(get_caller)]
log = logging.getLogger("doorstep")

CampaignId = Annotated[str, Path(description="The campaign's slug, e.g. `cambridge`.", max_length=64)]


class Allow:
    """A dependency granting a campaign route to members with one of `roles`, or API keys with `scope`.

    Its `openapi` goes into the route's spec, so each endpoint states who may call it.
    """

    def __init__(self, *roles: Role, scope: Scope | None = None) -> None:
        self.roles = frozenset(roles)
        self.scope = scope

    async def __call__(self, campaign_id: CampaignId, session: SessionDep, settings: SettingsDep,
                       bearer: Annotated[str | None, Depends(oauth2)],
                       api_key: Annotated[str | None, Depends(api_key_header)]) -> Access:
        access = await auth_service.campaign_access(session, bearer=bearer, api_key=api_key,
                                                    secret=_secret(settings), slug=campaign_id)
        auth_service.authorize(access, roles=self.roles, scope=self.scope)
        return access

    @property
    def openapi(self) -> dict[str, Any]:
        # A list, so "no API key may call this" is [] rather than a null the spec would drop.
        return {"x-roles": sorted(self.roles), "x-scopes": [self.scope] if self.scope else []}


def spawn(app: Any, work: Coroutine[Any, Any, Any]) -> None:
    """Run `work` in the background; the app waits for it on shutdown and logs what it raises."""
    task = asyncio.create_task(work)
    app.state.tasks.add(task)

    def done(finished: asyncio.Task[Any]) -> None:
        app.state.tasks.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            log.error("background job failed", exc_info=finished.exception())
    task.add_done_callback(done)


FIELD_ROLES = (Role.admin, Role.organizer)
ALL_ROLES = tuple(Role)
