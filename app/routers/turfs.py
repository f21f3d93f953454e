import json
from collections.abc import Sequence
from typing import Annotated, Any

import anyio
import orjson
import shapely
from fastapi import APIRouter, Depends, Query, Request, Response, status
from shapely.geometry import shape as geojson_shape

from app.addresses.schemas import HouseholdBrief
from app.auth.scopes import Scope
from app.auth.service import Access
from app.config import Settings
from app.errors import Invalid
from app.organizing import holdings
from app.precincts import service as precinct_service
from app.routers.audit import audit_read
from app.routers.deps import ALL_ROLES, FIELD_ROLES, Allow, SessionDep, SettingsDep, spawn
from app.routers.features import RANGE_RESPONSES, WHOLE, as_feature, listing, written
from app.routers.responses import GEOJSON_RESPONSE, geojson_format, geojson_twin, link_next, wants_geojson
from app.turfs import cutting as cut_service
from app.turfs import service as turf_service
from app.turfs.models import Turf, TurfCut
from app.turfs.schemas import (
    GeometryIn,
    TurfCreate,
    TurfCutCreate,
    TurfCutRead,
    TurfDeleted,
    TurfDetail,
    TurfPage,
    TurfRead,
    TurfUpdate,
)
from app.values import Id

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["turfs"])

# Hosts and canvassers read too, but only the turfs they hold or host (see holdings.turfs_visible_to).
readers = Allow(*ALL_ROLES, scope=Scope.turfs_read)
cut_readers = Allow(*FIELD_ROLES, scope=Scope.turfs_read)
field = Allow(*FIELD_ROLES)


def _shape(geometry: GeometryIn, settings: Settings) -> Any:
    if geometry.vertices > settings.turf_max_vertices:
        raise Invalid(f"the polygon has {geometry.vertices} vertices; a turf has at most {settings.turf_max_vertices}",
                      field="geometry.coordinates")
    try:
        return geojson_shape(geometry.model_dump())
    except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.GEOSException) as exc:
        raise Invalid(f"not GeoJSON {geometry.type} coordinates", field="geometry.coordinates") from exc


def _read(row: Any, code: str) -> TurfRead:
    return TurfRead(id=row.id, name=row.name, precinct_id=code, source=row.source, status=row.status,
                    doors=row.doors, buildings=row.buildings, holders=row.holders, knocks=row.knocks,
                    doors_attempted=row.doors_attempted, doors_contacted=row.doors_contacted,
                    last_knock_at=row.last_knock_at, version=row.version,
                    bbox=(row.min_lon, row.min_lat, row.max_lon, row.max_lat), created_at=row.created_at,
                    updated_at=row.updated_at)


async def _detail(session: Any, turf: Turf) -> TurfDetail:
    detail = await turf_service.turf_detail(session, turf)
    return TurfDetail(**_read(turf, detail["precinct_code"]).model_dump(), precincts=detail["precincts"],
                      geometry=orjson.loads(turf.geojson),
                      households=[HouseholdBrief(id=h.id, address_id=h.external_id, number=h.number, street=h.street,
                                                unit=h.unit, building_id=h.building_id, precinct_id=h.precinct_code,
                                                lon=h.lon, lat=h.lat) for h in detail["households"]])


def _features(rows: Sequence[Any]) -> bytes:
    return written([as_feature(r.id, r.geojson, {"id": r.id, "name": r.name, "precinct_id": r.precinct_code,
                                                 "doors": r.doors, "buildings": r.buildings, "status": r.status,
                                                 "holders": r.holders}, [r.min_lon, r.min_lat, r.max_lon, r.max_lat])
                    for r in rows])


@router.get("/turfs", responses={**GEOJSON_RESPONSE, **RANGE_RESPONSES}, openapi_extra=readers.openapi,
            dependencies=[Depends(geojson_format)])
async def list_turfs(request: Request, response: Response, access: Annotated[Access, Depends(readers)],
                     session: SessionDep, precinct: str | None = None,
                     status: Annotated[str | None, Query(pattern="^(active|archived)$")] = None,
                     cursor: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000, description=WHOLE)] = 100) -> TurfPage:
    """The campaign's turfs, of one precinct or status if asked, a page at a time; GeoJSON on request: then,
    without `limit`, every turf (streamed; `Range` reads a part)."""
    precinct_id = (await precinct_service.precinct_id_for(session, access.campaign_id, precinct)
                   if precinct is not None else None)
    geo = wants_geojson(request)
    whole = geo and "limit" not in request.query_params
    only = await holdings.turfs_visible_to(session, access)

    async def read(reader: Any, after: str | None, size: int) -> tuple[list[Any], str | None]:
        return await turf_service.list_turfs(reader, access.campaign_id, precinct_id=precinct_id, status=status,
                                             cursor=after, limit=size, geometry=geo, only=only)
    page = request.app.state.settings.geojson_page if whole else limit
    rows, next_cursor = await read(session, cursor, page)
    if geo:
        return await listing(request, session, (rows, next_cursor), whole=whole, features=_features,
                             more=lambda reader, after: read(reader, after, page))
    link_next(request, response, next_cursor)
    return TurfPage(items=[_read(r, r.precinct_code) for r in rows], next_cursor=next_cursor)


@router.post("/turfs", status_code=status.HTTP_201_CREATED, openapi_extra=field.openapi,
             responses={409: {"description": "The polygon overlaps active turfs (without `take_over`), or holds only "
                                              "other turfs' doors."}})
async def draw_turf(body: TurfCreate, access: Annotated[Access, Depends(field)], session: SessionDep,
                    settings: SettingsDep) -> TurfDetail:
    """Draw a turf: the doors inside the polygon become its doors."""
    turf = await turf_service.draw_turf(session, access.campaign_id, name=body.name,
                                        shape=await anyio.to_thread.run_sync(_shape, body.geometry, settings),
                                        take_over=body.take_over)
    return await _detail(session, turf)


@router.get("/turfs/{turf_id}", openapi_extra=readers.openapi)
async def get_turf(turf_id: Id, request: Request, access: Annotated[Access, Depends(readers)],
                   session: SessionDep) -> TurfDetail:
    """One turf with its polygon and its households."""
    # Households are voters' addresses: a host reads them as a walk list.
    only = await holdings.turfs_visible_to(session, access, people=True)
    detail = await _detail(session, await turf_service.get_turf(session, access.campaign_id, turf_id, only=only))
    audit_read(request, access, "households.read", f"turf {turf_id}", len(detail.households))
    return detail


@router.patch("/turfs/{turf_id}", openapi_extra=field.openapi, responses={409: {
    "description": "The turf is archived, or the new polygon overlaps active turfs (without `take_over`)."}})
async def update_turf(turf_id: Id, body: TurfUpdate, access: Annotated[Access, Depends(field)],
                      session: SessionDep, settings: SettingsDep) -> TurfDetail:
    """Rename or reshape a turf; a new shape recomputes its doors."""
    turf = await turf_service.update_turf(session, access.campaign_id, turf_id, name=body.name,
                                          shape=(await anyio.to_thread.run_sync(_shape, body.geometry, settings)
                                                 if body.geometry else None),
                                          take_over=body.take_over)
    return await _detail(session, turf)


@router.delete("/turfs/{turf_id}", openapi_extra=field.openapi,
               responses={409: {"description": "The turf is archived already, or someone holds it."}})
async def delete_turf(turf_id: Id, access: Annotated[Access, Depends(field)], session: SessionDep) -> TurfDeleted:
    """Delete a turf nobody has worked; a worked one is archived instead."""
    outcome = await turf_service.delete_turf(session, access.campaign_id, turf_id)
    return TurfDeleted(id=turf_id, outcome=outcome)


def _cut_read(job: TurfCut) -> TurfCutRead:
    return TurfCutRead(id=job.id, state=job.state, target_doors=job.target_doors,
                       precincts=job.precincts.split() if job.precincts else None,
                       precincts_total=job.precincts_total, precincts_done=job.precincts_done,
                       turfs_made=job.turfs_made, report=json.loads(job.report) if job.report else None,
                       error=job.error, created_at=job.created_at, finished_at=job.finished_at)


@router.post("/turf-cuts", status_code=status.HTTP_202_ACCEPTED, openapi_extra=field.openapi,
             responses={409: {"description": "Another cut of this campaign is still running."}})
async def start_turf_cut(body: TurfCutCreate, request: Request, response: Response,
                         access: Annotated[Access, Depends(field)], session: SessionDep) -> TurfCutRead:
    """Cut precincts (or all) into turfs of about `target_doors` doors, in the background; poll the cut."""
    job = await cut_service.start_cut(session, access.campaign_id, codes=body.precincts, target=body.target_doors,
                                       created_by=str(access.caller.user_id) if access.caller.user_id else None)
    assert job.id is not None
    spawn(request.app, cut_service.run_cut(request.app.state.sessionmaker, job.id))
    response.headers["Location"] = f"/v1/campaigns/{access.campaign.slug}/turf-cuts/{job.id}"
    return _cut_read(job)


@router.get("/turf-cuts/{cut_id}", openapi_extra=cut_readers.openapi)
async def get_turf_cut(cut_id: Id, access: Annotated[Access, Depends(cut_readers)],
                       session: SessionDep) -> TurfCutRead:
    """A cut's state, precincts done, turfs made and, once done, its quality report."""
    return _cut_read(await cut_service.get_cut(session, access.campaign_id, cut_id))


geojson_twin(router, "/turfs.geojson", list_turfs, name="list_turfs_geojson", of="/v1/campaigns/{campaign_id}/turfs",
             openapi_extra=readers.openapi, responses=RANGE_RESPONSES)
