from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, status

from app.auth import service as auth_service
from app.auth.models import Scope
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from app.auth.service import Access
from app.campaigns import service as campaign_service
from app.campaigns.models import Role
from app.campaigns.schemas import CampaignRead, CampaignSummary, CampaignUpdate
from app.routers.deps import ALL_ROLES, Allow, CallerDep, SessionDep

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["campaigns"])

any_member = Allow(*ALL_ROLES, scope=Scope.progress_read)
admin = Allow(Role.admin)


def _key_read(row: object, cls: type[ApiKeyRead] = ApiKeyRead, **extra: str) -> ApiKeyRead:
    data = {name: getattr(row, name) for name in ("id", "name", "prefix", "created_at", "revoked_at")}
    return cls(**data, scopes=row.scopes.split(), **extra)


@router.get("", openapi_extra=any_member.openapi)
async def read_campaign(access: Annotated[Access, Depends(any_member)], session: SessionDep) -> CampaignSummary:
    """The campaign, the caller's role in it, and how much it holds."""
    return await _summary(session, access)


async def _summary(session: SessionDep, access: Access) -> CampaignSummary:
    counts = await campaign_service.campaign_counts(session, access.campaign_id)
    return CampaignSummary(id=access.campaign.slug, name=access.campaign.name, role=access.role,
                           created_at=access.campaign.created_at,
                           claim_lapse_hours=access.campaign.claim_lapse_hours, **counts)


@router.patch("", openapi_extra=admin.openapi)
async def update_campaign(body: CampaignUpdate, access: Annotated[Access, Depends(admin)],
                          session: SessionDep) -> CampaignSummary:
    """Change the campaign's name or settings (admins)."""
    campaign = await campaign_service.update_campaign(session, access.campaign_id, name=body.name,
                                                      claim_lapse_hours=body.claim_lapse_hours)
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


index = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


@index.get("")
async def list_my_campaigns(caller: CallerDep, session: SessionDep) -> list[CampaignRead]:
    """The campaigns the caller belongs to (an API key: its own campaign)."""
    rows = await campaign_service.caller_campaigns(session, user_id=caller.user_id,
                                                   campaign_id=caller.key_campaign_id)
    return [CampaignRead(id=c.slug, name=c.name, role=role, created_at=c.created_at) for c, role in rows]
