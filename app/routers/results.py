from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from app.auth.models import Scope
from app.auth.service import Access
from app.errors import Invalid
from app.pagination import encode_cursor, int_cursor
from app.routers.deps import FIELD_ROLES, Allow, SessionDep
from app.sync import feed
from app.sync.schemas import KnockFeed

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["results"])

# The results themselves: organizers, and API keys with results:read (names only with people:read too).
readers = Allow(*FIELD_ROLES, scope=Scope.results_read)


def _names(access: Access) -> bool:
    """Whether the caller sees voters' names: organizers do; a key needs people:read."""
    return access.role is not None or Scope.people_read in access.caller.scopes


@router.get("/door-knocks", openapi_extra=readers.openapi, response_model=KnockFeed)
async def door_knocks(access: Annotated[Access, Depends(readers)], session: SessionDep,
                      after: Annotated[str | None, Query(description=(
                          "The `next` of the last page read: only knocks stored after it. Absent: from the "
                          "first."), max_length=64)] = None,
                      limit: Annotated[int, Query(ge=1, le=feed.MAX_PAGE)] = 500) -> Response:
    """The campaign's knocks in the order the server stored them. Keep `next` and send it back as `after`:
    every knock comes exactly once, however many syncs happen between pages, and an empty page means you are
    up to date (ask again later with the same `after`)."""
    items, last = await feed.page(session, access.campaign_id, after=int_cursor(after, "after"), limit=limit,
                                  names=_names(access))
    return Response(orjson.dumps({"items": items, "next": encode_cursor(last)}), media_type="application/json")


@router.get("/door-knocks.csv", openapi_extra=readers.openapi,
            responses={200: {"content": {"text/csv": {}}, "description": "The knocks, header first."}})
async def door_knocks_csv(request: Request, access: Annotated[Access, Depends(readers)],
                          since: Annotated[AwareDatetime | None, Query(description=(
                              "Knocks at or after this time (corrected time, with its zone).")
                          )] = None,
                          until: Annotated[AwareDatetime | None, Query(description=(
                              "Knocks before this time (corrected time, with its zone).")
                          )] = None) -> StreamingResponse:
    """The knocks of a time window as CSV, in the order stored, streamed (a whole campaign fits)."""
    if since is not None and until is not None and until <= since:
        raise Invalid("until must be after since", field="until")
    rows = feed.csv_rows(request.app.state.sessionmaker, access.campaign_id, since=since, until=until,
                         names=_names(access))
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{access.campaign.slug}-door-knocks.csv"'})
