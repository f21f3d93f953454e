"""Survey scripts: create, change (a new version once in use), say which turfs use them, and keep each
turf's resolved script version up to date."""

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import begin_write, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.precincts.models import Precinct
from app.scripts.models import Script, ScriptVersion
from app.scripts.schemas import ScriptIn, ScriptUses
from app.text import natural_key
from app.turfs.models import Turf

# Every script records these door results; a campaign adds its own beside them.
STANDARD_RESULTS: list[dict[str, Any]] = [
    {"code": "not_home", "label": "Not home", "contacted": False},
    {"code": "contacted", "label": "Contacted", "contacted": True},
    {"code": "refused", "label": "Refused", "contacted": True},
    {"code": "moved", "label": "Moved", "contacted": False},
    {"code": "inaccessible", "label": "Inaccessible", "contacted": False},
    {"code": "deceased", "label": "Deceased", "contacted": False},
    {"code": "come_back", "label": "Come back", "contacted": False},
]
STANDARD_CODES = frozenset(r["code"] for r in STANDARD_RESULTS)


def _content(body: ScriptIn) -> tuple[str, str, str]:
    """The stored form of a script's content: name, questions JSON, result codes JSON (standard ones first)."""
    for i, code in enumerate(body.result_codes):
        if code.code in STANDARD_CODES:
            raise Invalid(f"{code.code!r} is a standard result every script has", field=f"result_codes[{i}].code")
        if code.code in {c.code for c in body.result_codes[:i]}:
            raise Invalid(f"result code {code.code!r} appears twice", field=f"result_codes[{i}].code")
    # A choice's tag only where it has one: versions stored before tags were hold none.
    questions = orjson.dumps([q.model_dump(exclude_none=True) for q in body.questions]).decode()
    codes = orjson.dumps(STANDARD_RESULTS + [c.model_dump() for c in body.result_codes]).decode()
    return body.name, questions, codes


async def _name_free(session: AsyncSession, campaign_id: int, name: str, script_id: int | None) -> None:
    query = select(Script.id).where(Script.campaign_id == campaign_id, func.lower(Script.name) == name.lower())
    if script_id is not None:
        query = query.where(Script.id != script_id)
    if await session.scalar(query) is not None:
        raise Conflict(f"The campaign has a script named {name!r} already.")


async def create_script(session: AsyncSession, campaign_id: int, body: ScriptIn) -> Script:
    """A new script at version 1, used by no turf yet."""
    await begin_write(session)
    name, questions, codes = _content(body)
    await _name_free(session, campaign_id, name, None)
    script = Script(campaign_id=campaign_id, name=name)
    session.add(script)
    await session.flush()
    assert script.id is not None
    session.add(ScriptVersion(campaign_id=campaign_id, script_id=script.id, version=1, name=name,
                              questions=questions, result_codes=codes))
    await session.commit()
    return script


async def get_script(session: AsyncSession, campaign_id: int, script_id: int) -> Script:
    """The campaign's script with this id. Raises NotFound."""
    script = (await session.execute(select(Script).where(Script.campaign_id == campaign_id,
                                                         Script.id == script_id))).scalar_one_or_none()
    if script is None:
        raise NotFound(f"No script {script_id} in this campaign.")
    return script


async def get_version(session: AsyncSession, campaign_id: int, script_id: int, version: int) -> ScriptVersion:
    """One version of the campaign's script. Raises NotFound."""
    found = (await session.execute(select(ScriptVersion).where(
        ScriptVersion.campaign_id == campaign_id, ScriptVersion.script_id == script_id,
        ScriptVersion.version == version))).scalar_one_or_none()
    if found is None:
        raise NotFound(f"Script {script_id} has no version {version} in this campaign.")
    return found


async def _in_use(session: AsyncSession, script: Script) -> bool:
    if script.is_default:
        return True
    for model in (Precinct, Turf):
        if await session.scalar(select(model.id).where(model.script_id == script.id).limit(1)) is not None:
            return True
    return False


async def update_script(session: AsyncSession, campaign_id: int, script_id: int, body: ScriptIn) -> Script:
    """Change a script. A version put to use is never edited: the change becomes a new version, which the
    script's turfs then carry. The same content again changes nothing."""
    await begin_write(session)
    script = await get_script(session, campaign_id, script_id)
    name, questions, codes = _content(body)
    await _name_free(session, campaign_id, name, script.id)
    current = await get_version(session, campaign_id, script.id, script.version)  # type: ignore[arg-type]
    if (current.name, current.questions, current.result_codes) == (name, questions, codes):
        await session.commit()
        return script
    if current.frozen:
        script.version += 1
        session.add(ScriptVersion(campaign_id=campaign_id, script_id=script.id, version=script.version, name=name,
                                  questions=questions, result_codes=codes, frozen=await _in_use(session, script)))
    else:
        current.name, current.questions, current.result_codes = name, questions, codes
    script.name, script.updated_at = name, utcnow()
    await session.flush()
    await resolve_turf_scripts(session, campaign_id)
    await session.commit()
    return script


async def set_uses(session: AsyncSession, campaign_id: int, script_id: int, uses: ScriptUses) -> Script:
    """Make exactly these precincts and turfs (and the campaign's default, if asked) use this script.

    Putting a script to use freezes its current version. Raises Invalid naming unknown precincts or turfs.
    """
    await begin_write(session)
    script = await get_script(session, campaign_id, script_id)
    codes = sorted(set(uses.precincts), key=natural_key)
    precincts = dict((await session.execute(select(Precinct.code, Precinct.id).where(
        Precinct.campaign_id == campaign_id, Precinct.code.in_(codes)))).all()) if codes else {}
    missing = [c for c in codes if c not in precincts]
    if missing:
        raise Invalid(f"no precinct {', '.join(missing)} in this campaign", field="precincts")
    turf_ids = sorted(set(uses.turf_ids))
    found = dict((await session.execute(select(Turf.id, Turf.status).where(
        Turf.campaign_id == campaign_id, Turf.id.in_(turf_ids)))).all()) if turf_ids else {}
    unknown = [str(t) for t in turf_ids if t not in found]
    if unknown:
        raise Invalid(f"no turf {', '.join(unknown)} in this campaign", field="turf_ids")
    archived = [str(t) for t in turf_ids if found[t] != "active"]
    if archived:
        raise Invalid(f"turf {', '.join(archived)} is archived; nobody walks it any more", field="turf_ids")
    for model, ids in ((Precinct, list(precincts.values())), (Turf, turf_ids)):
        await session.execute(update(model).where(model.campaign_id == campaign_id, model.script_id == script.id,
                                                  model.id.not_in(ids)).values(script_id=None))
        if ids:
            await session.execute(update(model).where(model.id.in_(ids)).values(script_id=script.id))
    if uses.default and not script.is_default:
        await session.execute(update(Script).where(Script.campaign_id == campaign_id, Script.is_default)
                              .values(is_default=False))
    script.is_default, script.updated_at = uses.default, utcnow()
    await session.flush()
    if uses.default or precincts or turf_ids:
        await session.execute(update(ScriptVersion).where(ScriptVersion.script_id == script.id,
                                                          ScriptVersion.version == script.version)
                              .values(frozen=True))
    await resolve_turf_scripts(session, campaign_id)
    await session.commit()
    return script


async def resolve_turf_scripts(session: AsyncSession, campaign_id: int, turf_ids: Sequence[int] | None = None) -> None:
    """Point each active turf at its script's current version: its own script, else its precinct's, else the
    campaign's default. A turf whose version changes gets a new version number, so phones refresh."""
    # Every subquery refers to the turf row being updated (nested ones too: hence correlate_except).
    precinct_script = (select(Precinct.script_id).where(Precinct.id == Turf.precinct_id)
                       .correlate_except(Precinct).scalar_subquery())
    default_script = (select(Script.id).where(Script.campaign_id == Turf.campaign_id, Script.is_default)
                      .correlate_except(Script).scalar_subquery())
    chosen = func.coalesce(Turf.script_id, precinct_script, default_script)
    resolved = (select(ScriptVersion.id).join(Script, and_(Script.id == ScriptVersion.script_id,
                                                           Script.version == ScriptVersion.version))
                .where(Script.id == chosen).correlate_except(ScriptVersion, Script).scalar_subquery())
    query = (update(Turf).where(Turf.campaign_id == campaign_id, Turf.status == "active",
                                Turf.script_version_id.is_distinct_from(resolved))
             .values(script_version_id=resolved, version=Turf.version + 1, script_since=Turf.version + 1,
                     updated_at=utcnow())
             .execution_options(synchronize_session=False))
    if turf_ids is not None:
        query = query.where(Turf.id.in_(list(turf_ids)))
    await session.execute(query)


async def list_scripts(session: AsyncSession, campaign_id: int) -> list[Script]:
    return list((await session.execute(select(Script).where(Script.campaign_id == campaign_id)
                                       .order_by(Script.id))).scalars())


async def script_details(session: AsyncSession, scripts: Sequence[Script]) -> dict[int, dict[str, Any]]:
    """For each script: its versions, current version, uses and how many turfs carry it, in four queries."""
    ids = [s.id for s in scripts]
    details: dict[int, dict[str, Any]] = {i: {"versions": [], "precincts": [], "turf_ids": [], "turfs_using": 0}
                                          for i in ids}  # type: ignore[misc]
    if not ids:
        return details
    for version in (await session.execute(select(ScriptVersion).where(ScriptVersion.script_id.in_(ids))
                                          .order_by(ScriptVersion.script_id, ScriptVersion.version))).scalars():
        details[version.script_id]["versions"].append(version)
    for script_id, code in (await session.execute(select(Precinct.script_id, Precinct.code)
                                                  .where(Precinct.script_id.in_(ids)))).all():
        details[script_id]["precincts"].append(code)
    for script_id, turf_id in (await session.execute(select(Turf.script_id, Turf.id).where(Turf.script_id.in_(ids))
                                                     .order_by(Turf.id))).all():
        details[script_id]["turf_ids"].append(turf_id)
    using = (await session.execute(select(ScriptVersion.script_id, func.count())
                                   .join(Turf, Turf.script_version_id == ScriptVersion.id)
                                   .where(ScriptVersion.script_id.in_(ids), Turf.status == "active")
                                   .group_by(ScriptVersion.script_id))).all()
    for script_id, count in using:
        details[script_id]["turfs_using"] = count
    for detail in details.values():
        detail["precincts"].sort(key=natural_key)
    return details
