from collections.abc import AsyncIterator, Callable
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.scopes import Scope
from app.auth.service import Access
from app.errors import Invalid
from app.pagination import encode_cursor, int_cursor
from app.routers.audit import audit_read
from app.routers.deps import FIELD_ROLES, Allow, SessionDep
from app.routers.etags import tag_streamed
from app.routers.responses import CsvStream
from app.sync import feed
from app.sync.schemas import KnockFeed
from app.values import Moment

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["results"])

# The results themselves: organizers, and API keys with results:read (names and notes only with people:read too).
readers = Allow(*FIELD_ROLES, scope=Scope.results_read)


def _names(access: Access) -> bool:
    """Whether the caller sees voters' names and canvassers' notes: organizers do; a key needs people:read."""
    return access.role is not None or Scope.people_read in access.caller.scopes


@router.get("/door-knocks", openapi_extra=readers.openapi, response_model=KnockFeed)
async def list_door_knocks(request: Request, access: Annotated[Access, Depends(readers)], session: SessionDep,
                           after: Annotated[str | None, Query(description=(
                               "The `next` of the last page read: only knocks stored after it. Absent: from the "
                               "first."), max_length=64)] = None,
                           limit: Annotated[int, Query(ge=1, le=feed.MAX_PAGE)] = 500) -> Response:
    """The campaign's knocks in the order the server stored them. Keep `next` and send it back as `after`:
    every knock comes exactly once, however many syncs happen between pages, and an empty page means you are
    up to date (ask again later with the same `after`)."""
    # A knock's seq is a BIGINT, unlike ids.
    start, names = int_cursor(after, "after", most=2**63 - 1), _names(access)
    items, last = await feed.page(session, access.campaign_id, after=start, limit=limit, names=names)
    if names:
        audit_read(request, access, "results.read", f"knocks after {start}", len(items))
    return Response(orjson.dumps({"items": items, "next": encode_cursor(last)}), media_type="application/json")


@router.get("/door-knocks.csv", openapi_extra=readers.openapi, response_class=CsvStream,
            responses={200: {"description": "The knocks, header first."}})
async def export_door_knocks_csv(request: Request, access: Annotated[Access, Depends(readers)],
                                 since: Annotated[Moment | None, Query(description=(
                                     "Knocks at or after this time (corrected time, with its zone).")
                                 )] = None,
                                 until: Annotated[Moment | None, Query(description=(
                                     "Knocks before this time (corrected time, with its zone).")
                                 )] = None) -> CsvStream:
    """The knocks of a time window as CSV, in the order stored, streamed (a whole campaign fits)."""
    if since is not None and until is not None and until <= since:
        raise Invalid("until must be after since", field="until")
    tag_streamed(request)  # streamed to bound memory, not to be read as it comes: tagged up to etags.BUFFER_MAX
    window = " ".join(f"{name} {at.isoformat()}" for name, at in (("since", since), ("until", until)) if at)
    rows = _audited(request, access, f"door-knocks {window or 'all'}", lambda seen: feed.csv_rows(
        request.app.state.sessionmaker, access.campaign_id, since=since, until=until, names=_names(access),
        seen=seen))
    # Names and notes of voters: a browser keeps no copy of the download but the file it saves.
    return CsvStream(rows, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{access.campaign.slug}-door-knocks.csv"',
        "Cache-Control": "private, no-store"})


async def _audited(request: Request, access: Access, subject: str,
                   rows: Callable[[Callable[[int], None]], AsyncIterator[bytes]]) -> AsyncIterator[bytes]:
    """An export's chunks, audited once it ends (finished or cut off) with the knocks it sent."""
    sent = 0

    def seen(n: int) -> None:
        nonlocal sent
        sent += n
    try:
        async for chunk in rows(seen):
            yield chunk
    finally:
        audit_read(request, access, "export.csv", subject, sent)
