"""The authorization matrix: every endpoint, as every kind of caller, in its own campaign and in others.

Rules: no, invalid or revoked credentials get 401; a caller with no membership (or an API key of another
campaign) gets 404, never 403, so campaign ids can't be probed; a member whose role isn't allowed, or a key
without the scope, gets 403. A refused write leaves every table as it was.

Each endpoint is one test that loops over the callers and campaigns, so the suite copies a database per
endpoint rather than per case (a class per endpoint, as STYLE.md suggests, would copy one per case); a failure
lists every case that went wrong, naming the caller and the campaign.

Turfs are not in the world: a turf endpoint's test first draws (or cuts) what it needs in both campaigns.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import shapely
from shapely import Polygon
from shapely.geometry import mapping
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses.models import Building, Household, Person
from app.auth import service as auth_service
from app.auth.models import ApiKey, Scope
from app.campaigns.models import Campaign, Membership, Role
from app.config import Settings
from app.main import create_app
from app.precincts.models import Precinct
from app.turfs import service as turf_service
from app.turfs.models import Turf, TurfCut
from tests.factories import FOREIGN, HOME, SECRET, World

# A precinct both campaigns have, holding households in both (the foreign campaign has only a few hundred).
PRECINCT = "4-1"
NOWHERE = "nowhere"  # no such campaign: everyone who is logged in gets the same 404 as for a foreign one
CAMPAIGNS = (HOME, FOREIGN, NOWHERE)
PROBLEM = "application/problem+json"
GEOJSON = "application/geo+json"
EVERY_ROLE = frozenset(Role)
FIELD = frozenset({Role.admin, Role.organizer})
ADMIN = frozenset({Role.admin})


@dataclass(frozen=True)
class Who:
    """What a caller is, stated here rather than read from the app: the expected statuses follow from it."""

    roles: dict[str, Role] = field(default_factory=dict)  # campaign slug -> role, for users
    key_of: str | None = None  # the campaign of an API key
    scopes: frozenset[Scope] = frozenset()
    valid: bool = True

    @property
    def is_user(self) -> bool:
        return self.valid and self.key_of is None


INVALID = Who(valid=False)
CALLERS: dict[str, Who] = {
    "admin": Who({HOME: Role.admin}),
    "organizer": Who({HOME: Role.organizer}),
    "host": Who({HOME: Role.host}),
    "canvasser": Who({HOME: Role.canvasser}),
    "foreign_admin": Who({FOREIGN: Role.admin}),
    "foreign_organizer": Who({FOREIGN: Role.organizer}),
    "dual": Who({FOREIGN: Role.organizer, HOME: Role.canvasser}),
    "key_all": Who(key_of=HOME, scopes=frozenset(Scope)),
    "key_all_x_api_key": Who(key_of=HOME, scopes=frozenset(Scope)),
    "key_progress": Who(key_of=HOME, scopes=frozenset({Scope.progress_read})),
    "foreign_key": Who(key_of=FOREIGN, scopes=frozenset(Scope)),
    "key_revoked": INVALID,
    "unknown_key": INVALID,
    "expired_token": INVALID,
    "forged_token": INVALID,
    "garbage_token": INVALID,
    "anonymous": INVALID,
}


def headers(world: World, who: str) -> dict[str, str]:
    """The world's callers, plus credentials the world lacks: a key sent as X-API-Key, and bad ones."""
    admin = world.users["admin"]
    extra = {
        "key_all_x_api_key": {"X-API-Key": world.keys["key_all"]},
        "unknown_key": {"X-API-Key": "dsk_" + "A" * 43},
        "expired_token": {"Authorization": "Bearer " + auth_service.issue_token(admin, secret=SECRET, minutes=-5)},
        "forged_token": {"Authorization": "Bearer " + auth_service.issue_token(
            admin, secret="not-the-secret-" + "y" * 40, minutes=10)},
        "garbage_token": {"Authorization": "Bearer not.a.token"},
    }
    return extra[who] if who in extra else world.headers(who)


# What a write may change, counted per campaign: (table, campaign id) -> rows.
Counts = dict[tuple[str, int | None], int]


def turf_key(name: str, doors: int, status: str = "active") -> str:
    return f"{status} turf {name!r} of {doors} doors"


async def count_rows(session: AsyncSession) -> Counts:
    counts: Counts = {}
    for model in (Precinct, Building, Person, ApiKey, Membership):
        rows = await session.execute(select(model.campaign_id, func.count()).group_by(model.campaign_id))
        counts.update({(model.__tablename__, campaign_id): n for campaign_id, n in rows.all()})
    households = await session.execute(select(Household.campaign_id, func.count(), func.count(Household.turf_id))
                                       .group_by(Household.campaign_id))
    for campaign_id, n, in_turfs in households.all():
        counts[("household", campaign_id)] = n
        if in_turfs:
            counts[("household in a turf", campaign_id)] = in_turfs
    revoked = await session.execute(select(ApiKey.campaign_id, func.count()).where(ApiKey.revoked_at.is_not(None))
                                    .group_by(ApiKey.campaign_id))
    counts.update({("api_key revoked", campaign_id): n for campaign_id, n in revoked.all()})
    # Each turf by what it is and the doors it holds, so a rename, a deletion or doors moving all show.
    turfs = await session.execute(
        select(Turf.campaign_id, Turf.status, Turf.name, func.count(Household.id))
        .outerjoin(Household, Household.turf_id == Turf.id)
        .group_by(Turf.id, Turf.campaign_id, Turf.status, Turf.name))
    for campaign_id, status, name, doors in turfs.all():
        key = (turf_key(name, doors, status), campaign_id)
        counts[key] = counts.get(key, 0) + 1
    cuts = await session.execute(select(TurfCut.campaign_id, TurfCut.state, func.count())
                                 .group_by(TurfCut.campaign_id, TurfCut.state))
    counts.update({(f"turf_cut {state}", campaign_id): n for campaign_id, state, n in cuts.all()})
    # End the read transaction: on SQLite (WAL) it would pin a snapshot and hide the app's later writes.
    await session.rollback()
    return counts


def changes(before: Counts, after: Counts) -> Counts:
    return {k: after.get(k, 0) - before.get(k, 0) for k in before.keys() | after.keys()
            if after.get(k, 0) != before.get(k, 0)}


# Drawn turfs: a box around buildings, widened by this much (degrees: about 8 m east-west, 11 m north-south).
MARGIN = 0.0001


@dataclass
class Ground:
    """Where to draw: polygons around buildings of PRECINCT that both campaigns have (the foreign campaign's
    addresses are the first rows of Cambridge's), so each polygon holds doors in either campaign."""

    turf: Polygon  # the turf each campaign has before the requests, around a few buildings
    spots: list[Polygon]  # one per case, apart from each other and from `turf`, so no drawing overlaps another


async def find_ground(session: AsyncSession) -> Ground:
    points = (await session.execute(
        select(Building.lon, Building.lat).join(Precinct, Precinct.id == Building.precinct_id)
        .join(Campaign, Campaign.id == Building.campaign_id)
        .where(Campaign.slug == FOREIGN, Precinct.code == PRECINCT).order_by(Building.id))).all()
    lon, lat = zip(*points[:3], strict=True)
    turf = shapely.box(min(lon), min(lat), max(lon), max(lat)).buffer(MARGIN)
    taken, spots = [turf], []
    for x, y in points[3:]:
        spot = shapely.box(x, y, x, y).buffer(MARGIN)
        if all(spot.distance(other) > MARGIN / 5 for other in taken):
            taken.append(spot)
            spots.append(spot)
    await session.rollback()
    assert len(spots) >= len(CALLERS) * len(CAMPAIGNS), f"room for {len(spots)} turfs only"
    return Ground(turf, spots)


@dataclass
class TurfFacts:
    id: int
    name: str
    source: str
    doors: int
    households: set[int]


@dataclass
class Facts:
    """What the database holds before the requests, to check response bodies against."""

    ids: dict[str, int]
    precincts: dict[str, int]
    households: dict[str, int]
    households_in: dict[str, set[int]]
    key_names: dict[str, set[str]]
    ground: Ground
    turfs: dict[str, list[TurfFacts]] = field(default_factory=dict)  # in id order
    cuts: dict[str, list[int]] = field(default_factory=dict)


async def read_facts(session: AsyncSession) -> Facts:
    ground = await find_ground(session)
    ids: dict[str, int] = {slug: id_ for slug, id_ in (await session.execute(select(Campaign.slug, Campaign.id)))}
    facts = Facts(ids=ids, precincts={}, households={}, households_in={}, key_names={}, ground=ground)
    for slug, campaign_id in ids.items():
        facts.precincts[slug] = await session.scalar(
            select(func.count()).select_from(Precinct).where(Precinct.campaign_id == campaign_id))
        facts.households[slug] = await session.scalar(
            select(func.count()).select_from(Household).where(Household.campaign_id == campaign_id))
        facts.households_in[slug] = set((await session.execute(
            select(Household.id).join(Precinct, Precinct.id == Household.precinct_id)
            .where(Household.campaign_id == campaign_id, Precinct.code == PRECINCT))).scalars().all())
        facts.key_names[slug] = set((await session.execute(
            select(ApiKey.name).where(ApiKey.campaign_id == campaign_id))).scalars().all())
    await session.rollback()
    # Both campaigns have the precinct; only different counts show a body came from the right one.
    assert len(facts.households_in[HOME]) != len(facts.households_in[FOREIGN]) > 0
    assert facts.households[HOME] != facts.households[FOREIGN]
    return facts


async def read_turfs(session: AsyncSession, facts: Facts) -> None:
    """The turfs and cuts an endpoint's `prepare` made, into `facts`."""
    for slug, campaign_id in facts.ids.items():
        turfs = (await session.execute(select(Turf).where(Turf.campaign_id == campaign_id).order_by(Turf.id)
                                       )).scalars().all()
        facts.turfs[slug] = [TurfFacts(t.id, t.name, t.source, t.doors, set((await session.execute(
            select(Household.id).where(Household.turf_id == t.id))).scalars().all())) for t in turfs if t.id]
        facts.cuts[slug] = list((await session.execute(
            select(TurfCut.id).where(TurfCut.campaign_id == campaign_id).order_by(TurfCut.id))).scalars().all())
    await session.rollback()


@dataclass
class Case:
    """One request of the matrix, and what the checks need to know about it."""

    client: httpx.AsyncClient
    session: AsyncSession
    world: World
    facts: Facts
    who: str
    campaign: str | None
    n: int  # numbers the case, for names that must not repeat
    target_key: str | None = None  # the key a DELETE revokes
    target: TurfFacts | None = None  # the turf a PATCH or DELETE changes
    settled: dict[str, Any] = field(default_factory=dict)  # what a background job did, once it is done

    @property
    def caller(self) -> Who:
        return CALLERS[self.who]

    @property
    def campaign_id(self) -> int | None:
        return self.facts.ids.get(self.campaign or "")


Send = Callable[[Case], Awaitable[dict[str, Any]]]
Check = Callable[[Case, httpx.Response], Awaitable[None]]
Prepare = Callable[[httpx.AsyncClient, AsyncSession, World, Facts], Awaitable[None]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    route: str  # as the OpenAPI spec lists it
    roles: frozenset[Role] = frozenset()  # members allowed, in a campaign route
    scope: Scope | None = None  # the scope an API key needs, in a campaign route; None: no key may call it
    ok: int = 200
    send: Send | None = None  # extra request arguments (a body, query parameters, headers, path ids)
    check: Check | None = None  # checks the body of a success
    # For a write: the rows a success changes, given the case and the body of the success.
    effect: Callable[[Case, Any], Counts] | None = None
    keys_ok: bool = True  # outside a campaign: whether API keys may call it
    prepare: Prepare | None = None  # makes, once before the cases, what the requests need (turfs, cuts)
    settle: Check | None = None  # after a success, waits for the work it left running in the background
    media_type: str = "application/json"  # of a success
    variant: str = ""  # tells apart two entries for one route

    @property
    def in_campaign(self) -> bool:
        return "{campaign_id}" in self.route

    def __str__(self) -> str:
        return f"{self.method} {self.route}" + (f" ({self.variant})" if self.variant else "")

    def expected(self, who: Who, campaign: str | None) -> int:
        if not who.valid:
            return 401
        if not self.in_campaign:
            return self.ok if who.is_user or self.keys_ok else 403
        assert campaign is not None
        if who.key_of is not None:
            if who.key_of != campaign:
                return 404
            return self.ok if self.scope is not None and self.scope in who.scopes else 403
        role = who.roles.get(campaign)
        if role is None:
            return 404
        return self.ok if role in self.roles else 403


# Successful reads: the body must be the caller's campaign's, not another's.

async def check_my_campaigns(case: Case, r: httpx.Response) -> None:
    got = [(c["id"], c["role"]) for c in r.json()]
    who = case.caller
    assert got == (sorted(who.roles.items()) if who.is_user else [(who.key_of, None)])


async def check_me(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert body["email"] == case.world.emails[case.who]
    assert [(m["campaign_id"], m["role"]) for m in body["memberships"]] == sorted(case.caller.roles.items())


async def check_campaign(case: Case, r: httpx.Response) -> None:
    body, campaign = r.json(), case.campaign or ""
    assert (body["id"], body["role"]) == (campaign, case.caller.roles.get(campaign))
    assert body["precincts"] == case.facts.precincts[campaign]
    assert body["households"] == case.facts.households[campaign]


async def check_key_list(case: Case, r: httpx.Response) -> None:
    assert {k["name"] for k in r.json()} == case.facts.key_names[case.campaign or ""]
    assert all("key" not in k and "key_hash" not in k for k in r.json()), "a key list shows no secrets"


async def check_precinct_list(case: Case, r: httpx.Response) -> None:
    items, campaign = r.json()["items"], case.campaign or ""
    assert len(items) == case.facts.precincts[campaign]
    assert sum(p["households"] for p in items) == case.facts.households[campaign]


async def check_precinct(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert body["id"] == PRECINCT
    assert body["households"] == len(case.facts.households_in[case.campaign or ""])


async def check_households(case: Case, r: httpx.Response) -> None:
    items, mine = r.json()["items"], case.facts.households_in[case.campaign or ""]
    assert len(items) == min(len(mine), 1000)
    assert {h["id"] for h in items} <= mine, "households of another campaign or precinct"
    assert {h["precinct_id"] for h in items} == {PRECINCT}


# Writes: what each sends, and what a success must have done.

PROBE_SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [0, 0.001], [0.001, 0.001], [0.001, 0], [0, 0]]]}
# A point in Cambridge, inside the precincts both campaigns hold.
PROBE_LON, PROBE_LAT = -71.1097, 42.3736


def fixed(**extra: Any) -> Send:
    """Send the same extra arguments in every case."""
    async def send(case: Case) -> dict[str, Any]:
        return dict(extra)
    return send


async def send_precincts(case: Case) -> dict[str, Any]:
    feature = {"type": "Feature", "properties": {"precinct_id": f"probe-{case.n}", "name": "Probe"},
               "geometry": PROBE_SQUARE}
    return {"json": {"type": "FeatureCollection", "features": [feature]}, "params": {"name_field": "name"}}


async def check_precincts_import(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["read"], body["created"], body["rejected"]) == (1, 1, 0)
    probe = await case.client.get(f"/v1/campaigns/{case.campaign}/precincts/probe-{case.n}",
                                  headers=headers(case.world, case.who))
    assert probe.status_code == 200 and probe.json()["name"] == "Probe"


async def send_addresses(case: Case) -> dict[str, Any]:
    # A point of its own (a building is keyed by its point), a few centimetres from the last probe's.
    lat = PROBE_LAT + case.n * 1e-6
    csv = f"address_id,number,street,unit,lon,lat\nPROBE-{case.n},1,PROBE ST,,{PROBE_LON},{lat:.7f}\n"
    return {"files": {"file": ("probe.csv", csv.encode(), "text/csv")}}


async def send_people(case: Case) -> dict[str, Any]:
    # CAM14-000001 is among the addresses of both campaigns.
    csv = f"voter_id,address_id,first_name,last_name\nPROBE-{case.n},CAM14-000001,Pat,Probe\n"
    return {"files": {"file": ("voters.csv", csv.encode(), "text/csv")}}


async def check_one_created(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["read"], body["created"], body["updated"], body["rejected"]) == (1, 1, 0, 0)


async def send_new_key(case: Case) -> dict[str, Any]:
    return {"json": {"name": f"probe-{case.n}", "scopes": ["turfs:read"]}}


async def check_new_key(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert body["name"] == f"probe-{case.n}" and body["key"].startswith("dsk_") and body["revoked_at"] is None
    other = FOREIGN if case.campaign == HOME else HOME
    for campaign, status in ((case.campaign, 200), (other, 404)):
        probe = await case.client.get(f"/v1/campaigns/{campaign}/precincts",
                                      headers={"Authorization": f"Bearer {body['key']}"})
        assert probe.status_code == status, f"the new key in {campaign}: {probe.text}"


async def send_revoke(case: Case) -> dict[str, Any]:
    # A fresh key to revoke; asking a campaign that doesn't exist, it is one of the home campaign's.
    campaign_id = case.campaign_id or case.facts.ids[HOME]
    row, case.target_key = await auth_service.create_api_key(case.session, campaign_id, name=f"target-{case.n}",
                                                             scopes=[Scope.turfs_read], created_by=None)
    return {"key_id": row.id}


async def check_revoked(case: Case, r: httpx.Response) -> None:
    assert r.json()["name"] == f"target-{case.n}" and r.json()["revoked_at"] is not None
    probe = await case.client.get(f"/v1/campaigns/{case.campaign}/precincts",
                                  headers={"Authorization": f"Bearer {case.target_key}"})
    assert probe.status_code == 401, "a revoked key must stop working at once"


# Turfs: each test first draws a turf in every campaign (or cuts, to read a cut); refused writes name that one.

CUT_PRECINCT = "2-3"  # the other precinct with doors in both campaigns, and fewer than PRECINCT: a quick cut
CUT_BODY = {"precincts": [CUT_PRECINCT], "target_doors": 50}
FINISHED = ("done", "failed")


def owner(case: Case) -> str:
    """The campaign whose turfs a case names: its own; asking a campaign that doesn't exist, the home one's."""
    return case.campaign if case.campaign in (HOME, FOREIGN) else HOME


async def draw_turfs(client: httpx.AsyncClient, session: AsyncSession, world: World, facts: Facts) -> None:
    for slug in (HOME, FOREIGN):
        await turf_service.draw_turf(session, facts.ids[slug], name=f"{slug} turf", shape=facts.ground.turf,
                                     take_over=False)
    # draw_turf reloads the turf after committing: end that read, or on SQLite it would hide later writes.
    await session.rollback()


async def finish(client: httpx.AsyncClient, location: str, auth: dict[str, str]) -> dict[str, Any]:
    """Poll a turf cut until it is done or failed; returns it."""
    for _ in range(1500):
        r = await client.get(location, headers=auth)
        assert r.status_code == 200, r.text
        if r.json()["state"] in FINISHED:
            return r.json()
        await asyncio.sleep(0.02)
    raise AssertionError(f"{location} still unfinished: {r.text}")


async def cut_turfs(client: httpx.AsyncClient, session: AsyncSession, world: World, facts: Facts) -> None:
    for slug, who in ((HOME, "organizer"), (FOREIGN, "foreign_organizer")):
        r = await client.post(f"/v1/campaigns/{slug}/turf-cuts", json=CUT_BODY, headers=world.headers(who))
        assert r.status_code == 202, r.text
        job = await finish(client, r.headers["location"], world.headers(who))
        assert job["state"] == "done" and job["turfs_made"] > 0, job


async def check_turf_list(case: Case, r: httpx.Response) -> None:
    body, mine = r.json(), case.facts.turfs[owner(case)]
    assert body["next_cursor"] is None
    assert [(t["id"], t["name"], t["doors"]) for t in body["items"]] == [(t.id, t.name, t.doors) for t in mine]
    assert {t["precinct_id"] for t in body["items"]} == {PRECINCT}


async def check_turf_geojson(case: Case, r: httpx.Response) -> None:
    body, mine = r.json(), case.facts.turfs[owner(case)]
    assert body["type"] == "FeatureCollection"
    got = [(f["id"], f["properties"]["name"], f["properties"]["doors"], f["geometry"]["type"])
           for f in body["features"]]
    assert got == [(t.id, t.name, t.doors, "Polygon") for t in mine]


async def send_turf(case: Case) -> dict[str, Any]:
    return {"turf_id": case.facts.turfs[owner(case)][0].id}


async def check_turf(case: Case, r: httpx.Response) -> None:
    body, turf = r.json(), case.facts.turfs[owner(case)][0]
    assert (body["id"], body["name"], body["doors"], body["precinct_id"]) == (turf.id, turf.name, turf.doors, PRECINCT)
    assert {h["id"] for h in body["households"]} == turf.households
    assert turf.households <= case.facts.households_in[owner(case)]
    assert body["geometry"]["type"] == "Polygon"


async def send_draw(case: Case) -> dict[str, Any]:
    # A spot of its own, so no two cases' turfs overlap.
    spot = mapping(case.facts.ground.spots[case.n])
    return {"json": {"name": f"probe-{case.n}", "geometry": spot, "take_over": False}}


async def check_drawn(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["name"], body["source"], body["status"]) == (f"probe-{case.n}", "drawn", "active")
    assert body["doors"] == len(body["households"]) > 0 and PRECINCT in body["precincts"]
    probe = await case.client.get(f"/v1/campaigns/{case.campaign}/turfs/{body['id']}",
                                  headers=headers(case.world, case.who))
    assert probe.status_code == 200 and probe.json()["name"] == f"probe-{case.n}"


def drawn_effect(case: Case, body: Any) -> Counts:
    return {(turf_key(body["name"], body["doors"]), case.campaign_id): 1,
            ("household in a turf", case.campaign_id): body["doors"]}


async def send_target(case: Case) -> dict[str, Any]:
    # The campaign's turf as prepared (as renamed, after an allowed rename); once an allowed deletion took it,
    # a fresh one on a spot of its own.
    campaign_id = case.facts.ids[owner(case)]
    turf = (await case.session.execute(select(Turf).where(Turf.campaign_id == campaign_id, Turf.status == "active")
                                       .order_by(Turf.id).limit(1))).scalar_one_or_none()
    if turf is None:
        turf = await turf_service.draw_turf(case.session, campaign_id, name=f"target-{case.n}",
                                            shape=case.facts.ground.spots[case.n], take_over=False)
    assert turf.id is not None and turf.doors > 0
    case.target = TurfFacts(turf.id, turf.name, turf.source, turf.doors, set())
    await case.session.rollback()
    return {"turf_id": case.target.id}


async def send_rename(case: Case) -> dict[str, Any]:
    return await send_target(case) | {"json": {"name": f"renamed-{case.n}"}}


async def check_renamed(case: Case, r: httpx.Response) -> None:
    assert case.target is not None
    body = r.json()
    assert (body["id"], body["name"], body["doors"]) == (case.target.id, f"renamed-{case.n}", case.target.doors)


def renamed_effect(case: Case, body: Any) -> Counts:
    assert case.target is not None
    return {(turf_key(case.target.name, case.target.doors), case.campaign_id): -1,
            (turf_key(f"renamed-{case.n}", case.target.doors), case.campaign_id): 1}


async def check_deleted(case: Case, r: httpx.Response) -> None:
    assert case.target is not None
    assert r.json() == {"id": case.target.id, "outcome": "deleted"}
    probe = await case.client.get(f"/v1/campaigns/{case.campaign}/turfs/{case.target.id}",
                                  headers=headers(case.world, case.who))
    assert probe.status_code == 404, probe.text


def deleted_effect(case: Case, body: Any) -> Counts:
    assert case.target is not None
    return {(turf_key(case.target.name, case.target.doors), case.campaign_id): -1,
            ("household in a turf", case.campaign_id): -case.target.doors}


async def send_cut(case: Case) -> dict[str, Any]:
    # Each cut starts from the world as prepared: an earlier case's cut turfs go, so each success adds the same.
    campaign_id = case.facts.ids[owner(case)]
    cut = (await case.session.execute(select(Turf.id).where(Turf.campaign_id == campaign_id, Turf.source == "cut")
                                      )).scalars().all()
    for turf_id in cut:
        await turf_service.delete_turf(case.session, campaign_id, turf_id)
    await case.session.rollback()
    return {"json": CUT_BODY}


async def settle_cut(case: Case, r: httpx.Response) -> None:
    auth = headers(case.world, case.who)
    case.settled["job"] = await finish(case.client, r.headers["location"], auth)
    listed = await case.client.get(f"/v1/campaigns/{case.campaign}/turfs", params={"limit": 1000}, headers=auth)
    assert listed.status_code == 200, listed.text
    case.settled["turfs"] = [t for t in listed.json()["items"] if t["source"] == "cut"]


async def check_cut(case: Case, r: httpx.Response) -> None:
    body, job, made = r.json(), case.settled["job"], case.settled["turfs"]
    assert r.headers["location"] == f"/v1/campaigns/{case.campaign}/turf-cuts/{body['id']}"
    assert (body["precincts"], body["target_doors"]) == ([CUT_PRECINCT], 50)
    assert (job["id"], job["state"], job["error"]) == (body["id"], "done", None)
    assert job["turfs_made"] == len(made) > 0
    assert {t["precinct_id"] for t in made} == {CUT_PRECINCT}


def cut_effect(case: Case, body: Any) -> Counts:
    made = case.settled["turfs"]
    effect: Counts = {(turf_key(t["name"], t["doors"]), case.campaign_id): 1 for t in made}
    return effect | {("turf_cut done", case.campaign_id): 1,
                     ("household in a turf", case.campaign_id): sum(t["doors"] for t in made)}


async def send_cut_id(case: Case) -> dict[str, Any]:
    return {"cut_id": case.facts.cuts[owner(case)][0]}


async def check_cut_read(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["id"], body["state"], body["precincts"]) == (case.facts.cuts[owner(case)][0], "done", [CUT_PRECINCT])
    assert body["turfs_made"] == len(case.facts.turfs[owner(case)]) > 0
    assert body["report"]["overall"]["doors"] == sum(t.doors for t in case.facts.turfs[owner(case)])


ENDPOINTS = (
    Endpoint("GET", "/v1/campaigns", check=check_my_campaigns),
    Endpoint("GET", "/v1/me", check=check_me, keys_ok=False),
    Endpoint("GET", "/v1/campaigns/{campaign_id}", EVERY_ROLE, Scope.progress_read, check=check_campaign),
    Endpoint("POST", "/v1/campaigns/{campaign_id}/api-keys", ADMIN, ok=201, send=send_new_key, check=check_new_key,
             effect=lambda case, _: {("api_key", case.campaign_id): 1}),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/api-keys", ADMIN, check=check_key_list),
    Endpoint("DELETE", "/v1/campaigns/{campaign_id}/api-keys/{key_id}", ADMIN, send=send_revoke,
             check=check_revoked, effect=lambda case, _: {("api_key revoked", case.campaign_id): 1}),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/precincts", EVERY_ROLE, Scope.turfs_read,
             send=fixed(params={"limit": 1000}), check=check_precinct_list),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/precincts/{precinct_id}", EVERY_ROLE, Scope.turfs_read,
             send=fixed(precinct_id=PRECINCT), check=check_precinct),
    Endpoint("POST", "/v1/campaigns/{campaign_id}/precincts", FIELD, send=send_precincts,
             check=check_precincts_import, effect=lambda case, _: {("precinct", case.campaign_id): 1}),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/households", FIELD,
             send=fixed(params={"precinct": PRECINCT, "limit": 1000}), check=check_households),
    Endpoint("POST", "/v1/campaigns/{campaign_id}/addresses", FIELD, send=send_addresses, check=check_one_created,
             effect=lambda case, _: {("household", case.campaign_id): 1, ("building", case.campaign_id): 1}),
    Endpoint("POST", "/v1/campaigns/{campaign_id}/people", FIELD, send=send_people, check=check_one_created,
             effect=lambda case, _: {("person", case.campaign_id): 1}),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/turfs", FIELD, Scope.turfs_read, prepare=draw_turfs,
             check=check_turf_list),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/turfs", FIELD, Scope.turfs_read, prepare=draw_turfs,
             send=fixed(headers={"Accept": GEOJSON}), check=check_turf_geojson, media_type=GEOJSON,
             variant="GeoJSON"),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/turfs/{turf_id}", FIELD, Scope.turfs_read, prepare=draw_turfs,
             send=send_turf, check=check_turf),
    Endpoint("POST", "/v1/campaigns/{campaign_id}/turfs", FIELD, ok=201, prepare=draw_turfs, send=send_draw,
             check=check_drawn, effect=drawn_effect),
    Endpoint("PATCH", "/v1/campaigns/{campaign_id}/turfs/{turf_id}", FIELD, prepare=draw_turfs, send=send_rename,
             check=check_renamed, effect=renamed_effect),
    Endpoint("DELETE", "/v1/campaigns/{campaign_id}/turfs/{turf_id}", FIELD, prepare=draw_turfs, send=send_target,
             check=check_deleted, effect=deleted_effect),
    Endpoint("POST", "/v1/campaigns/{campaign_id}/turf-cuts", FIELD, ok=202, prepare=draw_turfs, send=send_cut,
             settle=settle_cut, check=check_cut, effect=cut_effect),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/turf-cuts/{cut_id}", FIELD, Scope.turfs_read, prepare=cut_turfs,
             send=send_cut_id, check=check_cut_read),
)
# Open to all by design: logging in.
PUBLIC = {("POST", "/v1/auth/token")}


def test_every_route_is_in_the_matrix() -> None:
    """A new endpoint must join the matrix; the spec's x-roles and x-scopes must say what the matrix tests."""
    spec = create_app(Settings(jwt_secret=SECRET, _env_file=None)).openapi()
    routes = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert routes - PUBLIC == {(e.method, e.route) for e in ENDPOINTS}
    for e in ENDPOINTS:
        op = spec["paths"][e.route][e.method.lower()]
        documented = (op.get("x-roles"), op.get("x-scopes"))
        wanted = (sorted(e.roles), [e.scope] if e.scope else []) if e.in_campaign else (None, None)
        assert documented == wanted, f"{e}: the spec says who may call it differently"


def assert_problem(r: httpx.Response, status: int) -> None:
    assert r.headers["content-type"].split(";")[0] == PROBLEM, r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["type"].startswith("/problems/") and body["title"], body
    if status == 401:
        assert r.headers.get("www-authenticate") == "Bearer"


async def run_case(endpoint: Endpoint, case: Case) -> dict[str, Any] | None:
    """Send one request and check it; returns a refusal's body, for comparing the 404s."""
    extra = await endpoint.send(case) if endpoint.send else {}
    path_params = {k: extra.pop(k) for k in ("precinct_id", "key_id", "turf_id", "cut_id") if k in extra}
    url = endpoint.route.format(campaign_id=case.campaign, **path_params)
    before = await count_rows(case.session) if endpoint.effect else {}
    sent_headers = headers(case.world, case.who) | extra.pop("headers", {})
    r = await case.client.request(endpoint.method, url, headers=sent_headers, **extra)
    want = endpoint.expected(case.caller, case.campaign)
    wrong = [] if r.status_code == want else [f"status {r.status_code}, expected {want}: {r.text[:200]}"]
    if endpoint.settle and r.status_code == want == endpoint.ok:
        await endpoint.settle(case, r)
    if endpoint.effect:
        done = changes(before, await count_rows(case.session))
        # A request that failed, as it should or not, must have changed nothing.
        wanted = endpoint.effect(case, r.json()) if r.status_code == want == endpoint.ok else {}
        if done != wanted:
            wrong.append(f"rows changed by (table, campaign id): {done}, expected {wanted}")
    if wrong:
        raise AssertionError("; ".join(wrong))
    if want != endpoint.ok:
        assert_problem(r, want)
        return r.json()
    assert r.headers["content-type"].split(";")[0] == endpoint.media_type
    if endpoint.check:
        await endpoint.check(case, r)
    return None


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
async def test_access(endpoint: Endpoint, client: httpx.AsyncClient, session: AsyncSession, world: World) -> None:
    facts = await read_facts(session)
    if endpoint.prepare:
        await endpoint.prepare(client, session, world, facts)
        await read_turfs(session, facts)
    # Allowed writes go last, so every refusal is checked against the world as built.
    cases = [(who, campaign) for campaign in (CAMPAIGNS if endpoint.in_campaign else (None,)) for who in CALLERS]
    cases.sort(key=lambda c: endpoint.expected(CALLERS[c[0]], c[1]) == endpoint.ok)
    failures: list[str] = []
    not_found: dict[str, dict[str, Any]] = {}
    for n, (who, campaign) in enumerate(cases):
        case = Case(client, session, world, facts, who, campaign, n)
        try:
            refusal = await run_case(endpoint, case)
        except AssertionError as exc:
            failures.append(f"as {who} in {campaign or '-'}: {exc}")
            continue
        if refusal and refusal["status"] == 404 and campaign:
            # The same answer whether the campaign exists or not: nothing to tell the two apart by.
            shape = {k: v.replace(campaign, "<campaign>") if isinstance(v, str) else v
                     for k, v in refusal.items() if k != "instance"}
            not_found[f"{who} in {campaign}"] = shape
    if len({repr(s) for s in not_found.values()}) > 1:
        failures.append(f"the 404s differ, so campaigns can be probed: {not_found}")
    if failures:
        pytest.fail(f"{endpoint}: {len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures))


async def test_a_key_of_another_campaign_cannot_be_revoked(client: httpx.AsyncClient, session: AsyncSession,
                                                           world: World) -> None:
    """An admin who names another campaign's key id in their own campaign gets 404, and the key lives on."""
    before = await count_rows(session)
    for who, campaign, key in (("admin", HOME, "foreign_key"), ("foreign_admin", FOREIGN, "key_all")):
        r = await client.delete(f"/v1/campaigns/{campaign}/api-keys/{world.key_ids[key]}",
                                headers=world.headers(who))
        assert r.status_code == 404, f"{who} revoking {key} through {campaign}: {r.text}"
        assert_problem(r, 404)
    assert changes(before, await count_rows(session)) == {}
    for key, campaign in (("foreign_key", FOREIGN), ("key_all", HOME)):
        r = await client.get(f"/v1/campaigns/{campaign}/precincts", headers=world.headers(key))
        assert r.status_code == 200, f"{key} stopped working: {r.text}"


async def test_a_turf_of_another_campaign_is_not_found(client: httpx.AsyncClient, session: AsyncSession,
                                                       world: World) -> None:
    """Naming another campaign's turf or cut in one's own campaign gets the 404 of an id that doesn't exist,
    even as an admin, never a 403 or the thing itself; and nothing changes."""
    facts = await read_facts(session)
    await draw_turfs(client, session, world, facts)
    await cut_turfs(client, session, world, facts)
    await read_turfs(session, facts)
    missing = 1 + max(t.id for turfs in facts.turfs.values() for t in turfs)
    missing_cut = 1 + max(c for cuts in facts.cuts.values() for c in cuts)
    before = await count_rows(session)
    requests = (("GET", "turfs/{turf}", {}), ("PATCH", "turfs/{turf}", {"json": {"name": "stolen"}}),
                ("DELETE", "turfs/{turf}", {}), ("GET", "turf-cuts/{cut}", {}))
    callers = (("admin", HOME, FOREIGN), ("organizer", HOME, FOREIGN), ("key_all", HOME, FOREIGN),
               ("foreign_admin", FOREIGN, HOME), ("dual", FOREIGN, HOME))
    failures = []
    for who, campaign, other in callers:
        for method, path, extra in requests:
            if who.startswith("key") and method != "GET":
                continue  # no key may write turfs at all: the matrix shows its 403
            bodies = []
            for turf, cut in ((facts.turfs[other][0].id, facts.cuts[other][0]), (missing, missing_cut)):
                r = await client.request(method, f"/v1/campaigns/{campaign}/" + path.format(turf=turf, cut=cut),
                                         headers=world.headers(who), **extra)
                if r.status_code != 404:
                    failures.append(f"{who} {method} {path} of {other if turf != missing else 'nobody'} "
                                    f"in {campaign}: {r.status_code} {r.text[:200]}")
                    break
                assert_problem(r, 404)
                named = turf if "{turf}" in path else cut
                bodies.append({k: v.replace(f" {named} ", " <id> ") if isinstance(v, str) else v
                               for k, v in r.json().items() if k != "instance"})
            else:
                if bodies[0] != bodies[1]:
                    failures.append(f"{who} {method} {path}: another campaign's id answers {bodies[0]}, "
                                    f"a missing one {bodies[1]}")
    assert not failures, "\n".join(failures)
    assert changes(before, await count_rows(session)) == {}
