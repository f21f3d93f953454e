from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.auth import service as auth_service
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from app.auth.scopes import Scope
from app.auth.service import Access
from app.campaigns import service as campaign_service
from app.campaigns.roles import Role
from app.campaigns.schemas import CampaignRead, CampaignSummary, CampaignUpdate, MemberPage, MemberRead
from app.organizing import members
from app.pagination import int_cursor, page
from app.routers.deps import ALL_ROLES, Allow, CallerDep, SessionDep
from app.routers.responses import link_next

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["campaigns"])

any_member = Allow(*ALL_ROLES, scope=Scope.progress_read)
admin = Allow(Role.admin)


def _key_read(row: object, cls: type[ApiKeyRead] = ApiKeyRead, **extra: str) -> ApiKeyRead:
    data = {name: getattr(row, name) for name in ("id", "name", "prefix", "created_at", "revoked_at")}
    return cls(**data, scopes=row.scopes.split(), **extra)


@router.get("", openapi_extra=any_member.openapi)
async def get_campaign(access: Annotated[Access, Depends(any_member)], session: SessionDep) -> CampaignSummary:
    """The campaign, the caller's role in it, and how much it holds."""
    return await _summary(session, access)


async def _summary(session: SessionDep, access: Access) -> CampaignSummary:
    counts = await campaign_service.campaign_counts(session, access.campaign_id)
    return CampaignSummary(id=access.campaign.slug, name=access.campaign.name, role=access.role,
                           created_at=access.campaign.created_at,
                           claim_lapse_hours=access.campaign.claim_lapse_hours,
                           event_max_turfs=access.campaign.event_max_turfs, **counts)


@router.patch("", openapi_extra=admin.openapi)
async def update_campaign(body: CampaignUpdate, access: Annotated[Access, Depends(admin)],
                          session: SessionDep) -> CampaignSummary:
    """Change the campaign's name or settings (admins)."""
    campaign = await campaign_service.update_campaign(session, access.campaign_id, name=body.name,
                                                      claim_lapse_hours=body.claim_lapse_hours,
                                                      event_max_turfs=body.event_max_turfs)
    return await _summary(session, Access(campaign, access.caller, access.role))


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, openapi_extra=admin.openapi)
async def create_api_key(body: ApiKeyCreate, access: Annotated[Access, Depends(admin)],
                         session: SessionDep) -> ApiKeyCreated:
    """Make an API key for a third-party tool; the key is in this response only."""
    row, key = await auth_service.create_api_key(session, access.campaign_id, name=body.name, scopes=body.scopes,
                                                 created_by=access.caller.user_id)
    created = _key_read(row, ApiKeyCreated, key=key)
    assert isinstance(created, ApiKeyCreated)
    return created


@router.get("/api-keys", openapi_extra=admin.openapi)
async def list_api_keys(access: Annotated[Access, Depends(admin)], session: SessionDep) -> list[ApiKeyRead]:
    """The campaign's API keys, revoked ones included, without their secrets."""
    return [_key_read(row) for row in await auth_service.list_api_keys(session, access.campaign_id)]


@router.delete("/api-keys/{key_id}", openapi_extra=admin.openapi)
async def revoke_api_key(key_id: UUID, access: Annotated[Access, Depends(admin)],
                         session: SessionDep) -> ApiKeyRead:
    """Revoke an API key: it stops working at once."""
    return _key_read(await auth_service.revoke_api_key(session, access.campaign_id, key_id))


@router.get("/members", openapi_extra=admin.openapi)
async def list_members(request: Request, response: Response, access: Annotated[Access, Depends(admin)],
                       session: SessionDep, cursor: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> MemberPage:
    """The campaign's members in the order they joined, a page at a time (admins)."""
    rows = await campaign_service.list_members(session, access.campaign_id, after=int_cursor(cursor),
                                               limit=limit + 1)
    items, next_cursor = page(rows, limit)
    link_next(request, response, next_cursor)
    return MemberPage(items=[MemberRead.model_validate(r, from_attributes=True) for r in items],
                      next_cursor=next_cursor)


@router.delete("/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT, openapi_extra=admin.openapi,
               responses={409: {"description": "The campaign's last admin."}})
async def remove_member(user_id: UUID, access: Annotated[Access, Depends(admin)], session: SessionDep) -> Response:
    """Take a member out of the campaign (admins): their turfs here go back, the join codes they made here stop,
    and every login of theirs ends. The campaign's last admin can't be removed (409)."""
    await members.remove_member(session, access.campaign_id, user_id, by=access.caller.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


index = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


@index.get("")
async def list_my_campaigns(caller: CallerDep, session: SessionDep) -> list[CampaignRead]:
    """The campaigns the caller belongs to (an API key: its own campaign)."""
    rows = await campaign_service.caller_campaigns(session, user_id=caller.user_id,
                                                   campaign_id=caller.key_campaign_id)
    return [CampaignRead(id=c.slug, name=c.name, role=role, created_at=c.created_at) for c, role in rows]
