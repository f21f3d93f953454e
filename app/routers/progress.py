import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.auth.scopes import Scope
from app.auth.service import Access
from app.campaigns.roles import Role
from app.errors import Forbidden
from app.organizing import launches
from app.progress import live
from app.progress import service as progress
from app.progress.schemas import CampaignProgress, PrecinctProgress, TurfProgress
from app.routers.deps import FIELD_ROLES, Allow, SessionDep
from app.routers.responses import GEOJSON, etag_matches, fast_compressed, wants_geojson
from app.values import Id, Moment

router = APIRouter(prefix="/v1/campaigns/{campaign_id}/progress", tags=["progress"])

# Organizers see the whole campaign, a host their own events' turfs (with `event`), API keys with progress:read.
readers = Allow(*FIELD_ROLES, Role.host, scope=Scope.progress_read)

NOT_MODIFIED = {304: {"description": "Not modified: the `ETag` sent in `If-None-Match` is current."}}
# What a list of precincts or turfs answers besides its JSON rows: a FeatureCollection when asked, or a 304.
LIST_RESPONSE = {**NOT_MODIFIED, 200: {"content": {GEOJSON: {"schema": {
    "type": "object", "description": "A FeatureCollection: each polygon with the figures as its properties."}}}}}


async def filters(access: Annotated[Access, Depends(readers)], session: SessionDep,
                  precinct: Annotated[list[str] | None, Query(description="Only these precinct codes (repeat it).",
                                                              max_length=500)] = None,
                  event: Annotated[Id | None, Query(description="Only this event's turfs.")] = None,
                  since: Annotated[Moment | None, Query(description=(
                      "Only knocks at or after this time (corrected time, with its zone)."))] = None,
                  until: Annotated[Moment | None, Query(description=(
                      "Only knocks before this time (corrected time, with its zone)."))] = None,
                  ) -> progress.Filters:
    if access.role == Role.host:
        # A host sees only the turfs of an event they run.
        if event is None:
            raise Forbidden("A host reads the progress of their own events: send `event`.")
        assert access.caller.user_id is not None
        await launches.visible_event(session, access.campaign_id, event, user=access.caller.user_id,
                                     role=access.role)
    return progress.Filters(tuple(precinct or ()), event, since, until)


FiltersDep = Annotated[progress.Filters, Depends(filters)]


async def _answer(request: Request, access: Access, session: SessionDep, geojson_ok: bool,
                  make: Any) -> Response:
    """The progress answer with its ETag (the campaign's change counter, and what was asked), or a 304."""
    geo = geojson_ok and wants_geojson(request)
    asked = hashlib.sha256(f"{sorted(request.query_params.multi_items())}{geo}".encode()).hexdigest()[:12]
    etag = f'W/"p{await progress.changes(session, access.campaign_id)}-{asked}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    body, media_type = await make(geo)
    return await fast_compressed(request, body, media_type=media_type, headers=headers)


@router.get("", openapi_extra=readers.openapi, response_model=CampaignProgress, responses=NOT_MODIFIED)
async def campaign_progress(request: Request, access: Annotated[Access, Depends(readers)], session: SessionDep,
                            chosen: FiltersDep) -> Response:
    """The campaign's totals: doors, doors attempted and contacted, knocks by result, share done, last knock."""
    async def make(_: bool) -> tuple[bytes, str]:
        return orjson.dumps(await progress.campaign_progress(session, access.campaign_id, chosen)), "application/json"
    return await _answer(request, access, session, False, make)


# A comment line this often keeps proxies from closing a quiet stream.
KEEP_ALIVE_S = 15.0
# How long a browser's EventSource waits before it reconnects to a stream that ended (sent as `retry:`).
RECONNECT_MS = 5000


@router.get("/stream", openapi_extra=readers.openapi, responses={200: {"content": {"text/event-stream": {}},
            "description": "Server-Sent Events: `progress` with the campaign's change counter, at once and on "
                           "every change."}})
async def progress_stream(request: Request, access: Annotated[Access, Depends(readers)], session: SessionDep,
                          chosen: FiltersDep) -> StreamingResponse:
    """Server-Sent Events: a `progress` event now and within a second of every change to the campaign's progress
    (a sync, a cut, an assignment), from whichever server process made it. Its data holds the change counter
    (`changes`, also the event id): read `/progress...` again, sending your ETag, to get the new figures. It
    starts with `retry:`, how long a client waits before reconnecting to a stream that ended."""
    campaign_id = access.campaign_id
    queue = live.HUB.subscribe(campaign_id)
    await session.close()  # a stream can last hours: hold no connection between events

    async def events() -> AsyncIterator[bytes]:
        maker = request.app.state.sessionmaker
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        try:
            while True:
                async with maker() as reader:
                    changes = await progress.changes(reader, campaign_id)
                data = orjson.dumps({"changes": changes}).decode()
                yield f"event: progress\nid: {changes}\ndata: {data}\n\n".encode()
                while True:
                    try:
                        await asyncio.wait_for(queue.get(), KEEP_ALIVE_S)
                        break
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield b": keep-alive\n\n"
        finally:
            live.HUB.unsubscribe(campaign_id, queue)
    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _rows(read: Any, key: str) -> Any:
    """What a list route makes: JSON rows, or a FeatureCollection with `key` as each feature's id."""
    def maker(session: SessionDep, access: Access, chosen: progress.Filters) -> Any:
        async def make(geo: bool) -> tuple[bytes, str]:
            rows = await read(session, access.campaign_id, chosen, shapes=geo)
            return ((progress.as_geojson(rows, key), GEOJSON) if geo
                    else (progress.as_json(rows), "application/json"))
        return make
    return maker


_precincts = _rows(progress.precinct_progress, "code")
_turfs = _rows(progress.turf_progress, "id")


@router.get("/precincts", openapi_extra=readers.openapi, response_model=list[PrecinctProgress], responses=LIST_RESPONSE)
async def precinct_progress(request: Request, access: Annotated[Access, Depends(readers)], session: SessionDep,
                            chosen: FiltersDep) -> Response:
    """Each precinct's progress. As GeoJSON (`Accept: application/geo+json` or `?format=geojson`), the precinct
    polygons with the figures as properties."""
    return await _answer(request, access, session, True, _precincts(session, access, chosen))


@router.get("/turfs", openapi_extra=readers.openapi, response_model=list[TurfProgress], responses=LIST_RESPONSE)
async def turf_progress(request: Request, access: Annotated[Access, Depends(readers)], session: SessionDep,
                        chosen: FiltersDep) -> Response:
    """Each active turf's progress. As GeoJSON (`Accept: application/geo+json` or `?format=geojson`), the turf
    polygons with the figures as properties."""
    return await _answer(request, access, session, True, _turfs(session, access, chosen))
