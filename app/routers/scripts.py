from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, status

from app.auth.scopes import Scope
from app.auth.service import Access
from app.routers.deps import FIELD_ROLES, Allow, SessionDep
from app.scripts import service as scripts
from app.scripts.models import Script, ScriptVersion
from app.scripts.schemas import ScriptIn, ScriptPage, ScriptRead, ScriptUses, ScriptVersionRead, VersionBrief
from app.values import Id

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["scripts"])

field = Allow(*FIELD_ROLES)
# Tools reading results need the questions and codes the answers refer to.
readers = Allow(*FIELD_ROLES, scope=Scope.results_read)


def _version(v: ScriptVersion) -> ScriptVersionRead:
    return ScriptVersionRead(script_id=v.script_id, version=v.version, name=v.name,
                             questions=orjson.loads(v.questions), result_codes=orjson.loads(v.result_codes),
                             frozen=v.frozen, created_at=v.created_at)


async def _reads(session: SessionDep, items: list[Script]) -> list[ScriptRead]:
    details = await scripts.script_details(session, items)
    reads = []
    for s in items:
        d = details[s.id]  # type: ignore[index]
        current = next(v for v in d["versions"] if v.version == s.version)
        reads.append(ScriptRead(
            id=s.id, name=s.name, version=s.version, turfs_using=d["turfs_using"], current=_version(current),
            uses=ScriptUses(default=s.is_default, precincts=d["precincts"], turf_ids=d["turf_ids"]),
            versions=[VersionBrief(version=v.version, frozen=v.frozen, created_at=v.created_at)
                      for v in d["versions"]],
            created_at=s.created_at, updated_at=s.updated_at))
    return reads


# Every script answer leaves out what is not set (a choice's tag): a script reads back as it was written, and as
# walk lists carry it.
@router.get("/scripts", response_model_exclude_none=True, openapi_extra=readers.openapi)
async def list_scripts(access: Annotated[Access, Depends(readers)], session: SessionDep) -> ScriptPage:
    """The campaign's survey scripts, each with its current version and where it is used."""
    return ScriptPage(items=await _reads(session, await scripts.list_scripts(session, access.campaign_id)))


@router.post("/scripts", response_model_exclude_none=True, status_code=status.HTTP_201_CREATED,
             openapi_extra=field.openapi, responses={409: {"description": "The campaign has a script of that name."}})
async def create_script(body: ScriptIn, access: Annotated[Access, Depends(field)], session: SessionDep) -> ScriptRead:
    """A new survey script: its questions and the campaign's own door results (the standard ones are given)."""
    script = await scripts.create_script(session, access.campaign_id, body)
    return (await _reads(session, [script]))[0]


@router.get("/scripts/{script_id}", response_model_exclude_none=True, openapi_extra=readers.openapi)
async def get_script(script_id: Id, access: Annotated[Access, Depends(readers)], session: SessionDep) -> ScriptRead:
    """A script: its current version, its versions and its uses."""
    return (await _reads(session, [await scripts.get_script(session, access.campaign_id, script_id)]))[0]


@router.put("/scripts/{script_id}", response_model_exclude_none=True, openapi_extra=field.openapi,
            responses={409: {"description": "The campaign has another script of that name."}})
async def update_script(script_id: Id, body: ScriptIn, access: Annotated[Access, Depends(field)],
                        session: SessionDep) -> ScriptRead:
    """Change a script. Once it is in use a change makes a new version, which its turfs' walk lists carry;
    results already recorded keep pointing at the version they answered."""
    script = await scripts.update_script(session, access.campaign_id, script_id, body)
    return (await _reads(session, [script]))[0]


@router.put("/scripts/{script_id}/uses", response_model_exclude_none=True, openapi_extra=field.openapi)
async def set_script_uses(script_id: Id, body: ScriptUses, access: Annotated[Access, Depends(field)],
                          session: SessionDep) -> ScriptRead:
    """Say which precincts and turfs use this script, and whether it is the campaign's default (the script of
    turfs with no other). A turf's own script wins over its precinct's, which wins over the default."""
    script = await scripts.set_uses(session, access.campaign_id, script_id, body)
    return (await _reads(session, [script]))[0]


@router.get("/scripts/{script_id}/versions/{version}", response_model_exclude_none=True,
            openapi_extra=readers.openapi)
async def get_script_version(script_id: Id, version: Id, access: Annotated[Access, Depends(readers)],
                             session: SessionDep) -> ScriptVersionRead:
    """One version of a script, as the knocks that answered it saw it."""
    return _version(await scripts.get_version(session, access.campaign_id, script_id, version))
