from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, Field

from app.auth.scopes import Scope
from app.auth.service import Access
from app.campaigns.roles import Role
from app.routers.deps import Allow, SessionDep, SettingsDep
from app.webhooks import service as webhooks
from app.webhooks import targets
from app.webhooks.models import EVENTS, URL_MAX

router = APIRouter(prefix="/v1/campaigns/{campaign_id}/webhooks", tags=["webhooks"])

# Admins, and the tools themselves with a key holding webhooks:write.
managers = Allow(Role.admin, scope=Scope.webhooks_write)


class WebhookCreate(BaseModel):
    url: str = Field(max_length=URL_MAX, description="Where events are POSTed: http or https, no user or password, a "
                                                  "host on the public internet.")
    events: list[str] = Field(min_length=1, max_length=len(EVENTS), description=f"Some of {', '.join(EVENTS)}.")


class WebhookRead(BaseModel):
    id: UUID
    url: str
    events: list[str]
    created_at: datetime


class WebhookMade(WebhookRead):
    secret: str = Field(description="Signs each delivery (HMAC-SHA256, header `X-Doorstep-Signature: sha256=...` "
                                    "over `<X-Doorstep-Timestamp>.<body>`). Shown this once.")


class DeliveryRead(BaseModel):
    id: UUID = Field(description="The `X-Doorstep-Delivery` header: a retry sends the same.")
    event: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    last_status: int | None
    last_error: targets.Failure | None = Field(description=targets.FAILURES_DOC)


def _read(row: webhooks.Webhook) -> dict[str, object]:
    return {"id": row.id, "url": row.url, "events": row.events.split(), "created_at": row.created_at}


@router.post("", status_code=status.HTTP_201_CREATED, openapi_extra=managers.openapi, response_model=WebhookMade)
async def create_webhook(body: WebhookCreate, access: Annotated[Access, Depends(managers)],
                         session: SessionDep, settings: SettingsDep) -> dict[str, object]:
    """Register a URL for events. Deliveries are POSTed as JSON with `X-Doorstep-Event`, `X-Doorstep-Delivery`,
    `X-Doorstep-Timestamp` and `X-Doorstep-Signature`; anything but a 2xx is retried with doubling waits.
    A URL whose host is, or resolves to, an address off the public internet is refused (422), and checked again
    at each delivery."""
    row, secret = await webhooks.create(session, access.campaign_id, url=body.url, events=body.events,
                                        settings=settings)
    return {**_read(row), "secret": secret}


@router.get("", openapi_extra=managers.openapi, response_model=list[WebhookRead])
async def list_webhooks(access: Annotated[Access, Depends(managers)], session: SessionDep) -> list[dict[str, object]]:
    return [_read(row) for row in await webhooks.list_webhooks(session, access.campaign_id)]


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, openapi_extra=managers.openapi)
async def delete_webhook(webhook_id: UUID, access: Annotated[Access, Depends(managers)],
                         session: SessionDep) -> Response:
    """Stop sending to this URL; its undelivered events are dropped."""
    await webhooks.remove(session, access.campaign_id, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", openapi_extra=managers.openapi, response_model=list[DeliveryRead])
async def list_deliveries(webhook_id: UUID, access: Annotated[Access, Depends(managers)],
                          session: SessionDep) -> list[DeliveryRead]:
    """The latest 100 deliveries, newest first: what was sent, how often, and what the receiver answered."""
    rows = await webhooks.deliveries(session, access.campaign_id, webhook_id)
    return [DeliveryRead.model_validate(row, from_attributes=True) for row in rows]
