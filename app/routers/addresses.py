from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import contact
from app.addresses import service as address_service
from app.addresses.models import Household, Person
from app.addresses.schemas import ContactChange, ContactRead, HouseholdPage, HouseholdRead
from app.attributes.service import parse_keeps
from app.auth.service import Access
from app.config import Settings
from app.ingest import FieldSpec, ImportReport, parse_map
from app.precincts import service as precinct_service
from app.precincts.schemas import ImportReportRead
from app.routers.audit import audit_read
from app.routers.deps import FIELD_ROLES, Allow, SessionDep, SettingsDep
from app.routers.responses import link_next, uploaded_file
from app.values import Id

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["addresses"])

field = Allow(*FIELD_ROLES)
FILE_HELP = "CSV, GeoJSON, GeoPackage or zipped Shapefile, told by content; anything else gets 415."
UPLOAD_RESPONSES: dict[int | str, dict[str, str]] = {415: {"description": FILE_HELP}}
MAP_HELP = "FIELD=COLUMN, once per field to rename; join columns with +: `street=street_name+street_suffix`."
KEEP_HELP = ("COLUMN or COLUMN:TYPE, once per column to keep as an attribute (`support_score:int`); TYPE is text "
             "(the default), int, number, bool or date. Only the columns named are kept.")


async def _import_upload(service: Callable[..., Awaitable[ImportReport]], spec: FieldSpec, file: UploadFile,
                         renames: list[str], access: Access, session: AsyncSession,
                         settings: Settings, keep: list[str] | None = None, **more: Any) -> ImportReportRead:
    """Save the upload and import it with `service`, its columns renamed by `renames` (the `map` form field) and
    those `keep` names kept; a bad rename or keep fails before the upload is saved."""
    mapping = parse_map(renames, spec)
    kept = ({"keeps": parse_keeps(keep)} if keep else {}) | {k: v for k, v in more.items() if v}
    async with uploaded_file(file, max_bytes=settings.upload_max_bytes) as path:
        report = await service(session, access.campaign_id, path, label=file.filename or "upload", mapping=mapping,
                               **kept)
    return ImportReportRead(**report.as_dict())


@router.get("/households", openapi_extra=field.openapi)
async def list_households(request: Request, response: Response, access: Annotated[Access, Depends(field)],
                          session: SessionDep, precinct: str | None = None, cursor: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> HouseholdPage:
    """The campaign's households (doors), of one precinct if asked, a page at a time."""
    precinct_id = (await precinct_service.precinct_id_for(session, access.campaign_id, precinct)
                   if precinct is not None else None)
    rows, next_cursor = await address_service.list_households(session, access.campaign_id, precinct_id=precinct_id,
                                                              cursor=cursor, limit=limit)
    link_next(request, response, next_cursor)
    audit_read(request, access, "households.read",
               f"precinct {precinct}" if precinct is not None else "all precincts", len(rows))
    return HouseholdPage(items=[HouseholdRead(address_id=r.pop("external_id"), **r) for r in rows],
                         next_cursor=next_cursor)


@router.post("/addresses", openapi_extra=field.openapi, responses=UPLOAD_RESPONSES)
async def import_addresses(file: Annotated[UploadFile, File(description=FILE_HELP)],
                           access: Annotated[Access, Depends(field)], session: SessionDep, settings: SettingsDep,
                           map: Annotated[list[str], Form(description=MAP_HELP)] = [],  # noqa: B006
                           keep: Annotated[list[str], Form(description=KEEP_HELP)] = []) -> ImportReportRead:  # noqa: B006
    """Import an address file, atomically: units grouped into buildings, buildings placed in precincts, the
    columns `keep` names kept as household attributes."""
    return await _import_upload(address_service.import_addresses, address_service.ADDRESS_FIELDS, file, map,
                                access, session, settings, keep)


@router.post("/people", openapi_extra=field.openapi, responses=UPLOAD_RESPONSES)
async def import_people(file: Annotated[UploadFile, File(description="A voter file. " + FILE_HELP)],
                        access: Annotated[Access, Depends(field)], session: SessionDep, settings: SettingsDep,
                        map: Annotated[list[str], Form(description=MAP_HELP)] = [],  # noqa: B006
                        keep: Annotated[list[str], Form(description=KEEP_HELP)] = [],  # noqa: B006
                        tags: Annotated[str | None, Form(max_length=200, description=(
                            "The column listing each person's tags (activist codes), separated by ; or ,."))] = None,
                        ) -> ImportReportRead:
    """Import a voter file linked to households by address id, atomically, the columns `keep` names kept as
    the people's attributes (and only those), and the tags the `tags` column lists."""
    return await _import_upload(address_service.import_people, address_service.PEOPLE_FIELDS, file, map,
                                access, session, settings, keep, tags=tags)


def _contact(row: Person | Household) -> ContactRead:
    assert row.id is not None
    return ContactRead(id=row.id, do_not_contact=row.do_not_contact is not None, reason=row.do_not_contact,
                       since=row.do_not_contact_at)


@router.put("/people/{person_id}/do-not-contact", openapi_extra=field.openapi)
async def set_person_contact(person_id: Id, body: ContactChange, access: Annotated[Access, Depends(field)],
                             session: SessionDep) -> ContactRead:
    """Keep a person off every list from now on, or let them be knocked again (clearing any mark, whatever made
    it)."""
    return _contact(await contact.mark(session, access.campaign_id, Person, person_id,
                                       do_not_contact=body.do_not_contact))


@router.put("/households/{household_id}/do-not-contact", openapi_extra=field.openapi)
async def set_household_contact(household_id: Id, body: ContactChange, access: Annotated[Access, Depends(field)],
                                session: SessionDep) -> ContactRead:
    """Keep a door off every list from now on, or let it be knocked again."""
    return _contact(await contact.mark(session, access.campaign_id, Household, household_id,
                                       do_not_contact=body.do_not_contact))
