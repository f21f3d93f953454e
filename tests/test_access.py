"""The authorization matrix: every endpoint, as every kind of caller, in its own campaign and in others.

Rules: no, invalid or revoked credentials get 401; a caller with no membership (or an API key of another
campaign) gets 404, never 403, so campaign ids can't be probed; a member whose role isn't allowed, or a key
without the scope, gets 403. Past that, some endpoints narrow what a role may touch: a canvasser reads only the
turfs they hold, a host their own events, codes and event turfs (someone else's is a 404, as if it didn't
exist), and a host hands out only the canvasser role (403). A refused write leaves every table as it was.

Each endpoint is one test that loops over the callers and campaigns, so the suite copies a database per
endpoint rather than per case (a class per endpoint, as STYLE.md suggests, would copy one per case); a failure
lists every case that went wrong, naming the caller and the campaign.

Turfs are not in the world: a turf endpoint's test first draws (or cuts) what it needs in both campaigns; an
organizing endpoint's test cuts a precinct and hands out turfs, events and join codes through the services; a
script endpoint's test writes scripts in both campaigns, so another campaign's script has an id to name.
"""

import asyncio
import copy
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import shapely
from shapely import Polygon
from shapely.geometry import mapping
from sqlalchemy import Integer, String, cast, func, literal, null, or_, select, text, union_all, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.addresses.models import Building, Household, Person
from app.attributes.models import Attribute
from app.auth import service as auth_service
from app.auth.models import ApiKey
from app.auth.scopes import Scope
from app.campaigns import service as campaign_service
from app.campaigns.models import Campaign, Membership, User
from app.campaigns.roles import Role
from app.config import Settings
from app.db import utcnow
from app.main import create_app
from app.organizing import codes, holdings, launches, members
from app.organizing.models import Event, EventAttendee, EventTurf, JoinCode, TurfHistory, TurfHolding
from app.precincts.models import Precinct
from app.scripts import service as script_service
from app.scripts.models import Script, ScriptVersion
from app.scripts.schemas import ScriptIn, ScriptUses
from app.scripts.service import STANDARD_RESULTS
from app.sync.models import DoorKnock, ResultTally
from app.turfs import cutting as cut_service
from app.turfs import service as turf_service
from app.turfs.models import Turf, TurfCut
from app.walklists.models import WalkStop
from app.webhooks.models import Webhook
from tests.conftest import Databases, app_client, db_session, rolled_back
from tests.factories import FOREIGN, HOME, PASSWORD, SECRET, World

# A precinct both campaigns have, holding households in both (the foreign campaign has only a few hundred).
PRECINCT = "4-1"
NOWHERE = "nowhere"  # no such campaign: everyone who is logged in gets the same 404 as for a foreign one
CAMPAIGNS = (HOME, FOREIGN, NOWHERE)
PROBLEM = "application/problem+json"
GEOJSON = "application/geo+json"
EVERY_ROLE = frozenset(Role)
FIELD = frozenset({Role.admin, Role.organizer})
HOSTS = frozenset({Role.admin, Role.organizer, Role.host})
ADMIN = frozenset({Role.admin})
# The roles each role may hand out in a join code.
GRANTS = {Role.admin: frozenset(Role), Role.organizer: frozenset({Role.organizer, Role.host, Role.canvasser}),
          Role.host: frozenset({Role.canvasser})}


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
    "other_host": Who({HOME: Role.host}),  # not in the world: each test adds them (see read_facts)
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
OTHER_HOST_EMAIL = "other_host@cambridge.test"


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app, its per-account rate limit raised: every caller joins with one account's email here within a
    second (the limits have tests of their own, tests/auth/test_abuse.py)."""
    async with app_client(db_url, rate_per_account="1000/minute") as c:
        yield c


def role_of(who: str, campaign: str | None) -> Role | None:
    return CALLERS[who].roles.get(campaign or "")


def bearer(user_id: UUID) -> dict[str, str]:
    return {"Authorization": "Bearer " + auth_service.issue_token(user_id, secret=SECRET, minutes=10)}


# What a write may change, counted per campaign: (table, campaign id) -> rows.
Counts = dict[tuple[str, int | None], int]


def turf_key(name: str, doors: int, status: str = "active") -> str:
    return f"{status} turf {name!r} of {doors} doors"


def campaign_key(name: str, lapse_hours: int) -> str:
    return f"campaign {name!r}, claims lapsing after {lapse_hours} h"


def _tally(kind: str, campaign_id: Any, detail: Any, n: Any, *group: Any) -> Any:
    """One part of count_rows' union: (kind, campaign id, detail, number) rows."""
    columns = (literal(kind, String).label("kind"), cast(campaign_id, Integer).label("campaign_id"),
               cast(detail, String).label("detail"), cast(n, Integer).label("n"))
    return select(*columns).group_by(*group) if group else select(*columns)


async def _commits(session: AsyncSession) -> object:
    """What changes whenever anything commits a write to the session's database: PostgreSQL's snapshot (its
    in-progress list too, so a long write ending shows), or SQLite's data_version on a connection of its own
    (which counts the commits of every other connection, the session's included)."""
    if session.bind.dialect.name == "postgresql":
        return await session.scalar(text("SELECT CAST(pg_current_snapshot() AS text)"))
    path = session.bind.url.database
    if path not in _WATCHERS:
        _WATCHERS[path] = sqlite3.connect(path)
    return _WATCHERS[path].execute("PRAGMA data_version").fetchone()[0]


# Per SQLite file: the connection that reads its data_version, closed with the endpoint's database.
_WATCHERS: dict[str, sqlite3.Connection] = {}


async def _writes(session: AsyncSession) -> object:
    """In a rolled-back transaction, where nothing commits: what every row written on its connection moves
    (the transaction's own statistics on PostgreSQL, the connection's change count on SQLite)."""
    if session.bind.dialect.name == "postgresql":
        return await session.scalar(text("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
                                         "FROM pg_stat_xact_user_tables"))
    return await session.scalar(text("SELECT total_changes()"))


async def count_rows(session: AsyncSession) -> Counts:
    """Rows per campaign: what a write may change. One statement for the small tables; taken again only once
    something has been written since (most cases are refusals, which write nothing)."""
    bound = isinstance(session.bind, AsyncConnection)
    stamp = await (_writes(session) if bound else _commits(session))
    seen = session.info.get("counted")
    if seen is not None and seen[0] == stamp:
        await session.rollback()
        return dict(seen[1])
    counts = await _count_rows(session)
    session.info["counted"] = (stamp, counts)
    return dict(counts)


async def _count_rows(session: AsyncSession) -> Counts:
    nothing = null()
    parts = [_tally(m.__tablename__, m.campaign_id, nothing, func.count(), m.campaign_id)
             for m in (Precinct, Building, Person, ApiKey, TurfHolding, JoinCode, Event, Webhook, Attribute)]
    event_turfs = select(Event.campaign_id, EventTurf.checked_out_at).join(Event, Event.id == EventTurf.event_id
                                                                          ).subquery()
    attendees = select(Event.campaign_id, EventAttendee.checked_in_at).join(
        Event, Event.id == EventAttendee.event_id).subquery()
    parts += [
        # By role, so a role handed out or raised shows too; users belong to no campaign.
        _tally("membership", Membership.campaign_id, Membership.role, func.count(), Membership.campaign_id,
               Membership.role),
        _tally("user_account", nothing, nothing, select(func.count()).select_from(User).scalar_subquery()),
        _tally("campaign", Campaign.id, Campaign.name, Campaign.claim_lapse_hours).select_from(Campaign),
        _tally("api_key revoked", ApiKey.campaign_id, nothing, func.count(), ApiKey.campaign_id)
        .where(ApiKey.revoked_at.is_not(None)),
        # The holder counts turfs keep beside turf_holding: a change must move both.
        _tally("turf holders", Turf.campaign_id, nothing, func.sum(Turf.holders), Turf.campaign_id),
        _tally("turf_cut", TurfCut.campaign_id, TurfCut.state, func.count(), TurfCut.campaign_id, TurfCut.state),
        _tally("turf_history", TurfHistory.campaign_id, TurfHistory.action, func.count(), TurfHistory.campaign_id,
               TurfHistory.action),
        _tally("join_code revoked", JoinCode.campaign_id, nothing, func.count(JoinCode.revoked_at),
               JoinCode.campaign_id),
        _tally("join_code uses", JoinCode.campaign_id, nothing, func.sum(JoinCode.uses), JoinCode.campaign_id),
        # Event turfs and attendees belong to a campaign through their event.
        _tally("event_turf", event_turfs.c.campaign_id, nothing, func.count(), event_turfs.c.campaign_id),
        _tally("event_turf checked out", event_turfs.c.campaign_id, nothing, func.count(event_turfs.c.checked_out_at),
               event_turfs.c.campaign_id),
        _tally("event_attendee", attendees.c.campaign_id, nothing, func.count(), attendees.c.campaign_id),
        _tally("event cancelled", Event.campaign_id, nothing, func.count(Event.cancelled_at), Event.campaign_id),
        _tally("event_attendee checked in", attendees.c.campaign_id, nothing, func.count(attendees.c.checked_in_at),
               attendees.c.campaign_id),
        # Scripts and their versions by name, so a rename or a new version shows, and what uses them.
        _tally("script", Script.campaign_id, Script.name, func.count(), Script.campaign_id, Script.name),
        _tally("script versions", Script.campaign_id, nothing, func.sum(Script.version), Script.campaign_id),
        _tally("script default", Script.campaign_id, Script.name, func.count(), Script.campaign_id, Script.name)
        .where(Script.is_default),
        _tally("script_version", ScriptVersion.campaign_id, ScriptVersion.name, func.count(),
               ScriptVersion.campaign_id, ScriptVersion.name),
        _tally("script_version frozen", ScriptVersion.campaign_id, nothing, func.count(), ScriptVersion.campaign_id)
        .where(ScriptVersion.frozen),
        _tally("precinct with a script", Precinct.campaign_id, nothing, func.count(Precinct.script_id),
               Precinct.campaign_id),
        _tally("turf with a script", Turf.campaign_id, nothing, func.count(Turf.script_id), Turf.campaign_id),
        # The script version each turf's walk list carries, which a script's change or uses move.
        _tally("turfs carrying", Turf.campaign_id, ScriptVersion.name + " v" + cast(ScriptVersion.version, String),
               func.count(), Turf.campaign_id, ScriptVersion.name, ScriptVersion.version)
        .select_from(Turf).join(ScriptVersion, ScriptVersion.id == Turf.script_version_id),
        # Knocks, and the counters sync moves beside them in the same transaction: a refused knock moves none.
        _tally("door_knock", DoorKnock.campaign_id, nothing, func.count(), DoorKnock.campaign_id),
        _tally("result_tally", ResultTally.campaign_id, ResultTally.result, func.sum(ResultTally.knocks),
               ResultTally.campaign_id, ResultTally.result),
        _tally("turf knocks", Turf.campaign_id, nothing, func.sum(Turf.knocks), Turf.campaign_id),
        _tally("precinct knocks", Precinct.campaign_id, nothing, func.sum(Precinct.knocks), Precinct.campaign_id),
    ]
    counts: Counts = {}
    for kind, campaign_id, detail, n in (await session.execute(union_all(*parts))).all():
        if kind == "campaign":
            counts[(campaign_key(detail, n), campaign_id)] = 1
        elif n:
            counts[(f"{kind} {detail}" if detail is not None else kind, campaign_id)] = n
    # The big tables are read once each (a scan of them is most of a count's time).
    # Walk stops belong to a campaign through their turf; a door leaving a turf stays as a removed stop.
    stops = await session.execute(select(Turf.campaign_id, func.count(), func.count().filter(WalkStop.removed),
                                         func.sum(WalkStop.knocks))
                                  .join(Turf, Turf.id == WalkStop.turf_id).group_by(Turf.campaign_id))
    for campaign_id, n, removed, knocks in stops.all():
        for kind, value in (("walk_stop", n), ("walk_stop removed", removed), ("walk_stop knocks", knocks)):
            if value:
                counts[(kind, campaign_id)] = value
    doors: dict[int, int] = {}
    households = await session.execute(select(Household.turf_id, Household.campaign_id, func.count(),
                                              func.sum(Household.knocks))
                                       .group_by(Household.turf_id, Household.campaign_id))
    for turf_id, campaign_id, n, knocks in households.all():
        for kind, value in (("household", n), ("household in a turf", n if turf_id is not None else 0),
                            ("household knocks", knocks)):
            if value:
                counts[(kind, campaign_id)] = counts.get((kind, campaign_id), 0) + value
        if turf_id is not None:
            doors[turf_id] = n
    # Each turf by what it is and the doors it holds, so a rename, a deletion or doors moving all show.
    for turf_id, campaign_id, status, name in (await session.execute(
            select(Turf.id, Turf.campaign_id, Turf.status, Turf.name))).all():
        key = (turf_key(name, doors.get(turf_id, 0), status), campaign_id)
        counts[key] = counts.get(key, 0) + 1
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
class EventFacts:
    id: int
    host: str  # a caller's name
    pool: list[int]  # the turfs it reserved, in id order
    code: str  # the join code attendees join it with
    out: list[int] = field(default_factory=list)  # the turfs checked out at it (see `launch`)


@dataclass
class Organizing:
    """Who was handed what before the requests (see `organize`): the statuses and bodies follow from it."""

    meeting: dict[str, tuple[float, float]]  # per campaign: where events meet and volunteers claim from
    held: dict[str, dict[str, int]]  # per campaign: caller -> the turf assigned to them, in assignment order
    events: dict[str, list[EventFacts]]
    codes: dict[str, list[tuple[int, str]]]  # per campaign: (join code id, who made it), in id order


@dataclass
class Facts:
    """What the database holds before the requests, to check response bodies against."""

    ids: dict[str, int]
    precincts: dict[str, int]
    households: dict[str, int]
    households_in: dict[str, set[int]]
    key_names: dict[str, set[str]]
    ground: Ground
    users: dict[str, UUID]  # the world's users, and the other host
    emails: dict[str, str]
    turfs: dict[str, list[TurfFacts]] = field(default_factory=dict)  # in id order
    cuts: dict[str, list[int]] = field(default_factory=dict)
    org: Organizing | None = None
    dead_codes: list[str] = field(default_factory=list)  # expired, revoked, used up
    scripts: dict[str, dict[str, int]] = field(default_factory=dict)  # per campaign: see `write_scripts`

    @property
    def organized(self) -> Organizing:
        assert self.org is not None, "the endpoint's prepare must organize"
        return self.org


async def read_facts(session: AsyncSession, world: World) -> Facts:
    # A second host, to own events, codes and turfs the first host must not reach.
    home = await campaign_service.get_campaign(session, HOME)
    other_host, _ = await campaign_service.add_member(session, home, OTHER_HOST_EMAIL, Role.host, name="Other Host",
                                                      password=PASSWORD)
    other_host_id = other_host.id
    await session.rollback()
    ground = await find_ground(session)
    ids: dict[str, int] = {slug: id_ for slug, id_ in (await session.execute(select(Campaign.slug, Campaign.id)))}
    facts = Facts(ids=ids, precincts={}, households={}, households_in={}, key_names={}, ground=ground,
                  users=world.users | {"other_host": other_host_id},
                  emails=world.emails | {"other_host": OTHER_HOST_EMAIL})
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
    memo: dict[str, Any] = field(default_factory=dict)  # what `send` picked, for the checks
    before: Counts | None = None  # the rows as the case before left them; None once `send` wrote (see wrote)
    after: Counts | None = None  # the rows once this case's request is done

    @property
    def caller(self) -> Who:
        return CALLERS[self.who]

    @property
    def campaign_id(self) -> int | None:
        return self.facts.ids.get(self.campaign or "")

    @property
    def role(self) -> Role | None:
        return role_of(self.who, self.campaign)

    @property
    def user_id(self) -> UUID:
        return self.facts.users[self.who]


def wrote(case: Case) -> None:
    """Say that the case's `send` wrote rows (made what the request names), so they are counted afresh before
    the request rather than taken from the case before. Forgetting this fails the case, as `send`'s rows count
    as the request's."""
    case.before = None


def headers(case: Case, who: str | None = None) -> dict[str, str]:
    """The callers' credentials (the caller of `case` unless `who` is given), and credentials the world lacks:
    a key sent as X-API-Key, the other host's token, and bad ones."""
    who = who or case.who
    admin = case.world.users["admin"]
    extra = {
        "key_all_x_api_key": {"X-API-Key": case.world.keys["key_all"]},
        "unknown_key": {"X-API-Key": "dsk_" + "A" * 43},
        "expired_token": {"Authorization": "Bearer " + auth_service.issue_token(admin, secret=SECRET, minutes=-5)},
        "forged_token": {"Authorization": "Bearer " + auth_service.issue_token(
            admin, secret="not-the-secret-" + "y" * 40, minutes=10)},
        "garbage_token": {"Authorization": "Bearer not.a.token"},
    }
    if who in extra:
        return extra[who]
    if who in case.facts.users:
        return bearer(case.facts.users[who])
    return case.world.headers(who)


Send = Callable[[Case], Awaitable[dict[str, Any]]]
Check = Callable[[Case, httpx.Response], Awaitable[None]]
Prepare = Callable[[httpx.AsyncClient, AsyncSession, World, Facts], Awaitable[None]]
# For a caller a route lets in, the status the service answers instead of a success, if any.
Refuse = Callable[[str, str | None], int | None]


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
    public: bool = False  # outside a campaign: open to anyone, whatever credentials they send
    refuse: Refuse | None = None  # what the service refuses, past the role and scope check
    prepare: Prepare | None = None  # makes, once before the cases, what the requests need (turfs, cuts)
    settle: Check | None = None  # after a success, waits for the work it left running in the background
    media_type: str | None = "application/json"  # of a success; None: no body
    variant: str = ""  # tells apart two entries for one route

    @property
    def in_campaign(self) -> bool:
        return "{campaign_id}" in self.route

    def __str__(self) -> str:
        return f"{self.method} {self.route}" + (f" ({self.variant})" if self.variant else "")

    def admitted(self, who: Who, campaign: str | None) -> int:
        """The status of the credential, campaign, role and scope checks: `ok` when the caller gets past them."""
        if self.public:
            return self.ok
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

    def expected(self, who: str, campaign: str | None) -> int:
        status = self.admitted(CALLERS[who], campaign)
        if status == self.ok and self.refuse is not None:
            return self.refuse(who, campaign) or status
        return status


def always(status: int) -> Refuse:
    """Refused to everyone the route lets in: the thing named isn't theirs to touch, or the request is bad."""
    return lambda who, campaign: status


def hidden_from(*roles: Role) -> Refuse:
    """A 404 for members of these roles: the case names what they can't see (another's turf, event or code)."""
    return lambda who, campaign: 404 if role_of(who, campaign) in roles else None


def grants(role: Role) -> Refuse:
    """A join code handing out `role`: refused to members who may not grant it."""
    return lambda who, campaign: None if role in GRANTS.get(role_of(who, campaign), frozenset()) else 403


def hosting(who: str, campaign: str | None) -> int | None:
    """Checking in someone else at the event of EVENT_HOST: a canvasser is forbidden, another host is not told
    the event exists."""
    role = role_of(who, campaign)
    if role == Role.canvasser:
        return 403
    return 404 if role == Role.host and who != EVENT_HOST.get(campaign or "") else None


# Successful reads: the body must be the caller's campaign's, not another's.

async def check_my_campaigns(case: Case, r: httpx.Response) -> None:
    got = [(c["id"], c["role"]) for c in r.json()]
    who = case.caller
    assert got == (sorted(who.roles.items()) if who.is_user else [(who.key_of, None)])


async def check_me(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert body["email"] == case.facts.emails[case.who]
    assert [(m["campaign_id"], m["role"]) for m in body["memberships"]] == sorted(case.caller.roles.items())


async def check_campaign(case: Case, r: httpx.Response) -> None:
    body, campaign = r.json(), case.campaign or ""
    assert (body["id"], body["role"]) == (campaign, case.caller.roles.get(campaign))
    assert body["precincts"] == case.facts.precincts[campaign]
    assert body["households"] == case.facts.households[campaign]


async def send_campaign_update(case: Case) -> dict[str, Any]:
    campaign = await campaign_service.find_campaign(case.session, owner(case))
    assert campaign is not None
    case.memo["was"] = (campaign.name, campaign.claim_lapse_hours)
    await case.session.rollback()
    return {"json": {"name": f"Renamed {case.n}", "claim_lapse_hours": 100 + case.n}}


async def check_campaign_updated(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["id"], body["role"], body["name"], body["claim_lapse_hours"]) == (
        case.campaign, case.role, f"Renamed {case.n}", 100 + case.n)
    assert body["households"] == case.facts.households[case.campaign or ""]


def campaign_updated_effect(case: Case, body: Any) -> Counts:
    return {(campaign_key(*case.memo["was"]), case.campaign_id): -1,
            (campaign_key(f"Renamed {case.n}", 100 + case.n), case.campaign_id): 1}


async def check_key_list(case: Case, r: httpx.Response) -> None:
    assert {k["name"] for k in r.json()} == case.facts.key_names[case.campaign or ""]
    assert all("key" not in k and "key_hash" not in k for k in r.json()), "a key list shows no secrets"


async def read_households(client: httpx.AsyncClient, session: AsyncSession, world: World, facts: Facts) -> None:
    """An audited read in each campaign, by its organizer: a page of 3 households at home, 2 abroad."""
    for who, campaign, limit in (("organizer", HOME, 3), ("foreign_organizer", FOREIGN, 2)):
        r = await client.get(f"/v1/campaigns/{campaign}/households", params={"limit": limit},
                             headers=world.headers(who))
        assert r.status_code == 200, r.text


async def check_audit(case: Case, r: httpx.Response) -> None:
    who, records = ("organizer", 3) if case.campaign == HOME else ("foreign_organizer", 2)
    assert [(e["action"], e["subject"], e["user_id"], e["records"]) for e in r.json()["items"]] == [
        ("households.read", "all precincts", str(case.facts.users[who]), records)], "the campaign's own reads only"


async def check_precinct_list(case: Case, r: httpx.Response) -> None:
    items, campaign = r.json()["items"], case.campaign or ""
    assert len(items) == case.facts.precincts[campaign]
    assert sum(p["households"] for p in items) == case.facts.households[campaign]


async def check_precinct_geojson(case: Case, r: httpx.Response) -> None:
    features, campaign = r.json()["features"], case.campaign or ""
    assert len(features) == case.facts.precincts[campaign] and "next_cursor" not in r.json()
    assert sum(f["properties"]["households"] for f in features) == case.facts.households[campaign]


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
                                  headers=headers(case))
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


async def check_members(case: Case, r: httpx.Response) -> None:
    want = (await case.session.execute(select(Membership.user_id, User.email, Membership.role)
                                       .join(User, User.id == Membership.user_id)
                                       .where(Membership.campaign_id == case.campaign_id)
                                       .order_by(Membership.id))).all()
    await case.session.rollback()
    assert [(UUID(m["user_id"]), m["email"], m["role"]) for m in r.json()["items"]] == [tuple(w) for w in want]


async def send_member_removal(case: Case) -> dict[str, Any]:
    """A fresh canvasser to remove, of the campaign named (of the home one, for a campaign that doesn't exist)."""
    campaign = await campaign_service.get_campaign(case.session, owner(case))
    user, _ = await campaign_service.add_member(case.session, campaign, f"leaver-{case.n}@example.test",
                                                Role.canvasser, password_hash="no hash: nobody logs in as them")
    case.memo["user"] = user.id
    await case.session.rollback()
    wrote(case)
    return {"user_id": str(case.memo["user"])}


async def check_member_removed(case: Case, r: httpx.Response) -> None:
    left = await case.session.scalar(select(func.count()).select_from(Membership)
                                     .where(Membership.user_id == case.memo["user"]))
    await case.session.rollback()
    assert left == 0


async def send_foreign_member(case: Case) -> dict[str, Any]:
    """A member of the other campaign only: removing them here names nobody."""
    return {"user_id": str(case.facts.users["foreign_organizer" if owner(case) == HOME else "organizer"])}


async def send_password_change(case: Case) -> dict[str, Any]:
    return {"json": {"current_password": PASSWORD, "new_password": f"matrix passphrase {case.n}"}}


async def check_password_changed(case: Case, r: httpx.Response) -> None:
    me = await case.client.get("/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.json()["email"] == case.facts.emails[case.who]
    # A token minted after the change works (tests/auth/test_sessions.py: those from before don't).
    assert (await case.client.get("/v1/me", headers=headers(case))).status_code == 200


async def send_revoke(case: Case) -> dict[str, Any]:
    # A fresh key to revoke; asking a campaign that doesn't exist, it is one of the home campaign's.
    campaign_id = case.campaign_id or case.facts.ids[HOME]
    row, case.target_key = await auth_service.create_api_key(case.session, campaign_id, name=f"target-{case.n}",
                                                             scopes=[Scope.turfs_read], created_by=None)
    wrote(case)
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


def elsewhere(case: Case) -> str:
    """The campaign whose things a case must not reach: the other one of `owner`."""
    return FOREIGN if owner(case) == HOME else HOME


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


def shown(case: Case) -> list[TurfFacts]:
    """The turfs a caller sees: all the campaign's, but for a canvasser the turfs they hold and for a host also
    the turf pools of their events."""
    turfs = case.facts.turfs[owner(case)]
    if case.role not in (Role.host, Role.canvasser):
        return turfs
    org = case.facts.organized
    seen = {turf for holder, turf in org.held[HOME].items() if holder == case.who}
    if case.role == Role.host:
        seen |= {turf for event in org.events[HOME] if event.host == case.who for turf in event.pool}
    assert seen and len(seen) < len(turfs), "the case shows nothing of the filter"
    return [t for t in turfs if t.id in seen]


async def check_turf_list(case: Case, r: httpx.Response) -> None:
    body, mine = r.json(), shown(case)
    assert body["next_cursor"] is None
    assert [(t["id"], t["name"], t["doors"]) for t in body["items"]] == [(t.id, t.name, t.doors) for t in mine]
    assert {t["precinct_id"] for t in body["items"]} == {PRECINCT}


async def check_turf_geojson(case: Case, r: httpx.Response) -> None:
    body, mine = r.json(), shown(case)
    assert body["type"] == "FeatureCollection"
    got = [(f["id"], f["properties"]["name"], f["properties"]["doors"], f["geometry"]["type"])
           for f in body["features"]]
    assert got == [(t.id, t.name, t.doors, "Polygon") for t in mine]


def turf_for(case: Case, *, own: bool) -> int:
    """A turf of the organized world for the case to name: one the caller holds or hosts (`own`), or another
    volunteer's. Callers who see every turf get volunteers' turfs either way."""
    org, slug = case.facts.organized, owner(case)
    held = org.held[slug]
    if slug == FOREIGN:
        return held["dual"] if own else held["foreign_admin"]
    # A host reads the turf checked out at their event (`launch`), never the rest of its pool.
    pools = {event.host: (event.out or event.pool)[0] for event in org.events[HOME]}
    picks = {"canvasser": (held["canvasser"], held["dual"]), "dual": (held["dual"], held["canvasser"]),
             "host": (pools["host"], pools["other_host"]), "other_host": (pools["other_host"], pools["host"])}
    mine, theirs = picks.get(case.who, (held["dual"], held["canvasser"]))
    return mine if own else theirs


def turf_sender(*, own: bool) -> Send:
    async def send(case: Case) -> dict[str, Any]:
        case.memo["turf"] = turf_for(case, own=own)
        return {"turf_id": case.memo["turf"]}
    return send


async def send_idle_turf(case: Case) -> dict[str, Any]:
    """A turf of an event's pool nobody was handed (`launch`): of the caller's own event, for a host."""
    events = {event.host: event for event in case.facts.organized.events[owner(case)]}
    event = events.get(case.who) or events[EVENT_HOST[owner(case)]]
    case.memo["turf"] = next(turf for turf in event.pool if turf not in event.out)
    return {"turf_id": case.memo["turf"]}


async def check_turf(case: Case, r: httpx.Response) -> None:
    body = r.json()
    turf = next(t for t in case.facts.turfs[owner(case)] if t.id == case.memo["turf"])
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
                                  headers=headers(case))
    assert probe.status_code == 200 and probe.json()["name"] == f"probe-{case.n}"


def drawn_effect(case: Case, body: Any) -> Counts:
    return {(turf_key(body["name"], body["doors"]), case.campaign_id): 1,
            ("household in a turf", case.campaign_id): body["doors"], ("walk_stop", case.campaign_id): body["doors"]}


async def send_target(case: Case) -> dict[str, Any]:
    # The campaign's turf as prepared (as renamed, after an allowed rename); once an allowed deletion took it,
    # a fresh one on a spot of its own.
    campaign_id = case.facts.ids[owner(case)]
    turf = (await case.session.execute(select(Turf).where(Turf.campaign_id == campaign_id, Turf.status == "active")
                                       .order_by(Turf.id).limit(1))).scalar_one_or_none()
    if turf is None:
        turf = await turf_service.draw_turf(case.session, campaign_id, name=f"target-{case.n}",
                                            shape=case.facts.ground.spots[case.n], take_over=False)
        wrote(case)
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
                                  headers=headers(case))
    assert probe.status_code == 404, probe.text


def deleted_effect(case: Case, body: Any) -> Counts:
    assert case.target is not None
    return {(turf_key(case.target.name, case.target.doors), case.campaign_id): -1,
            ("household in a turf", case.campaign_id): -case.target.doors,
            ("walk_stop", case.campaign_id): -case.target.doors}


async def send_cut(case: Case) -> dict[str, Any]:
    # Each cut starts from the world as prepared: an earlier case's cut turfs go, so each success adds the same.
    campaign_id = case.facts.ids[owner(case)]
    cut = (await case.session.execute(select(Turf.id).where(Turf.campaign_id == campaign_id, Turf.source == "cut")
                                      )).scalars().all()
    for turf_id in cut:
        await turf_service.delete_turf(case.session, campaign_id, turf_id)
        wrote(case)
    await case.session.rollback()
    return {"json": CUT_BODY}


async def settle_cut(case: Case, r: httpx.Response) -> None:
    auth = headers(case)
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
    doors = sum(t["doors"] for t in made)
    return effect | {("turf_cut done", case.campaign_id): 1, ("household in a turf", case.campaign_id): doors,
                     ("walk_stop", case.campaign_id): doors}


async def send_cut_id(case: Case) -> dict[str, Any]:
    return {"cut_id": case.facts.cuts[owner(case)][0]}


async def check_cut_read(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["id"], body["state"], body["precincts"]) == (case.facts.cuts[owner(case)][0], "done", [CUT_PRECINCT])
    assert body["turfs_made"] == len(case.facts.turfs[owner(case)]) > 0
    assert body["report"]["overall"]["doors"] == sum(t.doors for t in case.facts.turfs[owner(case)])


# Organizing: each test cuts PRECINCT in both campaigns into small turfs and hands some out (see `organize`).

TARGET_DOORS = 20  # small turfs: dozens at home, a dozen abroad, enough to hold, reserve and claim in every case
# Who is given a turf (by the campaign's MAKER), in this order; the turfs each host's event reserves.
HOLDERS = {HOME: ("canvasser", "dual", "host"), FOREIGN: ("dual", "foreign_admin")}
POOLS = {HOME: {"host": 7, "other_host": 2}, FOREIGN: {"foreign_organizer": 4}}
MAKER = {HOME: "organizer", FOREIGN: "foreign_admin"}  # assigns the turfs and makes a join code of their own
EVENT_HOST = {HOME: "host", FOREIGN: "foreign_organizer"}  # whose event the check-ins go to
TAKEN_FROM = {HOME: "canvasser", FOREIGN: "dual"}  # whose turf an organizer takes back
DAY = timedelta(days=1)
EVENT_BOUNDS = {"max_hours": 24, "max_days_ahead": 30}  # the settings' defaults


async def organize(client: httpx.AsyncClient, session: AsyncSession, world: World, facts: Facts) -> None:
    """In each campaign: cut PRECINCT, assign a turf to each of HOLDERS, run an event per host of POOLS (with its
    join code), and have the MAKER make a join code."""
    org = Organizing(meeting={}, held={}, events={}, codes={})
    now = utcnow()
    names = {user_id: name for name, user_id in facts.users.items()}
    for slug in (HOME, FOREIGN):
        campaign_id, maker = facts.ids[slug], facts.users[MAKER[slug]]
        job = await cut_service.start_cut(session, campaign_id, codes=[PRECINCT], target=TARGET_DOORS,
                                           created_by="tests")
        assert job.id is not None
        await cut_service.cut_turfs(session, campaign_id, codes=[PRECINCT], target=TARGET_DOORS, cut_id=job.id)
        turfs = (await session.execute(select(Turf).where(Turf.campaign_id == campaign_id).order_by(Turf.id))
                 ).scalars().all()
        middle = turfs[len(turfs) // 2]
        lon, lat = (middle.min_lon + middle.max_lon) / 2, (middle.min_lat + middle.max_lat) / 2
        org.meeting[slug] = (lon, lat)
        ids = [t.id for t in turfs if t.id is not None]
        await session.rollback()
        org.held[slug] = {}
        for holder, turf_id in zip(HOLDERS[slug], ids, strict=False):
            await holdings.assign(session, campaign_id, turf_id, [facts.users[holder]], by=maker)
            org.held[slug][holder] = turf_id
        org.events[slug] = []
        for host, size in POOLS[slug].items():
            # On now, for half a day (an event lasts a day at most).
            event = await launches.create_event(
                session, campaign_id, host=facts.users[host], title=f"{host}'s launch",
                starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=12), lon=lon, lat=lat,
                capacity=100, turfs=size, **EVENT_BOUNDS)
            detail = await launches.event_detail(session, event)
            assert event.id is not None and detail["code"] and len(detail["turfs"]) == size, detail
            org.events[slug].append(EventFacts(event.id, host, [t.id for t in detail["turfs"]], detail["code"]))
            await session.rollback()
        await codes.create_join_code(session, campaign_id, role=Role.canvasser, expires_at=now + DAY,
                                     max_uses=None, event_id=None, by=maker,
                                     by_role=CALLERS[MAKER[slug]].roles[slug])
        made = await session.execute(select(JoinCode.id, JoinCode.created_by)
                                     .where(JoinCode.campaign_id == campaign_id).order_by(JoinCode.id))
        org.codes[slug] = [(code_id, names[made_by]) for code_id, made_by in made.all()]
        await session.rollback()
        # Each member may succeed once per test, taking a free turf.
        free, members = len(ids) - len(org.held[slug]) - sum(POOLS[slug].values()), members_of(slug)
        assert free >= members, f"{free} free turfs in {slug} for {members} members"
    facts.org = org


async def launch(client: httpx.AsyncClient, session: AsyncSession, world: World, facts: Facts) -> None:
    """`organize`, then at each event a volunteer joins and is checked out a turf, which its host may then read
    (turf_for names it)."""
    await organize(client, session, world, facts)
    for slug, events in facts.organized.events.items():
        for event in events:
            email = f"launched-{event.id}@example.test"
            await members.join(session, code=event.code, name="Launched", email=email, password=PASSWORD,
                               secret=SECRET, minutes=10)
            user_id = await session.scalar(select(User.id).where(User.email == email))
            await session.rollback()
            assert user_id is not None
            event.out.append(await launches.check_in(session, facts.ids[slug], event.id, user_id,
                                                     by=facts.users[event.host]))
            await session.rollback()


async def launch_scripts(client: httpx.AsyncClient, session: AsyncSession, world: World, facts: Facts) -> None:
    """`launch`, then `write_scripts`."""
    await launch(client, session, world, facts)
    await write_scripts(client, session, world, facts)


def members_of(slug: str) -> int:
    return sum(1 for who in CALLERS.values() if slug in who.roles)


def is_member(case: Case) -> bool:
    return case.caller.is_user and case.role is not None


async def first_free_turf(session: AsyncSession, campaign_id: int) -> int:
    """A turf of the campaign that nobody holds and no event reserved, the first by id."""
    turf_id = await session.scalar(
        select(Turf.id).where(Turf.campaign_id == campaign_id, Turf.status == "active",
                              Turf.id.not_in(select(TurfHolding.turf_id)), Turf.id.not_in(select(EventTurf.turf_id)))
        .order_by(Turf.id).limit(1))
    await session.rollback()
    assert turf_id is not None, "no free turf left"
    return turf_id


async def free_turf(case: Case) -> int:
    """A free turf (see first_free_turf) of the campaign a case names."""
    return await first_free_turf(case.session, case.facts.ids[owner(case)])


def taken(case: Case) -> set[int]:
    """The turfs held or reserved before the requests."""
    org, slug = case.facts.organized, owner(case)
    return set(org.held[slug].values()) | {turf for event in org.events[slug] for turf in event.pool}


def event_for(case: Case, *, own: bool) -> EventFacts:
    """An event for the case to name: the caller's own (the first host's, for callers who host none), or another
    host's; abroad, the only one."""
    events = {event.host: event for event in case.facts.organized.events[owner(case)]}
    if owner(case) == FOREIGN:
        return events[EVENT_HOST[FOREIGN]]
    mine, theirs = ("other_host", "host") if case.who == "other_host" else ("host", "other_host")
    return events[mine if own else theirs]


def check_in_event(case: Case) -> EventFacts:
    return next(e for e in case.facts.organized.events[owner(case)] if e.host == EVENT_HOST[owner(case)])


def nothing(case: Case, body: Any) -> Counts:
    return {}


def holding_effect(case: Case, action: str, change: int) -> Counts:
    """A holding made (1) or ended (-1), with its history row and the turf's holder count."""
    return {("turf_holding", case.campaign_id): change, ("turf holders", case.campaign_id): change,
            (f"turf_history {action}", case.campaign_id): 1}


def assign_sender(*, member: bool) -> Send:
    """Assign a free turf to a member of the campaign named, or (not `member`) to someone of the other only."""
    users = ({HOME: "canvasser", FOREIGN: "foreign_organizer"} if member
             else {HOME: "foreign_admin", FOREIGN: "canvasser"})

    async def send(case: Case) -> dict[str, Any]:
        case.memo["turf"], case.memo["user"] = await free_turf(case), case.facts.users[users[owner(case)]]
        return {"turf_id": case.memo["turf"], "json": {"user_ids": [str(case.memo["user"])]}}
    return send


async def check_assigned(case: Case, r: httpx.Response) -> None:
    got = [(h["turf_id"], h["user_id"], h["via"]) for h in r.json()]
    assert got == [(case.memo["turf"], str(case.memo["user"]), "assigned")]


async def send_unassign(case: Case) -> dict[str, Any]:
    slug = owner(case)
    turf_id, user_id = case.facts.organized.held[slug][TAKEN_FROM[slug]], case.facts.users[TAKEN_FROM[slug]]
    held = await case.session.scalar(select(TurfHolding.id).where(TurfHolding.turf_id == turf_id,
                                                                  TurfHolding.user_id == user_id))
    await case.session.rollback()
    if held is None:  # an allowed case before took it back: give it again, so there is a holding to take
        await holdings.assign(case.session, case.facts.ids[slug], turf_id, [user_id], by=None)
        await case.session.rollback()
        wrote(case)
    return {"turf_id": turf_id, "user_id": str(user_id)}


async def check_holders(case: Case, r: httpx.Response) -> None:
    held, users = case.facts.organized.held[owner(case)], case.facts.users
    got = sorted((h["turf_id"], h["user_id"], h["via"]) for h in r.json())
    assert got == sorted((turf, str(users[holder]), "assigned") for holder, turf in held.items())


async def check_history(case: Case, r: httpx.Response) -> None:
    slug, users = owner(case), case.facts.users
    got = [(h["turf_id"], h["user_id"], h["action"], h["by_user_id"]) for h in r.json()]
    assert got == [(turf, str(users[holder]), "assigned", str(users[MAKER[slug]]))
                   for holder, turf in case.facts.organized.held[slug].items()]


async def send_claim(case: Case) -> dict[str, Any]:
    lon, lat = case.facts.organized.meeting[owner(case)]
    return {"json": {"lon": lon, "lat": lat}}


async def check_claimed(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["new"], body["precinct_id"]) == (True, PRECINCT)
    assert body["turf_id"] in {t.id for t in case.facts.turfs[owner(case)]} - taken(case)


async def send_claim_again(case: Case) -> dict[str, Any]:
    if is_member(case):
        lon, lat = case.facts.organized.meeting[owner(case)]
        campaign = await campaign_service.get_campaign(case.session, owner(case))
        claim = await holdings.claim(case.session, campaign, case.user_id, lon=lon, lat=lat)
        case.memo["turf"] = claim.turf_id
        await case.session.rollback()
        wrote(case)
    return await send_claim(case)


async def check_claimed_again(case: Case, r: httpx.Response) -> None:
    assert (r.json()["turf_id"], r.json()["new"]) == (case.memo["turf"], False)


async def send_release(case: Case) -> dict[str, Any]:
    # A member is given a turf to give back; anyone else names the turf an organizer took back.
    if is_member(case):
        turf_id = await free_turf(case)
        await holdings.assign(case.session, case.facts.ids[owner(case)], turf_id, [case.user_id], by=None)
        await case.session.rollback()
        wrote(case)
    else:
        turf_id = case.facts.organized.held[owner(case)][TAKEN_FROM[owner(case)]]
    return {"turf_id": turf_id}


async def send_release_other(case: Case) -> dict[str, Any]:
    slug = owner(case)
    holder = next(h for h in HOLDERS[slug] if h != case.who)
    return {"turf_id": case.facts.organized.held[slug][holder]}


def code_sender(role: Role, *, own_event: bool | None = None) -> Send:
    """Make a join code for `role`; for an event if `own_event` is given (see event_for)."""
    async def send(case: Case) -> dict[str, Any]:
        body: dict[str, Any] = {"role": role, "expires_at": (utcnow() + DAY).isoformat(), "max_uses": 5}
        case.memo["role"] = role
        if own_event is not None:
            body["event_id"] = case.memo["event"] = event_for(case, own=own_event).id
        return {"json": body}
    return send


async def check_code_made(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["role"], body["uses"], body["max_uses"], body["revoked_at"], body["event_id"]) == (
        case.memo["role"], 0, 5, None, case.memo.get("event"))
    assert re.fullmatch(r"[A-Z2-9]{10}", body["code"]), body["code"]


async def check_codes(case: Case, r: httpx.Response) -> None:
    want = [code_id for code_id, maker in case.facts.organized.codes[owner(case)]
            if case.role != Role.host or maker == case.who]
    assert want and [c["id"] for c in r.json()] == want


def revoke_sender(*, own: bool) -> Send:
    """A fresh join code to revoke, made by the caller (`own`; by the campaign's MAKER if they can't make one),
    or by another host (abroad: another organizer)."""
    async def send(case: Case) -> dict[str, Any]:
        slug = owner(case)
        if own:
            maker = case.who if case.campaign == slug and case.role in HOSTS else MAKER[slug]
        else:
            maker = next(m for m in (("other_host", "host") if slug == HOME else ("foreign_organizer", "foreign_admin"))
                         if m != case.who)
        code = await codes.create_join_code(
            case.session, case.facts.ids[slug], role=Role.canvasser, expires_at=utcnow() + DAY, max_uses=None,
            event_id=None, by=case.facts.users[maker], by_role=CALLERS[maker].roles[slug])
        case.memo["code"] = (code.id, code.code)
        await case.session.rollback()
        wrote(case)
        return {"code_id": code.id}
    return send


async def check_code_revoked(case: Case, r: httpx.Response) -> None:
    code_id, code = case.memo["code"]
    assert (r.json()["id"], r.json()["code"]) == (code_id, code) and r.json()["revoked_at"] is not None
    probe = await case.client.post("/v1/join", json={"code": code, "name": "Probe", "password": PASSWORD,
                                                     "email": f"probe-{case.n}@example.test"})
    assert probe.status_code == 410, f"a revoked code must stop working at once: {probe.text}"


def joiner(case: Case, code: str, email: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
    email = email or f"joiner-{case.n}@example.test"
    return {"json": {"code": code, "name": f"Joiner {case.n}", "email": email, "password": password}}


async def send_join(case: Case) -> dict[str, Any]:
    return joiner(case, event_for(case, own=True).code)


async def check_joined(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["campaign_id"], body["role"], body["event_id"], body["new_account"]) == (
        HOME, "canvasser", event_for(case, own=True).id, True)
    me = await case.client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200, me.text
    assert [(m["campaign_id"], m["role"]) for m in me.json()["memberships"]] == [(HOME, "canvasser")]


def joined_effect(case: Case, body: Any) -> Counts:
    home = case.facts.ids[HOME]
    return {("user_account", None): 1, ("membership canvasser", home): 1, ("join_code uses", home): 1,
            ("event_attendee", home): 1}


async def send_unknown_code(case: Case) -> dict[str, Any]:
    return joiner(case, "NOSUCHCODE")  # the O can't be in a code


async def kill_codes(client: httpx.AsyncClient, session: AsyncSession, world: World, facts: Facts) -> None:
    """Three join codes of the home campaign that worked once: expired, revoked, used up."""
    campaign_id, maker = facts.ids[HOME], facts.users["organizer"]
    made = [await codes.create_join_code(session, campaign_id, role=Role.canvasser, expires_at=utcnow() + DAY,
                                         max_uses=1, event_id=None, by=maker, by_role=Role.organizer)
            for _ in range(3)]
    expired, revoked, used = ((code.id, code.code) for code in made)
    await session.execute(update(JoinCode).where(JoinCode.id == expired[0])
                          .values(expires_at=utcnow() - timedelta(minutes=1)))
    await session.commit()
    await codes.revoke_join_code(session, campaign_id, revoked[0], by=maker, by_role=Role.organizer)
    await members.join(session, code=used[1], name="First", email="first@example.test", password=PASSWORD,
                       secret=SECRET, minutes=10)
    await session.rollback()
    facts.dead_codes = [expired[1], revoked[1], used[1]]


async def send_dead_code(case: Case) -> dict[str, Any]:
    return joiner(case, case.facts.dead_codes[case.n % len(case.facts.dead_codes)])


async def send_wrong_password(case: Case) -> dict[str, Any]:
    # Someone's account, not yet in the campaign: joining must not add them without their password.
    return joiner(case, event_for(case, own=True).code, case.world.emails["foreign_admin"], "not their password")


async def send_event(case: Case) -> dict[str, Any]:
    lon, lat = case.facts.organized.meeting[owner(case)]
    start = utcnow() + timedelta(hours=1)
    return {"json": {"title": f"probe-{case.n}", "starts_at": start.isoformat(),
                     "ends_at": (start + timedelta(hours=2)).isoformat(), "lon": lon, "lat": lat, "capacity": 10,
                     "turfs": 1}}


async def check_event_made(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["title"], body["host_id"], body["capacity"], body["attendees"]) == (
        f"probe-{case.n}", str(case.user_id), 10, [])
    assert body["code"] and len(body["turfs"]) == 1
    assert body["turfs"][0]["id"] in {t.id for t in case.facts.turfs[owner(case)]} - taken(case)


def event_effect(case: Case, body: Any) -> Counts:
    return {("event", case.campaign_id): 1, ("event_turf", case.campaign_id): len(body["turfs"]),
            ("join_code", case.campaign_id): 1}


async def check_events(case: Case, r: httpx.Response) -> None:
    want = [e.id for e in case.facts.organized.events[owner(case)] if case.role != Role.host or e.host == case.who]
    assert want and [e["id"] for e in r.json()] == want


def event_sender(*, own: bool) -> Send:
    async def send(case: Case) -> dict[str, Any]:
        case.memo["event"] = event_for(case, own=own)
        return {"event_id": case.memo["event"].id}
    return send


async def check_event(case: Case, r: httpx.Response) -> None:
    body, event = r.json(), case.memo["event"]
    assert (body["id"], body["host_id"], body["code"]) == (event.id, str(case.facts.users[event.host]), event.code)
    assert [t["id"] for t in body["turfs"]] == event.pool and body["attendees"] == []


def change_sender(*, own: bool) -> Send:
    """Rename an event, move its end and grow its pool by one: the caller's own or another host's (see event_for)."""
    async def send(case: Case) -> dict[str, Any]:
        event = case.memo["event"] = event_for(case, own=own)
        case.memo["size"] = await case.session.scalar(select(func.count()).select_from(EventTurf)
                                                      .where(EventTurf.event_id == event.id))
        await case.session.rollback()
        case.memo["ends"] = ends = utcnow().replace(microsecond=0) + timedelta(hours=6, minutes=case.n)
        return {"event_id": event.id, "json": {"title": f"changed-{case.n}", "ends_at": ends.isoformat(),
                                               "turfs": case.memo["size"] + 1}}
    return send


async def check_event_changed(case: Case, r: httpx.Response) -> None:
    body, event = r.json(), case.memo["event"]
    assert (body["id"], body["title"], body["code"], body["cancelled_at"]) == (
        event.id, f"changed-{case.n}", event.code, None)
    assert datetime.fromisoformat(body["ends_at"]) == case.memo["ends"]
    turfs = {t["id"] for t in body["turfs"]}
    assert len(turfs) == case.memo["size"] + 1 and set(event.pool) <= turfs
    assert turfs <= {t.id for t in case.facts.turfs[owner(case)]}
    # The event's join code follows its end.
    expires = await case.session.scalar(select(JoinCode.expires_at).where(JoinCode.code == event.code))
    await case.session.rollback()
    assert expires == case.memo["ends"]


def cancel_sender(*, own: bool) -> Send:
    """An event to cancel. A caller who may cancel it gets a fresh one of one turf, their own if they host (or
    the campaign's first host's), or another host's; the rest name an event of the world, which must stay."""
    async def send(case: Case) -> dict[str, Any]:
        slug, org = owner(case), case.facts.organized
        if not (is_member(case) and (case.role in FIELD or (case.role == Role.host and own))):
            case.memo["event"] = event_for(case, own=own)
            return {"event_id": case.memo["event"].id}
        host = (case.who if case.role == Role.host else EVENT_HOST[slug]) if own else MAKER[slug]
        lon, lat = org.meeting[slug]
        now = utcnow()
        event = await launches.create_event(
            case.session, case.facts.ids[slug], host=case.facts.users[host], title=f"doomed-{case.n}",
            starts_at=now, ends_at=now + timedelta(hours=3), lon=lon, lat=lat, capacity=5, turfs=1, **EVENT_BOUNDS)
        detail = await launches.event_detail(case.session, event)
        assert event.id is not None and len(detail["turfs"]) == 1
        case.memo["event"] = EventFacts(event.id, host, [detail["turfs"][0].id], detail["code"])
        await case.session.rollback()  # expires `event`: its facts are in the memo
        wrote(case)
        return {"event_id": case.memo["event"].id}
    return send


async def check_event_cancelled(case: Case, r: httpx.Response) -> None:
    body, event = r.json(), case.memo["event"]
    assert (body["id"], body["title"], body["host_id"]) == (event.id, f"doomed-{case.n}",
                                                            str(case.facts.users[event.host]))
    assert body["cancelled_at"] is not None
    probe = await case.client.post("/v1/join", json={"code": event.code, "name": "Probe", "password": PASSWORD,
                                                     "email": f"probe-{case.n}@example.test"})
    assert probe.status_code == 410, f"a cancelled event's code must stop working at once: {probe.text}"


def cancelled_effect(case: Case, body: Any) -> Counts:
    """The event cancelled, its code revoked and its one turf, never handed out, back at once."""
    return {("event cancelled", case.campaign_id): 1, ("join_code revoked", case.campaign_id): 1,
            ("event_turf", case.campaign_id): -1}


async def join_event(case: Case, event: EventFacts, email: str) -> UUID:
    """Join an event with its code, as a new volunteer or an existing member (their password is PASSWORD)."""
    await members.join(case.session, code=event.code, name=f"Volunteer {case.n}", email=email,
                       password=PASSWORD, secret=SECRET, minutes=10)
    user_id = await case.session.scalar(select(User.id).where(User.email == email))
    await case.session.rollback()
    wrote(case)
    assert user_id is not None
    return user_id


async def send_check_in(case: Case) -> dict[str, Any]:
    event = check_in_event(case)
    if is_member(case):
        await join_event(case, event, case.facts.emails[case.who])
        case.memo["attendee"] = case.user_id
    case.memo["event"] = event
    return {"event_id": event.id, "json": {}}


def own_event_host(who: str, campaign: str | None) -> int | None:
    """The event's own host takes no turf from its pool (they run it): 409."""
    return 409 if campaign is not None and EVENT_HOST.get(campaign) == who else None


async def send_check_in_unjoined(case: Case) -> dict[str, Any]:
    return {"event_id": check_in_event(case).id, "json": {}}


async def newcomer(case: Case, event: EventFacts) -> UUID:
    """An attendee of the event not checked in: the one the cases before named, or a volunteer joining now."""
    user_id = await case.session.scalar(select(EventAttendee.user_id).where(
        EventAttendee.event_id == event.id, EventAttendee.checked_in_at.is_(None)).order_by(EventAttendee.id).limit(1))
    await case.session.rollback()
    return user_id or await join_event(case, event, f"volunteer-{case.n}@example.test")


async def send_check_in_other(case: Case) -> dict[str, Any]:
    event = check_in_event(case)
    case.memo.update(event=event, attendee=await newcomer(case, event))
    return {"event_id": event.id, "json": {"user_id": str(case.memo["attendee"])}}


async def send_pairing(case: Case) -> dict[str, Any]:
    event = check_in_event(case)
    partner = (await case.session.execute(select(EventAttendee.user_id, EventAttendee.turf_id).where(
        EventAttendee.event_id == event.id, EventAttendee.turf_id.is_not(None)).order_by(EventAttendee.id).limit(1)
    )).first()
    await case.session.rollback()
    if partner is None:
        user_id = await join_event(case, event, f"partner-{case.n}@example.test")
        turf_id = await launches.check_in(case.session, case.facts.ids[owner(case)], event.id, user_id,
                                          by=case.facts.users[event.host])
        await case.session.rollback()
        partner = (user_id, turf_id)
    case.memo.update(event=event, attendee=await newcomer(case, event), turf=partner[1])
    return {"event_id": event.id, "json": {"user_id": str(case.memo["attendee"]), "pair_with": str(partner[0])}}


async def check_checked_in(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert body["user_id"] == str(case.memo["attendee"])
    if "turf" in case.memo:
        assert body["turf_id"] == case.memo["turf"], "paired onto the partner's turf"
    else:
        assert body["turf_id"] in case.memo["event"].pool


def checked_in_effect(case: Case, body: Any) -> Counts:
    return holding_effect(case, "checked_out", 1) | {("event_turf checked out", case.campaign_id): 1,
                                                     ("event_attendee checked in", case.campaign_id): 1}


def paired_effect(case: Case, body: Any) -> Counts:
    return holding_effect(case, "checked_out", 1) | {("event_attendee checked in", case.campaign_id): 1}


# Scripts: each test writes two in both campaigns through the service (see `write_scripts`).

QUESTIONS = [
    {"id": "support", "text": "Can we count on your support?", "kind": "single",
     "choices": [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}]},
    {"id": "issues", "text": "Which issues matter to you?", "kind": "multiple",
     "choices": [{"id": "housing", "label": "Housing"}, {"id": "transit", "label": "Transit"}]},
    {"id": "note", "text": "Anything else?", "kind": "text", "choices": []},
]
OWN_RESULTS = [{"code": "wrong_address", "label": "Wrong address", "contacted": False}]
RESULT_CODES = STANDARD_RESULTS + OWN_RESULTS  # as a version reads: the standard ones first
NO_USES = {"default": False, "precincts": [], "turf_ids": []}


def script_body(name: str, questions: list[dict[str, Any]] = QUESTIONS) -> dict[str, Any]:
    return {"name": name, "questions": questions, "result_codes": OWN_RESULTS}


async def make_script(session: AsyncSession, campaign_id: int, name: str,
                      questions: list[dict[str, Any]] = QUESTIONS) -> int:
    script = await script_service.create_script(session, campaign_id,
                                                ScriptIn.model_validate(script_body(name, questions)))
    assert script.id is not None
    return script.id


async def write_scripts(client: httpx.AsyncClient, session: AsyncSession, world: World, facts: Facts) -> None:
    """In each campaign: `<slug> doors`, the default, whose version 1 asked the first question and version 2
    asks them all; and `<slug> draft`, used nowhere."""
    for slug in (HOME, FOREIGN):
        campaign_id = facts.ids[slug]
        doors = await make_script(session, campaign_id, f"{slug} doors", QUESTIONS[:1])
        await script_service.set_uses(session, campaign_id, doors, ScriptUses(default=True))
        await script_service.update_script(session, campaign_id, doors,
                                           ScriptIn.model_validate(script_body(f"{slug} doors")))
        facts.scripts[slug] = {"doors": doors, "draft": await make_script(session, campaign_id, f"{slug} draft")}
    await session.rollback()


async def organize_scripts(client: httpx.AsyncClient, session: AsyncSession, world: World, facts: Facts) -> None:
    """`organize`, then `write_scripts`: every turf carries its campaign's doors script."""
    await organize(client, session, world, facts)
    await write_scripts(client, session, world, facts)


def script_sender(which: str, *, foreign: bool = False, **extra: Any) -> Send:
    """Name a script `write_scripts` made: the campaign's own, or (`foreign`) the other campaign's."""
    async def send(case: Case) -> dict[str, Any]:
        case.memo["script"] = case.facts.scripts[elsewhere(case) if foreign else owner(case)][which]
        return {"script_id": case.memo["script"]} | extra
    return send


async def check_scripts(case: Case, r: httpx.Response) -> None:
    slug = owner(case)
    mine = case.facts.scripts[slug]
    got = [(s["id"], s["name"], s["version"], s["uses"]["default"]) for s in r.json()["items"]]
    assert got == [(mine["doors"], f"{slug} doors", 2, True), (mine["draft"], f"{slug} draft", 1, False)]


async def check_script(case: Case, r: httpx.Response) -> None:
    body, slug = r.json(), owner(case)
    assert (body["id"], body["name"], body["version"], body["uses"]) == (
        case.facts.scripts[slug]["doors"], f"{slug} doors", 2, NO_USES | {"default": True})
    assert [(v["version"], v["frozen"]) for v in body["versions"]] == [(1, True), (2, True)]
    current = body["current"]
    assert (current["script_id"], current["version"], current["questions"], current["result_codes"]) == (
        body["id"], 2, QUESTIONS, RESULT_CODES)


async def check_script_version(case: Case, r: httpx.Response) -> None:
    body, slug = r.json(), owner(case)
    assert (body["script_id"], body["version"], body["name"], body["frozen"]) == (
        case.memo["script"], 1, f"{slug} doors", True)
    assert (body["questions"], body["result_codes"]) == (QUESTIONS[:1], RESULT_CODES)


async def send_script(case: Case) -> dict[str, Any]:
    return {"json": script_body(f"probe-{case.n}")}


async def send_taken_name(case: Case) -> dict[str, Any]:
    return {"json": script_body(f"{owner(case)} draft")}


async def check_script_made(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["name"], body["version"], body["uses"], body["turfs_using"]) == (f"probe-{case.n}", 1, NO_USES, 0)
    assert [(v["version"], v["frozen"]) for v in body["versions"]] == [(1, False)]
    current = body["current"]
    assert (current["script_id"], current["version"], current["frozen"]) == (body["id"], 1, False)
    assert (current["questions"], current["result_codes"]) == (QUESTIONS, RESULT_CODES)
    probe = await case.client.get(f"/v1/campaigns/{case.campaign}/scripts/{body['id']}", headers=headers(case))
    assert probe.status_code == 200 and probe.json()["name"] == f"probe-{case.n}", probe.text


def script_made_effect(case: Case, body: Any) -> Counts:
    name = f"probe-{case.n}"
    return {(f"script {name}", case.campaign_id): 1, (f"script_version {name}", case.campaign_id): 1,
            ("script versions", case.campaign_id): 1}


def edit_sender(*, in_use: bool) -> Send:
    """Change a fresh script asking the first question, put to use by PRECINCT (`in_use`) or not."""
    async def send(case: Case) -> dict[str, Any]:
        campaign_id = case.facts.ids[owner(case)]
        script_id = await make_script(case.session, campaign_id, f"target-{case.n}", QUESTIONS[:1])
        if in_use:
            await script_service.set_uses(case.session, campaign_id, script_id, ScriptUses(precincts=[PRECINCT]))
        await case.session.rollback()
        wrote(case)
        case.memo.update(script=script_id, in_use=in_use)
        return {"script_id": script_id, "json": script_body(f"edited-{case.n}")}
    return send


async def check_edited(case: Case, r: httpx.Response) -> None:
    body, in_use = r.json(), case.memo["in_use"]
    version = 2 if in_use else 1
    assert (body["id"], body["name"], body["version"]) == (case.memo["script"], f"edited-{case.n}", version)
    versions = [(1, True), (2, True)] if in_use else [(1, False)]
    assert [(v["version"], v["frozen"]) for v in body["versions"]] == versions
    current = body["current"]
    assert (current["version"], current["name"], current["questions"]) == (version, f"edited-{case.n}", QUESTIONS)
    if in_use:
        probe = await case.client.get(f"/v1/campaigns/{case.campaign}/scripts/{body['id']}/versions/1",
                                      headers=headers(case))
        assert probe.status_code == 200, probe.text
        assert (probe.json()["name"], probe.json()["questions"]) == (f"target-{case.n}", QUESTIONS[:1]), \
            "a version in use must never change"


def edited_effect(case: Case, body: Any) -> Counts:
    campaign_id, was, now = case.campaign_id, f"target-{case.n}", f"edited-{case.n}"
    effect = {(f"script {was}", campaign_id): -1, (f"script {now}", campaign_id): 1,
              (f"script_version {now}", campaign_id): 1}
    if case.memo["in_use"]:
        return effect | {("script versions", campaign_id): 1, ("script_version frozen", campaign_id): 1}
    return effect | {(f"script_version {was}", campaign_id): -1}


async def restore_uses(session: AsyncSession, campaign_id: int, default_id: int) -> None:
    """Put the uses back as `write_scripts` left them: the default script, and no other in use."""
    used = (await session.execute(select(Script.id).where(
        Script.campaign_id == campaign_id, Script.id != default_id,
        or_(Script.is_default, Script.id.in_(select(Precinct.script_id)), Script.id.in_(select(Turf.script_id))))
    )).scalars().all()
    for script_id in used:
        await script_service.set_uses(session, campaign_id, script_id, ScriptUses())
    if used:
        await script_service.set_uses(session, campaign_id, default_id, ScriptUses(default=True))
    await session.rollback()


async def send_uses(case: Case) -> dict[str, Any]:
    """Make a fresh script the default, PRECINCT's and its first turf's. The uses are first put back as
    prepared, so every success changes the same; callers the route turns away name the draft."""
    slug = owner(case)
    campaign_id, script_id = case.facts.ids[slug], case.facts.scripts[slug]["draft"]
    turf_id = case.facts.turfs[slug][0].id
    if is_member(case) and case.role in FIELD:
        await restore_uses(case.session, campaign_id, case.facts.scripts[slug]["doors"])
        script_id = await make_script(case.session, campaign_id, f"uses-{case.n}")
        await case.session.rollback()
        wrote(case)
    case.memo.update(script=script_id, turf=turf_id)
    return {"script_id": script_id, "json": {"default": True, "precincts": [PRECINCT], "turf_ids": [turf_id]}}


async def check_uses(case: Case, r: httpx.Response) -> None:
    body, uses = r.json(), {"default": True, "precincts": [PRECINCT], "turf_ids": [case.memo["turf"]]}
    assert (body["id"], body["name"], body["uses"]) == (case.memo["script"], f"uses-{case.n}", uses)
    assert body["current"]["frozen"], "a script put to use is frozen"
    assert body["turfs_using"] == len(case.facts.turfs[owner(case)]) > 0


def uses_effect(case: Case, body: Any) -> Counts:
    campaign_id, doors, now = case.campaign_id, f"{owner(case)} doors", f"uses-{case.n}"
    turfs = len(case.facts.turfs[owner(case)])
    return {(f"script default {doors}", campaign_id): -1, (f"script default {now}", campaign_id): 1,
            ("script_version frozen", campaign_id): 1, ("precinct with a script", campaign_id): 1,
            ("turf with a script", campaign_id): 1, (f"turfs carrying {doors} v2", campaign_id): -turfs,
            (f"turfs carrying {now} v1", campaign_id): turfs}


async def send_uses_foreign_turf(case: Case) -> dict[str, Any]:
    return {"script_id": case.facts.scripts[owner(case)]["draft"],
            "json": {"turf_ids": [case.facts.turfs[elsewhere(case)][0].id]}}


# Walk lists: the organized world's turfs, carrying the scripts `write_scripts` made.

WALK_PERSON = {"id", "name", "age_band", "language"}  # all of a voter a walk list may show


async def check_walklist(case: Case, r: httpx.Response) -> None:
    body, slug = r.json(), owner(case)
    turf = next(t for t in case.facts.turfs[slug] if t.id == case.memo["turf"])
    assert (body["turf"]["id"], body["turf"]["name"], body["turf"]["precinct_id"], body["turf"]["doors"],
            body["full"]) == (turf.id, turf.name, PRECINCT, turf.doors, True)
    households = [h for b in body["buildings"] for h in b["households"]]
    assert len(households) == turf.doors and {h["id"] for h in households} == turf.households
    people = [p for h in households for p in h["people"]]
    assert people and all(p.keys() == WALK_PERSON for p in people), "a walk list shows more of a voter"
    script = body["script"]
    assert (script["script_id"], script["version"], script["name"], script["result_codes"]) == (
        case.facts.scripts[slug]["doors"], 2, f"{slug} doors", RESULT_CODES)


# Sync: the organized world, where every volunteer at home holds a turf (see `organize_knocks`). A batch is
# answered 200 whenever the caller may sync; each knock's outcome says whether it went in.

KNOCKED = "not_home"  # a standard result: the knocks answer no script
# A knock's expected outcome: None when it goes in, else the status and the field of its problem.
Outcome = tuple[int, str] | None


async def organize_knocks(client: httpx.AsyncClient, session: AsyncSession, world: World, facts: Facts) -> None:
    """`organize`, then assign the other host a free turf too, so every volunteer at home has one to knock."""
    await organize(client, session, world, facts)
    campaign_id = facts.ids[HOME]
    turf_id = await first_free_turf(session, campaign_id)
    await holdings.assign(session, campaign_id, turf_id, [facts.users["other_host"]], by=facts.users[MAKER[HOME]])
    await session.rollback()
    facts.organized.held[HOME]["other_host"] = turf_id


def knock_turf(case: Case, *, own: bool) -> int:
    """A turf for the case to knock on: the caller's (`own`; for callers holding none, the first nobody holds
    or reserved), or one another volunteer holds."""
    slug = owner(case)
    held = case.facts.organized.held[slug]
    if not own:
        return next(turf for holder, turf in held.items() if holder != case.who)
    if case.who in held:
        return held[case.who]
    return min(t.id for t in case.facts.turfs[slug] if t.id not in taken(case))


def door_on(facts: Facts, slug: str, turf_id: int) -> int:
    """The first door of a turf of the campaign `slug`, by id."""
    return min(next(t for t in facts.turfs[slug] if t.id == turf_id).households)


def knock_at(household_id: int, turf_id: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "household_id": household_id, "turf_id": turf_id, "result": KNOCKED,
            "knocked_at": utcnow().isoformat()}


def sync_body(case: Case, knocks: list[tuple[dict[str, Any], Outcome]]) -> dict[str, Any]:
    """A batch of the knocks, each beside the outcome it must get; both go into the case's memo for the checks."""
    batch = {"device_id": f"phone-{case.who}", "batch_id": f"batch-{case.n}", "sent_at": utcnow().isoformat(),
             "knocks": [knock for knock, _ in knocks]}
    case.memo.update(batch=batch, outcomes=knocks)
    return {"json": batch}


def knock_sender(*, own: bool) -> Send:
    """One knock at a door of a turf the caller holds (`own`) or another volunteer holds: a host or a canvasser
    may knock only their own; organizers and admins any turf of the campaign."""
    async def send(case: Case) -> dict[str, Any]:
        turf_id = knock_turf(case, own=own)
        knock = knock_at(door_on(case.facts, owner(case), turf_id), turf_id)
        return sync_body(case, [(knock, None if own or case.role in FIELD else (403, "knocks[0].turf_id"))])
    return send


async def send_foreign_knocks(case: Case) -> dict[str, Any]:
    """Knocks naming the other campaign's door on its turf, its door on a turf of the caller's own, and a door of
    the caller's on its turf. Its turf is dual's there: a member of both may not carry a turf across either."""
    slug, other = owner(case), elsewhere(case)
    mine, theirs = knock_turf(case, own=True), case.facts.organized.held[other][HOLDERS[other][0]]
    my_door, their_door = door_on(case.facts, slug, mine), door_on(case.facts, other, theirs)
    return sync_body(case, [(knock_at(their_door, theirs), (422, "knocks[0].household_id")),
                            (knock_at(their_door, mine), (422, "knocks[1].household_id")),
                            (knock_at(my_door, theirs), (422, "knocks[2].turf_id"))])


async def check_knocks(case: Case, r: httpx.Response) -> None:
    body, outcomes = r.json(), case.memo["outcomes"]
    assert (body["batch_id"], body["clock_suspect"]) == (case.memo["batch"]["batch_id"], False)
    want = [(k["id"], "accepted" if outcome is None else "rejected", outcome) for k, outcome in outcomes]
    got = [(k["id"], k["status"], k["problem"] and (k["problem"]["status"], k["problem"]["errors"][0]["field"]))
           for k in body["knocks"]]
    assert got == want
    assert all(k["problem"]["type"].startswith("/problems/") and k["problem"]["title"] and
               len(k["problem"]["errors"]) == 1 for k in body["knocks"] if k["problem"]), body["knocks"]
    accepted = sum(outcome is None for _, outcome in outcomes)
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (accepted, 0, len(outcomes) - accepted)
    # The accepted knocks are stored as the caller's, in the campaign named; the rejected ones nowhere.
    rows = (await case.session.execute(
        select(DoorKnock.id, DoorKnock.campaign_id, DoorKnock.user_id, DoorKnock.turf_id, DoorKnock.household_id,
               DoorKnock.result).where(DoorKnock.id.in_([UUID(k["id"]) for k, _ in outcomes])))).all()
    await case.session.rollback()
    assert sorted(tuple(row) for row in rows) == sorted(
        (UUID(k["id"]), case.campaign_id, case.user_id, k["turf_id"], k["household_id"], KNOCKED)
        for k, outcome in outcomes if outcome is None)


def knocked_effect(case: Case, body: Any) -> Counts:
    """Each accepted knock: its row, and one more knock on each counter sync keeps."""
    accepted = sum(outcome is None for _, outcome in case.memo["outcomes"])
    kinds = ("door_knock", f"result_tally {KNOCKED}", "turf knocks", "precinct knocks", "walk_stop knocks",
             "household knocks")
    return {(kind, case.campaign_id): accepted for kind in kinds} if accepted else {}


# Progress: the campaign's figures, not another's.

def host_without_event(who: str, campaign: str | None) -> int | None:
    """A host reads only their own events' progress, and these requests name no event."""
    return 403 if role_of(who, campaign) == Role.host else None


async def check_progress(case: Case, r: httpx.Response) -> None:
    body, campaign = r.json(), case.campaign or ""
    assert (body["doors"], body["precincts"]) == (case.facts.households[campaign], case.facts.precincts[campaign])


async def check_progress_rows(case: Case, r: httpx.Response) -> None:
    rows, campaign = r.json(), case.campaign or ""
    if r.headers["content-type"].startswith(GEOJSON):
        assert rows["type"] == "FeatureCollection"
        rows = [feature["properties"] for feature in rows["features"]]
    assert rows and all(row["doors"] >= 0 and "results" in row for row in rows)
    if "code" in rows[0]:
        assert len(rows) == case.facts.precincts[campaign]
        assert sum(row["doors"] for row in rows) == case.facts.households[campaign]
    else:
        assert sum(row["doors"] for row in rows) <= case.facts.households[campaign]


PROGRESS = "/v1/campaigns/{campaign_id}/progress"
WEBHOOKS = "/v1/campaigns/{campaign_id}/webhooks"
# A webhook no campaign has: naming it is a 404 to everyone let in.
NO_WEBHOOK = "00000000-0000-4000-8000-000000000000"


async def check_webhook_made(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert body["events"] == ["knock.accepted"] and len(body["secret"]) == 64
    row = await case.session.get(Webhook, UUID(body["id"]))
    assert row is not None and row.campaign_id == case.facts.ids[case.campaign or ""]
    await case.session.rollback()  # end the read: on SQLite its snapshot would hide the next case's writes


async def check_webhooks(case: Case, r: httpx.Response) -> None:
    rows = r.json()
    assert all("secret" not in row for row in rows)
    mine = set((await case.session.execute(select(Webhook.id).where(
        Webhook.campaign_id == case.facts.ids[case.campaign or ""]))).scalars())
    assert {UUID(row["id"]) for row in rows} <= mine
    await case.session.rollback()


async def check_feed(case: Case, r: httpx.Response) -> None:
    body, campaign = r.json(), case.campaign or ""
    assert set(body) == {"items", "next"}
    assert {k["household_id"] for k in body["items"]} <= case.facts.households_in[campaign]


async def check_feed_csv(case: Case, r: httpx.Response) -> None:
    header, *rows = r.text.splitlines()
    assert header.startswith("seq,id,turf_id,precinct,household_id")
    assert {int(row.split(",")[4]) for row in rows} <= case.facts.households_in[case.campaign or ""]
ATTRIBUTES = "/v1/campaigns/{campaign_id}/attributes"
# An attribute no campaign has: naming it is a 404 to everyone let in.
NO_ATTRIBUTE = 2_000_000_000


async def send_foreign_door(case: Case) -> dict[str, Any]:
    other = FOREIGN if case.campaign == HOME else HOME
    return {"household_id": min(case.facts.households_in[other]), "json": {"do_not_contact": True}}


async def send_attribute(case: Case) -> dict[str, Any]:
    return {"json": {"name": f"probe_{case.n}", "type": "integer", "of": "household", "canvassers_see": True}}


async def check_attribute_made(case: Case, r: httpx.Response) -> None:
    body = r.json()
    assert (body["name"], body["type"], body["of"], body["canvassers_see"]) == (
        f"probe_{case.n}", "integer", "household", True)
    row = await case.session.get(Attribute, body["id"])
    assert row is not None and row.campaign_id == case.campaign_id and row.kind == "integer"
    await case.session.rollback()


async def check_attributes(case: Case, r: httpx.Response) -> None:
    mine = set((await case.session.execute(select(Attribute.id).where(
        Attribute.campaign_id == case.campaign_id))).scalars())
    assert {a["id"] for a in r.json()} == mine
    await case.session.rollback()


TURFS = "/v1/campaigns/{campaign_id}/turfs"
CODES = "/v1/campaigns/{campaign_id}/join-codes"
EVENTS = "/v1/campaigns/{campaign_id}/events"
CHECK_INS = "/v1/campaigns/{campaign_id}/events/{event_id}/check-ins"
SCRIPTS = "/v1/campaigns/{campaign_id}/scripts"
SYNC = "/v1/campaigns/{campaign_id}/sync"

ENDPOINTS = (
    Endpoint("GET", "/v1/campaigns", check=check_my_campaigns),
    Endpoint("GET", "/v1/me", check=check_me, keys_ok=False),
    Endpoint("GET", "/v1/campaigns/{campaign_id}", EVERY_ROLE, Scope.progress_read, check=check_campaign),
    Endpoint("PATCH", "/v1/campaigns/{campaign_id}", ADMIN, send=send_campaign_update, check=check_campaign_updated,
             effect=campaign_updated_effect),
    Endpoint("POST", "/v1/campaigns/{campaign_id}/api-keys", ADMIN, ok=201, send=send_new_key, check=check_new_key,
             effect=lambda case, _: {("api_key", case.campaign_id): 1}),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/api-keys", ADMIN, check=check_key_list),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/audit", ADMIN, prepare=read_households, check=check_audit),
    Endpoint("DELETE", "/v1/campaigns/{campaign_id}/api-keys/{key_id}", ADMIN, send=send_revoke,
             check=check_revoked, effect=lambda case, _: {("api_key revoked", case.campaign_id): 1}),
    # Members: admins list and remove them (tests/auth/test_sessions.py: what a removal ends).
    Endpoint("GET", "/v1/campaigns/{campaign_id}/members", ADMIN, check=check_members),
    Endpoint("DELETE", "/v1/campaigns/{campaign_id}/members/{user_id}", ADMIN, ok=204, send=send_member_removal,
             check=check_member_removed, effect=lambda case, _: {("membership canvasser", case.campaign_id): -1},
             media_type=None),
    Endpoint("DELETE", "/v1/campaigns/{campaign_id}/members/{user_id}", ADMIN, ok=204, send=send_foreign_member,
             effect=nothing, refuse=always(404), media_type=None, variant="another campaign's member"),
    # A user changes their own password; API keys have none.
    Endpoint("POST", "/v1/me/password", send=send_password_change, check=check_password_changed, keys_ok=False),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/precincts", EVERY_ROLE, Scope.turfs_read,
             send=fixed(params={"limit": 1000}), check=check_precinct_list),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/precincts.geojson", EVERY_ROLE, Scope.turfs_read,
             check=check_precinct_geojson, media_type=GEOJSON),
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
    # Progress: organizers and keys with progress:read; a host only with one of their events (see test_progress).
    Endpoint("GET", PROGRESS, FIELD | {Role.host}, Scope.progress_read, check=check_progress,
             refuse=host_without_event),
    Endpoint("GET", PROGRESS + "/precincts", FIELD | {Role.host}, Scope.progress_read, check=check_progress_rows,
             refuse=host_without_event),
    Endpoint("GET", PROGRESS + "/precincts", FIELD | {Role.host}, Scope.progress_read,
             send=fixed(headers={"Accept": GEOJSON}), check=check_progress_rows, refuse=host_without_event,
             media_type=GEOJSON, variant="GeoJSON"),
    Endpoint("GET", PROGRESS + "/turfs", FIELD | {Role.host}, Scope.progress_read, prepare=organize,
             check=check_progress_rows, refuse=host_without_event),
    Endpoint("GET", PROGRESS + "/precincts.geojson", FIELD | {Role.host}, Scope.progress_read,
             check=check_progress_rows, refuse=host_without_event, media_type=GEOJSON),
    Endpoint("GET", PROGRESS + "/turfs.geojson", FIELD | {Role.host}, Scope.progress_read, prepare=organize,
             check=check_progress_rows, refuse=host_without_event, media_type=GEOJSON),
    # The results feed: organizers and keys with results:read.
    Endpoint("GET", "/v1/campaigns/{campaign_id}/door-knocks", FIELD, Scope.results_read, check=check_feed),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/door-knocks.csv", FIELD, Scope.results_read, check=check_feed_csv,
             media_type="text/csv"),
    # Attributes kept of the files: field staff declare and show them; keys that read people list them.
    Endpoint("GET", ATTRIBUTES, FIELD, Scope.people_read, check=check_attributes),
    Endpoint("POST", ATTRIBUTES, FIELD, ok=201,
             send=send_attribute,
             check=check_attribute_made, effect=lambda case, _: {("attribute", case.campaign_id): 1}),
    Endpoint("PATCH", ATTRIBUTES + "/{attribute_id}", FIELD, send=fixed(attribute_id=NO_ATTRIBUTE,
                                                                        json={"canvassers_see": True}),
             refuse=always(404), effect=nothing, variant="none of theirs"),
    # Do not contact: field staff mark doors and people; another campaign's door is as if it didn't exist.
    Endpoint("PUT", "/v1/campaigns/{campaign_id}/households/{household_id}/do-not-contact", FIELD,
             send=send_foreign_door, refuse=always(404), effect=nothing, variant="another campaign's"),
    Endpoint("PUT", "/v1/campaigns/{campaign_id}/people/{person_id}/do-not-contact", FIELD,
             send=fixed(person_id=NO_ATTRIBUTE, json={"do_not_contact": True}), refuse=always(404), effect=nothing,
             variant="none of theirs"),
    # Webhooks: admins, and keys with webhooks:write.
    Endpoint("POST", WEBHOOKS, ADMIN, Scope.webhooks_write, ok=201,
             # A public address (webhooks reach no other); no event is sent to it in this test.
             send=fixed(json={"url": "https://8.8.8.8/hook", "events": ["knock.accepted"]}),
             check=check_webhook_made, effect=lambda case, _: {("webhook", case.campaign_id): 1}),
    Endpoint("GET", WEBHOOKS, ADMIN, Scope.webhooks_write, check=check_webhooks),
    Endpoint("DELETE", WEBHOOKS + "/{webhook_id}", ADMIN, Scope.webhooks_write, ok=204,
             send=fixed(webhook_id=NO_WEBHOOK), refuse=always(404), media_type=None, variant="none of theirs"),
    Endpoint("GET", WEBHOOKS + "/{webhook_id}/deliveries", ADMIN, Scope.webhooks_write,
             send=fixed(webhook_id=NO_WEBHOOK), refuse=always(404), variant="none of theirs"),
    # Turfs. Every member reads them, but a canvasser only the turfs they hold, a host also their events' pools.
    Endpoint("GET", TURFS, EVERY_ROLE, Scope.turfs_read, prepare=organize, check=check_turf_list),
    Endpoint("GET", TURFS, EVERY_ROLE, Scope.turfs_read, prepare=organize, send=fixed(headers={"Accept": GEOJSON}),
             check=check_turf_geojson, media_type=GEOJSON, variant="GeoJSON"),
    Endpoint("GET", TURFS + ".geojson", EVERY_ROLE, Scope.turfs_read, prepare=organize, check=check_turf_geojson,
             media_type=GEOJSON),
    # One turf, with its households (voters' addresses): a host reads only those checked out at their event.
    Endpoint("GET", TURFS + "/{turf_id}", EVERY_ROLE, Scope.turfs_read, prepare=launch,
             send=turf_sender(own=True), check=check_turf, variant="one the caller holds or hosts"),
    Endpoint("GET", TURFS + "/{turf_id}", EVERY_ROLE, Scope.turfs_read, prepare=launch,
             send=turf_sender(own=False), check=check_turf, refuse=hidden_from(Role.host, Role.canvasser),
             variant="another volunteer's"),
    Endpoint("GET", TURFS + "/{turf_id}", EVERY_ROLE, Scope.turfs_read, prepare=launch, send=send_idle_turf,
             check=check_turf, refuse=hidden_from(Role.host, Role.canvasser), variant="an event's, not handed out"),
    # A walk list carries voters' names: members only, each reading the turfs they read above. A first read may
    # store a turf's walking order, but cut turfs have theirs: nothing changes.
    Endpoint("GET", TURFS + "/{turf_id}/walklist", EVERY_ROLE, prepare=launch_scripts, send=turf_sender(own=True),
             check=check_walklist, effect=nothing, variant="one the caller holds or hosts"),
    Endpoint("GET", TURFS + "/{turf_id}/walklist", EVERY_ROLE, prepare=launch_scripts,
             send=turf_sender(own=False), check=check_walklist, effect=nothing,
             refuse=hidden_from(Role.host, Role.canvasser), variant="another volunteer's"),
    Endpoint("GET", TURFS + "/{turf_id}/walklist", EVERY_ROLE, prepare=launch_scripts, send=send_idle_turf,
             check=check_walklist, effect=nothing, refuse=hidden_from(Role.host, Role.canvasser),
             variant="an event's, not handed out"),
    Endpoint("POST", TURFS, FIELD, ok=201, prepare=draw_turfs, send=send_draw, check=check_drawn, effect=drawn_effect),
    Endpoint("PATCH", TURFS + "/{turf_id}", FIELD, prepare=draw_turfs, send=send_rename,
             check=check_renamed, effect=renamed_effect),
    Endpoint("DELETE", TURFS + "/{turf_id}", FIELD, prepare=draw_turfs, send=send_target,
             check=check_deleted, effect=deleted_effect),
    Endpoint("POST", "/v1/campaigns/{campaign_id}/turf-cuts", FIELD, ok=202, prepare=draw_turfs, send=send_cut,
             settle=settle_cut, check=check_cut, effect=cut_effect),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/turf-cuts/{cut_id}", FIELD, Scope.turfs_read, prepare=cut_turfs,
             send=send_cut_id, check=check_cut_read),
    # Who holds what: organizers assign and take back; every member claims and releases.
    Endpoint("POST", TURFS + "/{turf_id}/assignments", FIELD, ok=201, prepare=organize,
             send=assign_sender(member=True), check=check_assigned,
             effect=lambda case, _: holding_effect(case, "assigned", 1)),
    Endpoint("POST", TURFS + "/{turf_id}/assignments", FIELD, ok=201, prepare=organize,
             send=assign_sender(member=False), effect=nothing, refuse=always(422), variant="to a non-member"),
    Endpoint("DELETE", TURFS + "/{turf_id}/assignments/{user_id}", FIELD, ok=204, prepare=organize,
             send=send_unassign, effect=lambda case, _: holding_effect(case, "unassigned", -1),
             media_type=None),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/assignments", FIELD, Scope.turfs_read, prepare=organize,
             check=check_holders),
    Endpoint("GET", "/v1/campaigns/{campaign_id}/turf-history", FIELD, prepare=organize, check=check_history),
    Endpoint("POST", TURFS + ":claim", EVERY_ROLE, ok=201, prepare=organize, send=send_claim, check=check_claimed,
             effect=lambda case, _: holding_effect(case, "claimed", 1)),
    Endpoint("POST", TURFS + ":claim", EVERY_ROLE, prepare=organize, send=send_claim_again,
             check=check_claimed_again, effect=nothing, variant="holding a claim"),
    Endpoint("POST", TURFS + "/{turf_id}/release", EVERY_ROLE, ok=204, prepare=organize, send=send_release,
             effect=lambda case, _: holding_effect(case, "released", -1), media_type=None),
    Endpoint("POST", TURFS + "/{turf_id}/release", EVERY_ROLE, ok=204, prepare=organize, send=send_release_other,
             effect=nothing, refuse=always(404), media_type=None, variant="another's turf"),
    # Join codes: organizers and hosts make them; a host only for canvassers, and sees and revokes only theirs.
    *(Endpoint("POST", CODES, HOSTS, ok=201, send=code_sender(role), check=check_code_made,
               effect=lambda case, _: {("join_code", case.campaign_id): 1}, refuse=grants(role),
               variant=f"granting {role}") for role in Role),
    Endpoint("POST", CODES, HOSTS, ok=201, prepare=organize, send=code_sender(Role.canvasser, own_event=True),
             check=check_code_made, effect=lambda case, _: {("join_code", case.campaign_id): 1},
             variant="for one's own event"),
    Endpoint("POST", CODES, HOSTS, ok=201, prepare=organize, send=code_sender(Role.canvasser, own_event=False),
             check=check_code_made, effect=lambda case, _: {("join_code", case.campaign_id): 1},
             refuse=hidden_from(Role.host), variant="for another host's event"),
    Endpoint("GET", CODES, HOSTS, prepare=organize, check=check_codes),
    Endpoint("DELETE", CODES + "/{code_id}", HOSTS, prepare=organize, send=revoke_sender(own=True),
             check=check_code_revoked, effect=lambda case, _: {("join_code revoked", case.campaign_id): 1},
             variant="one's own"),
    Endpoint("DELETE", CODES + "/{code_id}", HOSTS, prepare=organize, send=revoke_sender(own=False),
             check=check_code_revoked, effect=lambda case, _: {("join_code revoked", case.campaign_id): 1},
             refuse=hidden_from(Role.host), variant="another's"),
    # Signing up with a code: open to anyone, whatever credentials they send along.
    Endpoint("POST", "/v1/join", ok=201, public=True, prepare=organize, send=send_join, check=check_joined,
             effect=joined_effect, variant="an event's code"),
    Endpoint("POST", "/v1/join", ok=201, public=True, send=send_unknown_code, effect=joined_effect,
             refuse=always(404), variant="unknown code"),
    Endpoint("POST", "/v1/join", ok=201, public=True, prepare=kill_codes, send=send_dead_code, effect=joined_effect,
             refuse=always(410), variant="expired, revoked or used-up code"),
    Endpoint("POST", "/v1/join", ok=201, public=True, prepare=organize, send=send_wrong_password,
             effect=joined_effect, refuse=always(401), variant="an account's email, wrong password"),
    # Canvass launches: organizers and hosts run them, a host sees only theirs; members check in.
    Endpoint("POST", EVENTS, HOSTS, ok=201, prepare=organize, send=send_event, check=check_event_made,
             effect=event_effect),
    Endpoint("GET", EVENTS, HOSTS, prepare=organize, check=check_events),
    Endpoint("GET", EVENTS + "/{event_id}", HOSTS, prepare=organize, send=event_sender(own=True), check=check_event,
             variant="one's own"),
    Endpoint("GET", EVENTS + "/{event_id}", HOSTS, prepare=organize, send=event_sender(own=False),
             check=check_event, refuse=hidden_from(Role.host), variant="another host's"),
    # Changing and cancelling: the event's host, or organizers; another host's event isn't there.
    Endpoint("PATCH", EVENTS + "/{event_id}", HOSTS, prepare=organize, send=change_sender(own=True),
             check=check_event_changed, effect=lambda case, _: {("event_turf", case.campaign_id): 1},
             variant="one's own"),
    Endpoint("PATCH", EVENTS + "/{event_id}", HOSTS, prepare=organize, send=change_sender(own=False),
             check=check_event_changed, effect=lambda case, _: {("event_turf", case.campaign_id): 1},
             refuse=hidden_from(Role.host), variant="another host's"),
    Endpoint("DELETE", EVENTS + "/{event_id}", HOSTS, prepare=organize, send=cancel_sender(own=True),
             check=check_event_cancelled, effect=cancelled_effect, variant="one's own"),
    Endpoint("DELETE", EVENTS + "/{event_id}", HOSTS, prepare=organize, send=cancel_sender(own=False),
             check=check_event_cancelled, effect=cancelled_effect, refuse=hidden_from(Role.host),
             variant="another host's"),
    Endpoint("POST", CHECK_INS, EVERY_ROLE, prepare=organize, send=send_check_in,
             check=check_checked_in, effect=checked_in_effect, refuse=own_event_host, variant="oneself"),
    Endpoint("POST", CHECK_INS, EVERY_ROLE, prepare=organize, send=send_check_in_unjoined, effect=checked_in_effect,
             refuse=always(404), variant="oneself, not having joined"),
    Endpoint("POST", CHECK_INS, EVERY_ROLE, prepare=organize, send=send_check_in_other,
             check=check_checked_in, effect=checked_in_effect, refuse=hosting, variant="someone else"),
    Endpoint("POST", CHECK_INS, EVERY_ROLE, prepare=organize, send=send_pairing,
             check=check_checked_in, effect=paired_effect, refuse=hosting, variant="someone else, paired"),
    # Scripts: organizers write them; tools reading results read them. Another campaign's is never found.
    Endpoint("GET", SCRIPTS, FIELD, Scope.results_read, prepare=write_scripts, check=check_scripts),
    Endpoint("POST", SCRIPTS, FIELD, ok=201, send=send_script, check=check_script_made, effect=script_made_effect),
    Endpoint("POST", SCRIPTS, FIELD, ok=201, prepare=write_scripts, send=send_taken_name, effect=script_made_effect,
             refuse=always(409), variant="a name the campaign has"),
    Endpoint("GET", SCRIPTS + "/{script_id}", FIELD, Scope.results_read, prepare=write_scripts,
             send=script_sender("doors"), check=check_script),
    Endpoint("GET", SCRIPTS + "/{script_id}", FIELD, Scope.results_read, prepare=write_scripts,
             send=script_sender("doors", foreign=True), refuse=always(404), variant="another campaign's"),
    Endpoint("GET", SCRIPTS + "/{script_id}/versions/{version}", FIELD, Scope.results_read, prepare=write_scripts,
             send=script_sender("doors", version=1), check=check_script_version),
    Endpoint("GET", SCRIPTS + "/{script_id}/versions/{version}", FIELD, Scope.results_read, prepare=write_scripts,
             send=script_sender("doors", foreign=True, version=1), refuse=always(404), variant="another campaign's"),
    Endpoint("PUT", SCRIPTS + "/{script_id}", FIELD, prepare=write_scripts, send=edit_sender(in_use=True),
             check=check_edited, effect=edited_effect, variant="in use: a new version"),
    Endpoint("PUT", SCRIPTS + "/{script_id}", FIELD, prepare=write_scripts, send=edit_sender(in_use=False),
             check=check_edited, effect=edited_effect, variant="unused: changed in place"),
    Endpoint("PUT", SCRIPTS + "/{script_id}", FIELD, prepare=write_scripts,
             send=script_sender("draft", foreign=True, json=script_body("stolen")), effect=nothing,
             refuse=always(404), variant="another campaign's"),
    Endpoint("PUT", SCRIPTS + "/{script_id}/uses", FIELD, prepare=organize_scripts, send=send_uses, check=check_uses,
             effect=uses_effect),
    Endpoint("PUT", SCRIPTS + "/{script_id}/uses", FIELD, prepare=organize_scripts,
             send=script_sender("draft", foreign=True, json={"default": True}), effect=nothing, refuse=always(404),
             variant="another campaign's"),
    Endpoint("PUT", SCRIPTS + "/{script_id}/uses", FIELD, prepare=organize_scripts, send=send_uses_foreign_turf,
             effect=nothing, refuse=always(422), variant="another campaign's turf"),
    # Sync: every member knocks doors, no key does. A knock a caller may not make is rejected in a 200, alone:
    # a host or canvasser knocks only turfs they hold, and nobody another campaign's doors or turfs.
    Endpoint("POST", SYNC, EVERY_ROLE, prepare=organize_knocks, send=knock_sender(own=True), check=check_knocks,
             effect=knocked_effect, variant="a turf the caller holds (field staff: one nobody holds)"),
    Endpoint("POST", SYNC, EVERY_ROLE, prepare=organize_knocks, send=knock_sender(own=False), check=check_knocks,
             effect=knocked_effect, variant="a turf another volunteer holds"),
    Endpoint("POST", SYNC, EVERY_ROLE, prepare=organize_knocks, send=send_foreign_knocks, check=check_knocks,
             effect=knocked_effect, variant="another campaign's door or turf"),
)
# Open to all by design: logging in, and trading a refresh token (the credential is in the body) for new tokens
# or ending its login (tests/auth/test_sessions.py).
PUBLIC = {("POST", "/v1/auth/token"), ("POST", "/v1/auth/refresh"), ("POST", "/v1/auth/logout")}
# Endless streams: httpx's ASGI transport reads a whole body before it answers, so these are tested against real
# uvicorn processes (tests/progress/test_stream.py), here only for what their spec says.
STREAMED = {("GET", "/v1/campaigns/{campaign_id}/progress/stream"): (sorted(FIELD | {Role.host}),
                                                                     [Scope.progress_read])}


def test_every_route_is_in_the_matrix() -> None:
    """A new endpoint must join the matrix; the spec's x-roles and x-scopes must say what the matrix tests."""
    spec = create_app(Settings(jwt_secret=SECRET, _env_file=None)).openapi()
    routes = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert routes - PUBLIC - set(STREAMED) == {(e.method, e.route) for e in ENDPOINTS}
    for (method, route), wanted in STREAMED.items():
        op = spec["paths"][route][method.lower()]
        assert [op.get("x-roles"), op.get("x-scopes")] == list(wanted)
    for e in ENDPOINTS:
        op = spec["paths"][e.route][e.method.lower()]
        documented = (op.get("x-roles"), op.get("x-scopes"))
        wanted = (sorted(e.roles), [e.scope] if e.scope else []) if e.in_campaign else (None, None)
        assert documented == wanted, f"{e}: the spec says who may call it differently"
        assert ("security" not in op) == e.public, f"{e}: the spec says whether it needs credentials differently"


def assert_problem(r: httpx.Response, status: int) -> None:
    assert r.headers["content-type"].split(";")[0] == PROBLEM, r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["type"].startswith("/problems/") and body["title"], body
    if status == 401:
        assert r.headers.get("www-authenticate") == "Bearer"


async def run_case(endpoint: Endpoint, case: Case) -> dict[str, Any] | None:
    """Send one request and check it; returns a refusal's body, for comparing the 404s."""
    extra = await endpoint.send(case) if endpoint.send else {}
    path_params = {k: extra.pop(k) for k in list(extra) if f"{{{k}}}" in endpoint.route}
    url = endpoint.route.format(campaign_id=case.campaign, **path_params)
    before: Counts = {}
    if endpoint.effect:
        before = case.before if case.before is not None else await count_rows(case.session)
    sent_headers = headers(case) | extra.pop("headers", {})
    r = await case.client.request(endpoint.method, url, headers=sent_headers, **extra)
    want = endpoint.expected(case.who, case.campaign)
    wrong = [] if r.status_code == want else [f"status {r.status_code}, expected {want}: {r.text[:200]}"]
    if endpoint.settle and r.status_code == want == endpoint.ok:
        await endpoint.settle(case, r)
    if endpoint.effect:
        case.after = await count_rows(case.session)
        done = changes(before, case.after)
        # A request that failed, as it should or not, must have changed nothing.
        succeeded = r.status_code == want == endpoint.ok
        wanted = endpoint.effect(case, r.json() if r.content else None) if succeeded else {}
        if done != wanted:
            wrong.append(f"rows changed by (table, campaign id): {done}, expected {wanted}")
    if wrong:
        raise AssertionError("; ".join(wrong))
    if want != endpoint.ok:
        assert_problem(r, want)
        return r.json()
    if endpoint.media_type is None:
        assert r.content == b"", r.text
    else:
        assert r.headers["content-type"].split(";")[0] == endpoint.media_type
    if endpoint.check:
        await endpoint.check(case, r)
    return None


@pytest.fixture(scope="session")
def prepared() -> dict[Any, tuple[str, Facts]]:
    """Per backend, each `prepare` run once: a database it left behind, to copy, and the facts it found."""
    return {}


async def prepared_world(endpoint: Endpoint, databases: Databases, world_template: tuple[str, World],
                         prepared: dict[Any, tuple[str, Facts]]) -> tuple[str, Facts]:
    """A database as the endpoint's `prepare` leaves the world, and its facts.

    Cutting and handing out turfs takes seconds and most endpoints share a `prepare`: each runs once a backend,
    into a database every endpoint that needs it uses (in a transaction rolled back) or copies."""
    world, key = world_template[1], (databases.backend, endpoint.prepare)
    if key not in prepared:
        url = await databases.create(template=world_template[0])
        async with app_client(url, rate_per_account="1000/minute") as client, db_session(url) as session:
            facts = await read_facts(session, world)
            if endpoint.prepare:
                await endpoint.prepare(client, session, world, facts)
                await read_turfs(session, facts)
        prepared[key] = (url, facts)
    return prepared[key]


# On the other backend's worker, but for SQLite's endpoints with nothing to prepare: so the two workers, each with
# its own backend's tests, finish together (measured: without them there, the PostgreSQL worker ran 40 s longer).
@pytest.mark.parametrize("endpoint", [pytest.param(e, marks=pytest.mark.access_matrix(
    stays_on=() if e.prepare else ("sqlite",))) for e in ENDPOINTS], ids=str)
async def test_access(endpoint: Endpoint, databases: Databases, world_template: tuple[str, World],
                      prepared: dict[Any, tuple[str, Facts]]) -> None:
    world_url, world_facts = await prepared_world(endpoint, databases, world_template, prepared)
    facts = copy.deepcopy(world_facts)
    if endpoint.settle is None:
        async with (rolled_back(world_url) as url, app_client(url, rate_per_account="1000/minute") as client,
                    db_session(url) as session):
            await check_endpoint(endpoint, client, session, world_template[1], facts)
        return
    # Work left running in the background needs connections of its own, so a database of its own.
    url = await databases.create(template=world_url)
    try:
        async with app_client(url, rate_per_account="1000/minute") as client, db_session(url) as session:
            await check_endpoint(endpoint, client, session, world_template[1], facts)
    finally:
        watcher = _WATCHERS.pop(make_url(url).database or "", None)
        if watcher is not None:
            watcher.close()
        await databases.drop(url)


async def check_endpoint(endpoint: Endpoint, client: httpx.AsyncClient, session: AsyncSession, world: World,
                         facts: Facts) -> None:
    # Allowed writes go last, so every refusal is checked against the world as built.
    cases = [(who, campaign) for campaign in (CAMPAIGNS if endpoint.in_campaign else (None,)) for who in CALLERS]
    cases.sort(key=lambda c: endpoint.expected(*c) == endpoint.ok)
    failures: list[str] = []
    not_found: dict[str, dict[str, Any]] = {}
    counted = None  # the rows as the last case left them: the next case's before, unless its `send` writes
    for n, (who, campaign) in enumerate(cases):
        case = Case(client, session, world, facts, who, campaign, n, before=counted)
        try:
            refusal = await run_case(endpoint, case)
        except AssertionError as exc:
            failures.append(f"as {who} in {campaign or '-'}: {exc}")
            counted = None
            continue
        counted = case.after
        if refusal and refusal["status"] == 404 and campaign and endpoint.admitted(CALLERS[who], campaign) == 404:
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


def naming(ids: dict[str, Any], member: UUID) -> list[tuple[str, str, dict[str, Any], str]]:
    """Requests naming `ids` (a turf, its holder, a cut, an event, a join code, a script): (method, path,
    arguments, the kind of id whose number the answer may quote). `member` is a member of the caller's own
    campaign."""
    turf, holder, event, script = ids["turf"], ids["holder"], ids["event"], ids["script"]
    expires = (utcnow() + DAY).isoformat()
    return [
        ("GET", f"turfs/{turf}", {}, "turf"),
        ("GET", f"turfs/{turf}/walklist", {}, "turf"),
        ("PATCH", f"turfs/{turf}", {"json": {"name": "stolen"}}, "turf"),
        ("DELETE", f"turfs/{turf}", {}, "turf"),
        ("GET", f"turf-cuts/{ids['cut']}", {}, "cut"),
        ("POST", f"turfs/{turf}/assignments", {"json": {"user_ids": [str(member)]}}, "turf"),
        ("DELETE", f"turfs/{turf}/assignments/{holder}", {}, "turf"),
        ("POST", f"turfs/{turf}/release", {}, "turf"),
        ("GET", f"events/{event}", {}, "event"),
        ("PATCH", f"events/{event}", {"json": {"title": "stolen", "turfs": 1}}, "event"),
        ("DELETE", f"events/{event}", {}, "event"),
        ("POST", f"events/{event}/check-ins", {"json": {}}, "event"),
        ("POST", f"events/{event}/check-ins", {"json": {"user_id": str(holder)}}, "event"),
        ("POST", "join-codes", {"json": {"role": "canvasser", "expires_at": expires, "event_id": event}}, "event"),
        ("DELETE", f"join-codes/{ids['code']}", {}, "code"),
        ("GET", f"scripts/{script}", {}, "script"),
        # Version 2, not 1: the answer quotes the version beside the script id, which may be 1.
        ("GET", f"scripts/{script}/versions/2", {}, "script"),
        ("PUT", f"scripts/{script}", {"json": script_body("stolen")}, "script"),
        ("PUT", f"scripts/{script}/uses", {"json": {"default": True}}, "script"),
    ]


@pytest.mark.own_database  # the turfs it names are cut by a background job
async def test_an_id_of_another_campaign_is_not_found(client: httpx.AsyncClient, session: AsyncSession,
                                                      world: World) -> None:
    """Naming another campaign's turf, cut, event, join code or script in one's own campaign gets the 404 of an
    id that doesn't exist, even as an admin, never a 403 or the thing itself; and nothing changes. The ids named
    are dual's turf and their event abroad, so even what the caller holds or joined elsewhere isn't there."""
    facts = await read_facts(session, world)
    await organize_scripts(client, session, world, facts)
    await cut_turfs(client, session, world, facts)
    await read_turfs(session, facts)
    org = facts.organized
    home_event = next(e for e in org.events[HOME] if e.host == EVENT_HOST[HOME])
    await members.join(session, code=home_event.code, name="Dual", email=world.emails["dual"], password=PASSWORD,
                       secret=SECRET, minutes=10)
    await session.rollback()
    theirs = {slug: {"turf": org.held[slug]["dual"], "holder": facts.users["dual"], "cut": facts.cuts[slug][0],
                     "event": next(e.id for e in org.events[slug] if e.host == EVENT_HOST[slug]),
                     "code": org.codes[slug][0][0], "script": facts.scripts[slug]["doors"]} for slug in (HOME, FOREIGN)}
    missing = {"turf": 1 + max(t.id for turfs in facts.turfs.values() for t in turfs),
               "cut": 1 + max(c for cuts in facts.cuts.values() for c in cuts),
               "event": 1 + max(e.id for events in org.events.values() for e in events),
               "code": 1 + max(c for codes in org.codes.values() for c, _ in codes), "holder": facts.users["dual"],
               "script": 1 + max(s for scripts in facts.scripts.values() for s in scripts.values())}
    before = await count_rows(session)
    callers = (("admin", HOME, FOREIGN), ("organizer", HOME, FOREIGN), ("key_all", HOME, FOREIGN),
               ("foreign_admin", FOREIGN, HOME), ("dual", FOREIGN, HOME))
    member = {HOME: facts.users["canvasser"], FOREIGN: facts.users["foreign_organizer"]}
    failures = []
    for who, campaign, other in callers:
        for (method, path, extra, kind), (_, missing_path, missing_extra, _) in zip(
                naming(theirs[other], member[campaign]), naming(missing, member[campaign]), strict=True):
            if who.startswith("key") and not (method == "GET" and path.startswith(("turf", "scripts"))
                                               and not path.endswith("walklist")):
                continue  # keys may only read turfs, cuts and scripts: the matrix shows their 403
            bodies = []
            for named, url, arguments in ((theirs[other][kind], path, extra), (missing[kind], missing_path,
                                                                              missing_extra)):
                r = await client.request(method, f"/v1/campaigns/{campaign}/{url}", headers=world.headers(who),
                                         **arguments)
                if r.status_code != 404:
                    failures.append(f"{who} {method} {url} ({other if named != missing[kind] else 'nobody'}'s) "
                                    f"in {campaign}: {r.status_code} {r.text[:200]}")
                    break
                assert_problem(r, 404)
                bodies.append({k: re.sub(rf"\b{named}\b", "<id>", v) if isinstance(v, str) else v
                               for k, v in r.json().items() if k != "instance"})
            else:
                if bodies[0] != bodies[1]:
                    failures.append(f"{who} {method} {path}: another campaign's id answers {bodies[0]}, "
                                    f"a missing one {bodies[1]}")
    assert not failures, "\n".join(failures)
    assert changes(before, await count_rows(session)) == {}


# Conditional reads: the callers a read is tried as, the first it lets in. A webhook's deliveries are read of one
# the admin makes, as the matrix names only a webhook nobody has.
READERS = ("admin", "organizer", "host", "canvasser", "key_all")
DELIVERIES = WEBHOOKS + "/{webhook_id}/deliveries"


async def read_again(client: httpx.AsyncClient, url: str, sent: dict[str, str], extra: dict[str, Any]) -> list[str]:
    """Read `url`, then again sending its ETag back: what is wrong with the ETag or the 304."""
    first = await client.get(url, headers=sent, **extra)
    if first.status_code != 200 or "etag" not in first.headers:
        return [f"{first.status_code} with ETag {first.headers.get('etag')!r}: {first.text[:200]}"]
    again = await client.get(url, headers={**sent, "If-None-Match": first.headers["etag"]}, **extra)
    wrong = [] if (again.status_code, again.content) == (304, b"") else [
        f"If-None-Match got {again.status_code} and {len(again.content)} bytes"]
    for name in ("etag", "vary", "cache-control", "x-content-type-options", "content-security-policy"):
        if again.headers.get(name) != first.headers.get(name):
            wrong.append(f"the 304's {name} is {again.headers.get(name)!r}, the 200's {first.headers.get(name)!r}")
    # A caller's own answer; an export of voter names and notes is kept nowhere but the file the caller saves.
    kept = "private, no-store" if url.endswith(".csv") else "private, no-cache"
    if again.headers.get("cache-control") != kept:
        wrong.append(f"Cache-Control {again.headers.get('cache-control')!r}, not {kept!r}")
    return wrong


@pytest.mark.access_matrix
async def test_every_read_has_an_etag_and_answers_its_304(databases: Databases, world_template: tuple[str, World],
                                                          prepared: dict[Any, tuple[str, Facts]]) -> None:
    """Every GET of the contract but the live stream, read as a caller it lets in, in the world the matrix prepares
    for it: an ETag, and `If-None-Match` naming it gets a 304 with no body and the 200's ETag, Vary, Cache-Control
    and security headers. A list's ETag moves when the list does, and the old one gets the list again."""
    spec = create_app(Settings(jwt_secret=SECRET, _env_file=None)).openapi()
    gets = {path for path, ops in spec["paths"].items() if "get" in ops} - {route for _, route in STREAMED}
    reads: dict[Any, list[tuple[Endpoint, str]]] = {}
    for e in ENDPOINTS:
        who = next((w for w in READERS if e.expected(w, HOME if e.in_campaign else None) == e.ok), None)
        if e.method == "GET" and who is not None:
            reads.setdefault(e.prepare, []).append((e, who))
    assert {e.route for group in reads.values() for e, _ in group} | {DELIVERIES} == gets
    world, failures = world_template[1], []
    for group in reads.values():
        world_url, facts = await prepared_world(group[0][0], databases, world_template, prepared)
        async with (rolled_back(world_url) as url, app_client(url, rate_per_account="1000/minute") as client,
                    db_session(url) as session):
            for n, (endpoint, who) in enumerate(group):
                case = Case(client, session, world, copy.deepcopy(facts), who, HOME if endpoint.in_campaign else None,
                            n)
                extra = await endpoint.send(case) if endpoint.send else {}
                named = {k: extra.pop(k) for k in list(extra) if f"{{{k}}}" in endpoint.route}
                sent = headers(case) | extra.pop("headers", {})
                path = endpoint.route.format(campaign_id=case.campaign, **named)
                failures += [f"{endpoint} as {who}: {wrong}" for wrong in await read_again(client, path, sent, extra)]
            if group[0][0].prepare is None:
                admin = world.headers("admin")
                hook = await client.post(f"/v1/campaigns/{HOME}/webhooks", headers=admin,
                                         json={"url": "https://8.8.8.8/hook", "events": ["knock.accepted"]})
                assert hook.status_code == 201, hook.text
                failures += [f"GET {DELIVERIES}: {wrong}" for wrong in await read_again(
                    client, f"/v1/campaigns/{HOME}/webhooks/{hook.json()['id']}/deliveries", admin, {})]

                keys = f"/v1/campaigns/{HOME}/api-keys"
                before = await client.get(keys, headers=admin)
                made = await client.post(keys, json={"name": "etag probe", "scopes": ["turfs:read"]}, headers=admin)
                assert made.status_code == 201, made.text
                after = await client.get(keys, headers={**admin, "If-None-Match": before.headers.get("etag", "")})
                if after.status_code != 200 or after.headers.get("etag") in (None, before.headers.get("etag")):
                    failures.append(f"GET {keys} after a change: {after.status_code}, {after.headers.get('etag')}")
                assert sorted(k["name"] for k in after.json()) == sorted([*(k["name"] for k in before.json()),
                                                                          "etag probe"])
    assert not failures, "\n".join(failures)
