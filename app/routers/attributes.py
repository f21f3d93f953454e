from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.attributes import service as attribute_service
from app.attributes.models import Attribute
from app.attributes.schemas import AttributeIn, AttributeRead
from app.auth.scopes import Scope
from app.auth.service import Access
from app.routers.deps import FIELD_ROLES, Allow, SessionDep
from app.values import Id

router = APIRouter(prefix="/v1/campaigns/{campaign_id}/attributes", tags=["attributes"])

# What the campaign keeps of its files is no one's data: field staff and keys that read people see the list.
readers = Allow(*FIELD_ROLES, scope=Scope.people_read)
field = Allow(*FIELD_ROLES)


class AttributeChange(BaseModel):
    canvassers_see: bool


def _read(attribute: Attribute) -> AttributeRead:
    return AttributeRead(id=attribute.id, name=attribute.name, type=attribute.kind, of=attribute.applies_to,
                         canvassers_see=attribute.canvassers_see, created_at=attribute.created_at)


@router.get("", openapi_extra=readers.openapi)
async def list_attributes(access: Annotated[Access, Depends(readers)], session: SessionDep) -> list[AttributeRead]:
    """The attributes the campaign keeps of its voter and address files: name, type, whose, seen by canvassers."""
    return [_read(a) for a in await attribute_service.list_attributes(session, access.campaign_id)]


@router.post("", status_code=201, openapi_extra=field.openapi,
             responses={409: {"description": "The campaign has an attribute of that name."}})
async def create_attribute(body: AttributeIn, access: Annotated[Access, Depends(field)],
                           session: SessionDep) -> AttributeRead:
    """Declare an attribute before an import keeps it (an import declares what it keeps otherwise, unseen by
    canvassers)."""
    return _read(await attribute_service.create_attribute(session, access.campaign_id, body))


@router.patch("/{attribute_id}", openapi_extra=field.openapi)
async def change_attribute(attribute_id: Id, body: AttributeChange, access: Annotated[Access, Depends(field)],
                           session: SessionDep) -> AttributeRead:
    """Show an attribute to canvassers in walk lists, or stop showing it."""
    return _read(await attribute_service.change_attribute(session, access.campaign_id, attribute_id,
                                                          canvassers_see=body.canvassers_see))
