import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.auth.scopes import Scope
from app.auth.service import Access
from app.errors import Invalid
from app.precincts import service as precinct_service
from app.precincts.schemas import FeatureCollectionIn, ImportReportRead, PrecinctDetail, PrecinctPage, PrecinctRead
from app.routers.deps import ALL_ROLES, FIELD_ROLES, Allow, SessionDep, SettingsDep
from app.routers.features import RANGE_RESPONSES, WHOLE, as_feature, listing, written
from app.routers.responses import (
    GEOJSON_RESPONSE,
    geojson_format,
    geojson_twin,
    link_next,
    require_json,
    wants_geojson,
)

router = APIRouter(prefix="/v1/campaigns/{campaign_id}/precincts", tags=["precincts"])

readers = Allow(*ALL_ROLES, scope=Scope.turfs_read)
field = Allow(*FIELD_ROLES)


def _read(row: Any) -> PrecinctRead:
    return PrecinctRead(id=row.code, name=row.name, bbox=(row.min_lon, row.min_lat, row.max_lon, row.max_lat),
                        buildings=row.building_count, households=row.household_count, people=row.person_count)


def _features(rows: Sequence[Any]) -> bytes:
    return written([as_feature(r.code, r.geojson, _read(r).model_dump(exclude={"bbox"}),
                               [r.min_lon, r.min_lat, r.max_lon, r.max_lat]) for r in rows])


@router.get("", responses={**GEOJSON_RESPONSE, **RANGE_RESPONSES}, openapi_extra=readers.openapi,
            dependencies=[Depends(geojson_format)])
async def list_precincts(request: Request, response: Response, access: Annotated[Access, Depends(readers)],
                         session: SessionDep, settings: SettingsDep, cursor: str | None = None,
                         limit: Annotated[int, Query(ge=1, le=1000, description=WHOLE)] = 100) -> PrecinctPage:
    """The campaign's precincts, a page at a time; GeoJSON when asked for `application/geo+json`: then, without
    `limit`, every precinct (streamed; `Range` reads a part)."""
    geo = wants_geojson(request)
    whole = geo and "limit" not in request.query_params
    page = settings.geojson_page if whole else limit
    rows, next_cursor = await precinct_service.list_precincts(session, access.campaign_id, cursor=cursor,
                                                              limit=page, geometry=geo)
    if geo:
        return await listing(request, session, (rows, next_cursor), whole=whole, features=_features,
                             more=lambda reader, after: precinct_service.list_precincts(
                                 reader, access.campaign_id, cursor=after, limit=page, geometry=True))
    link_next(request, response, next_cursor)
    return PrecinctPage(items=[_read(r) for r in rows], next_cursor=next_cursor)


@router.get("/{precinct_id}", openapi_extra=readers.openapi)
async def get_precinct(precinct_id: str, access: Annotated[Access, Depends(readers)],
                       session: SessionDep) -> PrecinctDetail:
    """One precinct with its polygon and its counts of buildings, households and people."""
    row = await precinct_service.get_precinct(session, access.campaign_id, precinct_id)
    return PrecinctDetail(**_read(row).model_dump(), geometry=orjson.loads(row.geojson))


@router.post("", status_code=status.HTTP_200_OK, openapi_extra=field.openapi, dependencies=[Depends(require_json)],
             responses={415: {"description": "The body is not GeoJSON (application/json or application/geo+json)."}})
async def import_precincts(body: FeatureCollectionIn, access: Annotated[Access, Depends(field)],
                           session: SessionDep, settings: SettingsDep,
                           id_field: str = precinct_service.DEFAULT_ID_FIELD,
                           name_field: str | None = None) -> ImportReportRead:
    """Create or update precincts from a GeoJSON FeatureCollection, atomically; reports what it did."""
    for i, feature in enumerate(body.features):
        if feature.geometry is not None and feature.geometry.vertices > settings.precinct_max_vertices:
            raise Invalid(f"feature {i} has {feature.geometry.vertices} vertices; a precinct has at most "
                          f"{settings.precinct_max_vertices}", field=f"body.features.{i}.geometry.coordinates")
    with tempfile.TemporaryDirectory(prefix="doorstep-precincts-") as folder:
        path = Path(folder) / "precincts.geojson"
        # Off the event loop: a state's precincts take a while to encode.
        await anyio.to_thread.run_sync(lambda: path.write_bytes(_encoded(body)))
        report = await precinct_service.import_precincts(session, access.campaign_id, path, label="request body",
                                                         id_field=id_field, name_field=name_field)
    return ImportReportRead(**report.as_dict())


def _encoded(body: FeatureCollectionIn) -> bytes:
    """The collection as the GeoJSON file the import reads. Raises Invalid for an integer past 64 bits (JSON
    allows any; orjson, like the GIS readers, holds 64): the only value read from JSON it can't write."""
    try:
        return orjson.dumps(body.model_dump(exclude_unset=True))
    except orjson.JSONEncodeError as exc:
        raise Invalid("a number in the body is an integer past 64 bits, which no GeoJSON reader holds",
                      field="body") from exc


geojson_twin(router, ".geojson", list_precincts, name="list_precincts_geojson",
             of="/v1/campaigns/{campaign_id}/precincts", openapi_extra=readers.openapi, responses=RANGE_RESPONSES)
