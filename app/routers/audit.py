from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from app.audit import service as audit_service
from app.audit.schemas import AuditEventRead, AuditPage
from app.auth.service import Access
from app.campaigns.roles import Role
from app.errors import Invalid
from app.routers.deps import Allow, SessionDep
from app.routers.responses import link_next
from app.values import Moment

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["audit"])

admin = Allow(Role.admin)


async def audit_read(request: Request, access: Access, action: str, subject: str, records: int | None) -> None:
    """Record a successful read of voter data by the caller (call it once the answer is ready, never for a
    refused one). `subject` names what was read, never the data itself."""
    await request.app.state.audit.record(**_who(request, access), action=action, subject=subject, records=records)


def _who(request: Request, access: Access) -> dict[str, object]:
    return {"campaign_id": access.campaign_id, "user_id": access.caller.user_id,
            "api_key_id": access.caller.api_key_id, "client": request.client.host if request.client else None,
            "user_agent": request.headers.get("user-agent")}


def audit_streamed(request: Request, access: Access, action: str, subject: str, records: int | None) -> None:
    """`audit_read` for the end of a streamed answer, where nothing may be awaited."""
    request.app.state.audit.append(**_who(request, access), action=action, subject=subject, records=records)


@router.get("/audit", openapi_extra=admin.openapi)
async def list_audit_events(request: Request, response: Response, access: Annotated[Access, Depends(admin)],
                            session: SessionDep,
                            since: Annotated[Moment | None, Query(description="Reads at or after this time.")] = None,
                            until: Annotated[Moment | None, Query(description="Reads before this time.")] = None,
                            user: Annotated[UUID | None, Query(description="Reads by this user.")] = None,
                            api_key: Annotated[UUID | None, Query(description="Reads by this API key.")] = None,
                            action: Annotated[str | None, Query(max_length=32, description=(
                                "One kind of read: `walklist.read`, `households.read`, `results.read`, `export.csv`."))
                            ] = None,
                            cursor: Annotated[str | None, Query(max_length=200)] = None,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AuditPage:
    """Who read the campaign's voter data (walk lists, households, results with names, exports), what, when
    and from where, newest first, a page at a time. Admins only; what this process read is in it at once."""
    if since is not None and until is not None and until <= since:
        raise Invalid("until must be after since", field="until")
    await request.app.state.audit.flush()
    events, next_cursor = await audit_service.list_events(session, access.campaign_id, since=since, until=until,
                                                          user_id=user, api_key_id=api_key, action=action,
                                                          cursor=cursor, limit=limit)
    link_next(request, response, next_cursor)
    return AuditPage(items=[AuditEventRead.model_validate(e, from_attributes=True) for e in events],
                     next_cursor=next_cursor)
