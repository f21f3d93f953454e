import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.scopes import Scope
from app.auth.service import Access
from app.campaigns.roles import Role
from app.db import unavailable
from app.errors import Forbidden, NotFound, TooManyRequests, Unauthenticated
from app.organizing import launches
from app.progress import live
from app.progress import service as progress
from app.progress.schemas import CampaignProgress, PrecinctProgress, TurfProgress
from app.routers.deps import FIELD_ROLES, Allow, CampaignId, SessionDep, SettingsDep, api_key_header, oauth2
from app.routers.features import RANGE_RESPONSES, Collection, answer, in_sessions
from app.routers.responses import (
    GEOJSON,
    GEOJSON_RESPONSE,
    EventStream,
    etag_matches,
    fast_compressed,
    geojson_format,
    geojson_twin,
    wants_geojson,
)
from app.values import Id, Moment

router = APIRouter(prefix="/v1/campaigns/{campaign_id}/progress", tags=["progress"])

# Organizers see the whole campaign, a host their own events' turfs (with `event`), API keys with progress:read.
readers = Allow(*FIELD_ROLES, Role.host, scope=Scope.progress_read)

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
    # Vary too, so a 304 says what its 200 (fast_compressed) says.
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Accept-Encoding"}
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    body, media_type = await make(geo)
    if isinstance(body, Collection):
        return await answer(request, body, headers=headers)
    return await fast_compressed(request, body, media_type=media_type, headers=headers)


@router.get("", openapi_extra=readers.openapi, response_model=CampaignProgress)
async def get_campaign_progress(request: Request, access: Annotated[Access, Depends(readers)], session: SessionDep,
                                chosen: FiltersDep) -> Response:
    """The campaign's totals: doors, doors attempted and contacted, knocks by result, share done, last knock."""
    async def make(_: bool) -> tuple[bytes, str]:
        return orjson.dumps(await progress.campaign_progress(session, access.campaign_id, chosen)), "application/json"
    return await _answer(request, access, session, False, make)


# How long a browser's EventSource waits before it reconnects to a stream that ended (sent as `retry:`).
RECONNECT_MS = 5000


@router.get("/stream", openapi_extra=readers.openapi, response_class=EventStream, responses={
    200: {"description": "Server-Sent Events: `progress` with the campaign's change counter, at once and on every "
                         "change."},
    429: {"description": "The caller has as many streams open on this server as it may "
                         "(`DOORSTEP_STREAMS_PER_CALLER`)."}})
async def stream_progress(request: Request, access: Annotated[Access, Depends(readers)], session: SessionDep,
                          chosen: FiltersDep, settings: SettingsDep, campaign_id: CampaignId,
                          bearer: Annotated[str | None, Depends(oauth2)],
                          api_key: Annotated[str | None, Depends(api_key_header)]) -> EventStream:
    """Server-Sent Events: a `progress` event now and within a second of every change to the campaign's progress
    (a sync, a cut, an assignment), from whichever server process made it. Its data holds the change counter
    (`changes`, also the event id): read `/progress...` again, sending your ETag, to get the new figures. It
    starts with `retry:`, how long a client waits before reconnecting to a stream that ended. The caller's
    access is checked again as the stream goes on: a revoked key's, an ended login's or a removed member's stream
    ends within a keep-alive's interval (15 s unless the server sets another), and reconnecting gets the 401 or
    404."""
    caller = access.caller.api_key_id or access.caller.user_id
    try:
        subscription = live.HUB.join(access.campaign_id, caller, most=settings.streams_per_caller)
    except live.TooManyStreams:
        raise TooManyRequests(f"{settings.streams_per_caller} progress streams are open for this caller already; "
                              "close one, or share one stream between views.", retry_after=RECONNECT_MS // 1000
                              ) from None
    await session.close()  # a stream can last hours: hold no connection between events
    maker = request.app.state.sessionmaker
    ids = access.campaign_id

    async def read() -> int:
        async with maker() as reader:
            return await progress.changes(reader, ids)

    async def still_allowed() -> bool:
        """The stream's access checked as at its start; True while the database can't tell (an outage)."""
        async with maker() as again:
            try:
                seen = await readers(campaign_id, again, settings, bearer, api_key)
                await filters(seen, again, list(chosen.precincts) or None, chosen.event_id)
            except (Unauthenticated, NotFound, Forbidden):
                return False
            except Exception as exc:
                if not unavailable(exc):
                    raise
        return True

    async def events() -> AsyncIterator[bytes]:
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        loop = asyncio.get_running_loop()
        check_at = loop.time() + settings.stream_keep_alive_s
        try:
            # Through a database outage too: keep-alives go on, and events again once it is back.
            async with contextlib.aclosing(live.watch(lambda: live.HUB.counter(ids, read), subscription.queue,
                                                      keep_alive_s=settings.stream_keep_alive_s)) as changed:
                async for changes in changed:
                    if loop.time() >= check_at:
                        if not await still_allowed():
                            return
                        check_at = loop.time() + settings.stream_keep_alive_s
                    if changes is not None:
                        data = orjson.dumps({"changes": changes}).decode()
                        yield f"event: progress\nid: {changes}\ndata: {data}\n\n".encode()
                    elif await request.is_disconnected():
                        return
                    else:
                        yield b": keep-alive\n\n"
        finally:
            subscription.close()
    return EventStream(events(), on_close=subscription.close,
                       headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _rows(read: Any, *, turfs: bool) -> Any:
    """What a list route makes: JSON rows, or a FeatureCollection of every row, read a page at a time."""
    def maker(request: Request, session: SessionDep, access: Access, chosen: progress.Filters) -> Any:
        async def make(geo: bool) -> tuple[bytes | Collection, str]:
            if not geo:
                return progress.as_json(await read(session, access.campaign_id, chosen)), "application/json"
            first, more = await progress.feature_pages(session, access.campaign_id, chosen, turfs=turfs,
                                                       limit=request.app.state.settings.geojson_page)
            collection = Collection(first, in_sessions(request, more))
            if not collection.whole:
                await session.close()  # the pages after are read in sessions of their own
            return collection, GEOJSON
        return make
    return maker


_precincts = _rows(progress.precinct_progress, turfs=False)
_turfs = _rows(progress.turf_progress, turfs=True)


@router.get("/precincts", openapi_extra=readers.openapi, response_model=list[PrecinctProgress],
            responses={**GEOJSON_RESPONSE, **RANGE_RESPONSES}, dependencies=[Depends(geojson_format)])
async def list_precinct_progress(request: Request, access: Annotated[Access, Depends(readers)], session: SessionDep,
                                 chosen: FiltersDep) -> Response:
    """Each precinct's progress. As GeoJSON (`Accept: application/geo+json` or `?format=geojson`), the precinct
    polygons with the figures as properties."""
    return await _answer(request, access, session, True, _precincts(request, session, access, chosen))


@router.get("/turfs", openapi_extra=readers.openapi, response_model=list[TurfProgress],
            responses={**GEOJSON_RESPONSE, **RANGE_RESPONSES}, dependencies=[Depends(geojson_format)])
async def list_turf_progress(request: Request, access: Annotated[Access, Depends(readers)], session: SessionDep,
                             chosen: FiltersDep) -> Response:
    """Each active turf's progress. As GeoJSON (`Accept: application/geo+json` or `?format=geojson`), the turf
    polygons with the figures as properties."""
    return await _answer(request, access, session, True, _turfs(request, session, access, chosen))


for _path, _list in (("/precincts.geojson", list_precinct_progress), ("/turfs.geojson", list_turf_progress)):
    geojson_twin(router, _path, _list, name=f"{_list.__name__}_geojson",
                 of=f"/v1/campaigns/{{campaign_id}}/progress{_path.removesuffix('.geojson')}",
                 openapi_extra=readers.openapi, responses=RANGE_RESPONSES)
