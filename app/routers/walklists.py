from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.service import Access
from app.organizing import holdings
from app.routers.audit import audit_read
from app.routers.deps import ALL_ROLES, Allow, SessionDep
from app.routers.responses import etag_matches
from app.values import Count, Id
from app.walklists import service as walklists
from app.walklists.schemas import WalkList

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["walk lists"])

# Members only: a walk list carries voters' names. Canvassers get the turfs they hold, hosts also those checked out
# at their events while the event is on (holdings.turf_ids_visible).
members = Allow(*ALL_ROLES)


@router.get("/turfs/{turf_id}/walklist", openapi_extra=members.openapi,
            responses={200: {"model": WalkList, "description": "The walk list, or its changes after `since`."}})
async def get_walklist(turf_id: Id, request: Request, access: Annotated[Access, Depends(members)],
                       session: SessionDep,
                       since: Annotated[Count | None, Query(description=(
                           "A version this phone has: only what changed after it comes back."))] = None,
                       ) -> Response:
    """Everything a canvasser needs for a shift in one download: the turf, its route, its script, and its
    buildings in walking order with their households, people and last results. Send the `ETag` back in
    `If-None-Match` for a 304, or `since=<version>` for only the changes."""
    turf = await walklists.walk_turf(session, access.campaign_id, turf_id,
                                     only=await holdings.turfs_visible_to(session, access, people=True))
    # Vary too, so a 304 says what its 200 (compressed on the way out) says.
    headers = {"ETag": walklists.etag(turf, since), "Cache-Control": "private, no-cache", "Vary": "Accept-Encoding"}
    if etag_matches(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    headers["ETag"], body, people = await walklists.walklist(session, turf, since=since)
    audit_read(request, access, "walklist.read", f"turf {turf_id}", people)
    return Response(body, media_type="application/json", headers=headers)
