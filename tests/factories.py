"""The world the tests run in, built once per backend: Cambridge loaded, a foreign campaign, users and keys."""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pandas as pd
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import service as address_service
from app.auth import service as auth_service
from app.auth.scopes import Scope
from app.campaigns import service as campaign_service
from app.campaigns.roles import Role
from app.geo.geojson import geometries
from app.ingest import parse_map
from app.precincts import service as precinct_service
from app.precincts.models import Precinct
from app.streets import service as street_service
from app.turfs import cutting as cut_service
from app.turfs.models import Turf

DATA = Path(__file__).resolve().parent.parent / "data" / "cambridge"
PASSWORD = "correct horse battery"
SECRET = "test-secret-" + "x" * 40
HOME, FOREIGN = "cambridge", "somerville"
# Rows of the address file the foreign campaign loads: enough to have households of its own.
FOREIGN_ROWS = 300


@dataclass
class World:
    users: dict[str, UUID] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, UUID] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        """Authorization for a user by role name, an API key by name, or nobody (`anonymous`)."""
        if who == "anonymous":
            return {}
        if who in self.keys:
            return {"Authorization": f"Bearer {self.keys[who]}"}
        return {"Authorization": "Bearer " + auth_service.issue_token(self.users[who], secret=SECRET, minutes=10)}


async def load_campaign(session: AsyncSession, slug: str, name: str, addresses: Path) -> int:
    campaign = await campaign_service.create_campaign(session, slug, name)
    assert campaign.id is not None
    await precinct_service.import_precincts(session, campaign.id, DATA / "precincts.geojson",
                                            label="precincts.geojson", name_field="name")
    await address_service.import_addresses(session, campaign.id, addresses, label=addresses.name,
                                           mapping=parse_map(None, address_service.ADDRESS_FIELDS))
    await address_service.make_demo_people(session, campaign.id)
    await street_service.import_streets(session, campaign.id, DATA / "streets.geojson", label="streets.geojson",
                                        mapping=parse_map(None, street_service.STREET_FIELDS))
    return campaign.id


async def build_world(session: AsyncSession) -> World:
    world = World()
    home_id = await load_campaign(session, HOME, "Cambridge", DATA / "addresses.csv")
    with tempfile.TemporaryDirectory() as folder:
        subset = Path(folder) / "foreign.csv"
        pd.read_csv(DATA / "addresses.csv", dtype=str, nrows=FOREIGN_ROWS).to_csv(subset, index=False)
        foreign_id = await load_campaign(session, FOREIGN, "Somerville", subset)
    home = await campaign_service.get_campaign(session, HOME)
    foreign = await campaign_service.get_campaign(session, FOREIGN)
    members = [(home, role.value, role) for role in Role] + [
        (foreign, "foreign_admin", Role.admin), (foreign, "foreign_organizer", Role.organizer),
        (foreign, "dual", Role.organizer), (home, "dual", Role.canvasser)]
    for campaign, who, role in members:
        email = f"{who}@{campaign.slug}.test" if who != "dual" else "dual@both.test"
        user, _ = await campaign_service.add_member(session, campaign, email, role, name=who.title(),
                                                    password=PASSWORD)
        world.users[who], world.emails[who] = user.id, email
    keys = (("key_all", home_id, list(Scope)), ("key_progress", home_id, [Scope.progress_read]),
            ("key_revoked", home_id, list(Scope)), ("foreign_key", foreign_id, list(Scope)))
    for name, campaign_id, scopes in keys:
        row, key = await auth_service.create_api_key(session, campaign_id, name=name, scopes=scopes, created_by=None)
        world.keys[name], world.key_ids[name] = key, row.id
    await auth_service.revoke_api_key(session, home_id, world.key_ids["key_revoked"])
    return world


async def cut_city(session: AsyncSession, *, target: int = 50) -> dict:
    """Cut all of Cambridge into turfs, as the service does for POST /turf-cuts; returns the report."""
    campaign = await campaign_service.get_campaign(session, HOME)
    assert campaign.id is not None
    job = await cut_service.start_cut(session, campaign.id, codes=None, target=target, created_by="tests")
    assert job.id is not None
    return await cut_service.cut_turfs(session, campaign.id, codes=None, target=target, cut_id=job.id)


async def stale_shapes(session: AsyncSession) -> list[tuple[str, int]]:
    """Turfs and precincts whose stored GeoJSON text isn't their shape's (app.geo.geojson): (table, id) each."""
    await session.rollback()
    stale = []
    for model in (Turf, Precinct):
        rows = (await session.execute(select(model.id, model.geometry, model.geojson))).all()
        texts = geometries([r.geometry for r in rows])
        stale += [(model.__tablename__, r.id) for r, text in zip(rows, texts, strict=True) if r.geojson != text]
    return stale
