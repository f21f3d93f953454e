from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, Field

from app.auth.models import Scope
from app.auth.service import Access
from app.campaigns.models import Role
from app.routers.deps import Allow, SessionDep
from app.webhooks import service as webhooks
from app.webhooks.models import EVENTS

router = APIRouter(prefix="/v1/campaigns/{campaign_id}/webhooks", tags=["webhooks"])

# Admins, and the tools themselves with a key holding webhooks:write.
managers = Allow(Role.admin, scope=Scope.webhooks_write)


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2000, description="Where events are POSTed (http or https).")
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
    last_error: str | None


def _read(row: webhooks.Webhook) -> dict[str, object]:
    return {"id": row.id, "url": row.url, "events": row.events.split(), "created_at": row.created_at}


@router.post("", status_code=status.HTTP_201_CREATED, openapi_extra=managers.openapi, response_model=WebhookMade)
async def create_webhook(body: WebhookCreate, access: Annotated[Access, Depends(managers)],
                         session: SessionDep) -> dict[str, object]:
    """Register a URL for events. Deliveries are POSTed as JSON with `X-Doorstep-Event`, `X-Doorstep-Delivery`,
    `X-Doorstep-Timestamp` and `X-Doorstep-Signature`; anything but a 2xx is retried with doubling waits."""
    row, secret = await webhooks.create(session, access.campaign_id, url=body.url, events=body.events)
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
