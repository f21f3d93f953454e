"""The Cambridge demo: one campaign loaded with the real sample data, synthetic people and two users."""

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import service as address_service
from app.auth import passwords
from app.campaigns import service as campaign_service
from app.campaigns.roles import Role
from app.ingest import Progress, no_progress, parse_map
from app.precincts import service as precinct_service
from app.scripts import service as script_service
from app.scripts.schemas import ScriptIn, ScriptUses
from app.streets import service as street_service
from app.turfs import cutting as cut_service
from app.turfs import service as turf_service

SLUG = "cambridge"
DEMO_SCRIPT = ScriptIn.model_validate({
    "name": "Cambridge doors",
    "questions": [
        {"id": "support", "text": "Can we count on your support?", "kind": "single",
         "choices": [{"id": "yes", "label": "Yes"}, {"id": "leaning", "label": "Leaning yes"},
                     {"id": "undecided", "label": "Undecided"}, {"id": "no", "label": "No"}]},
        {"id": "issues", "text": "Which issues matter most to you?", "kind": "multiple",
         "choices": [{"id": "housing", "label": "Housing"}, {"id": "transit", "label": "Transit"},
                     {"id": "schools", "label": "Schools"}, {"id": "climate", "label": "Climate"}]},
        {"id": "volunteer", "text": "Would you like to volunteer?", "kind": "single",
         "choices": [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}]},
        {"id": "note", "text": "Anything the campaign should know?", "kind": "text"},
    ],
    "result_codes": [{"code": "wrong_address", "label": "Nobody by that name", "contacted": True}],
})
USERS = (("admin@cambridge.example", "Demo Admin", Role.admin),
         ("organizer@cambridge.example", "Demo Organizer", Role.organizer),
         ("canvasser@cambridge.example", "Demo Canvasser", Role.canvasser))


async def set_up_demo(session: AsyncSession, data: Path, saved: dict[str, str], *, progress: Progress = no_progress,
                      say: Callable[[str], Any] = print) -> list[dict[str, str]]:
    """Load what is missing and return the demo logins; a second run reuses what is there.

    `saved` maps the demo users' emails to the passwords given last time; it is updated in place.
    """
    campaign = await campaign_service.find_campaign(session, SLUG)
    if campaign is None:
        campaign = await campaign_service.create_campaign(session, SLUG, "Cambridge, MA (demo)")
        say(f"Created campaign {SLUG}.")
    assert campaign.id is not None
    counts = await campaign_service.campaign_counts(session, campaign.id)
    if counts["precincts"] and counts["households"] and counts["people"]:
        say(f"Reusing campaign {SLUG}: {counts['precincts']} precincts, {counts['households']} households, "
            f"{counts['people']} synthetic people.")
    if counts["precincts"] == 0:
        report = await precinct_service.import_precincts(session, campaign.id, data / "precincts.geojson",
                                                         label="precincts.geojson", name_field="name",
                                                         progress=progress)
        say(f"Loaded {report.created} precincts.")
    if counts["households"] == 0:
        report = await address_service.import_addresses(
            session, campaign.id, data / "addresses.csv", label="addresses.csv",
            mapping=parse_map(None, address_service.ADDRESS_FIELDS), progress=progress)
        say(f"Loaded {report.created} households ({report.snapped} snapped, {len(report.rejected)} rejected).")
    if not await street_service.has_streets(session, campaign.id):
        report = await street_service.import_streets(session, campaign.id, data / "streets.geojson",
                                                     label="streets.geojson",
                                                     mapping=parse_map(None, street_service.STREET_FIELDS),
                                                     progress=progress)
        buildings = (await campaign_service.campaign_counts(session, campaign.id))["buildings"]
        say(f"Loaded {report.created} street segments; {report.extra['buildings_matched']} of "
            f"{buildings} buildings matched to the street they front.")
    if counts["people"] == 0:
        made = await address_service.make_demo_people(session, campaign.id, progress=progress)
        say(f"Made {made['created']} SYNTHETIC people (no voter file is public).")
    if await turf_service.count_turfs(session, campaign.id) == 0:
        job = await cut_service.start_cut(session, campaign.id, codes=None, target=50, created_by="demo")
        assert job.id is not None
        report = await cut_service.cut_turfs(session, campaign.id, codes=None, target=50, cut_id=job.id)
        say(f"Cut {report['overall'].get('turfs', 0)} turfs of about 50 doors.")
    if not await script_service.list_scripts(session, campaign.id):
        script = await script_service.create_script(session, campaign.id, DEMO_SCRIPT)
        assert script.id is not None
        await script_service.set_uses(session, campaign.id, script.id, ScriptUses(default=True))
        say(f"Made the survey script {script.name!r}, the default for every turf.")

    logins = []
    for email, name, role in USERS:
        user = await campaign_service.find_user(session, email)
        password = saved.get(email)
        kept = user is not None and password is not None and await passwords.password_matches(
            user.password_hash, password)
        if not kept:
            password = secrets.token_urlsafe(12)
        # A password kept is not set again: setting one ends the user's sessions.
        await campaign_service.add_member(session, campaign, email, role, name=name,
                                          password=None if kept else password)
        saved[email] = password
        logins.append({"role": str(role), "email": email, "password": password})
    return logins
