from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
# In a request's state once its answer is over: whether it sent a body the reads it noted are recorded for.
SENT = "audit_sent"


def audit_read(request: Request, access: Access, action: str, subject: str, records: int | None) -> None:
    """Note a read of voter data by the caller (once the answer is made, never for a refused one), to be recorded
    if its answer goes out: `AuditSent` records it once a 2xx body has been sent, and drops it for a HEAD or a
    304, which send none. `subject` names what was read, never the data itself. Called from a streamed answer
    too, at its end."""
    who = {"campaign_id": access.campaign_id, "user_id": access.caller.user_id,
           "api_key_id": access.caller.api_key_id, "client": request.client.host if request.client else None,
           "user_agent": request.headers.get("user-agent")}
    read = {**who, "action": action, "subject": subject, "records": records}
    answered = request.scope["state"].get(SENT)
    if answered is None:
        request.state.audit_pending.append(read)
    elif answered:
        # A stream whose end came after its answer's (a client gone mid-export): what it sent is recorded.
        request.app.state.audit.append(**read)


class AuditSent:
    """ASGI middleware: the reads a request noted (`audit_read`) are recorded when its answer has sent a body with a
    2xx status; a HEAD (app/routers/head.py), a 304 (app/routers/etags.py) or an error sends none, and so
    records none. Outside the ETags, inside HeadAsGet."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        pending: list[dict[str, Any]] = state.setdefault("audit_pending", [])
        status, sent = 0, False

        async def watching(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and message.get("body"):
                sent = True
            await send(message)
        try:
            await self.app(scope, receive, watching)
        finally:
            state[SENT] = sent and 200 <= status < 300 and not state.get("head")
            if state[SENT]:
                for read in pending:
                    await scope["app"].state.audit.record(**read)


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
