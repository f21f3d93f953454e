"""What sync tests share: a canvasser holding a turf, knocks as a phone makes them, batches as it sends them."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.addresses.models import Household
from app.precincts.models import Precinct
from app.sync.models import DoorKnock, ResultTally
from app.turfs.models import Turf
from app.walklists.models import WalkStop

HOME = "/v1/campaigns/cambridge"


def now() -> datetime:
    return datetime.now(UTC)


async def hold(client, world, who: str = "canvasser", index: int = 0) -> dict:
    """Give `who` a turf of several buildings (the index-th) and return its walk list."""
    turfs = (await client.get(f"{HOME}/turfs", params={"limit": 1000}, headers=world.headers("organizer"))).json()
    turf = [t for t in turfs["items"] if t["buildings"] >= 4][index]
    r = await client.post(f"{HOME}/turfs/{turf['id']}/assignments", json={"user_ids": [str(world.users[who])]},
                          headers=world.headers("organizer"))
    assert r.status_code == 201, r.text
    return (await client.get(f"{HOME}/turfs/{turf['id']}/walklist", headers=world.headers(who))).json()


def doors(walk: dict) -> list[dict]:
    return [h for b in walk["buildings"] for h in b["households"]]


def knock(walk: dict, door: int, result: str = "not_home", *, at: datetime | None = None, **extra: Any) -> dict:
    """A knock at the door-th door of a walk list, made `at` by the phone's clock (now if not given)."""
    household = doors(walk)[door]
    body = {"id": str(uuid.uuid4()), "household_id": household["id"], "turf_id": walk["turf"]["id"],
            "result": result, "knocked_at": (at or now()).isoformat()}
    return {**body, **extra}


def batch(knocks: list[dict], *, sent_at: datetime | None = None, device: str = "phone-1") -> dict:
    return {"device_id": device, "batch_id": str(uuid.uuid4()), "sent_at": (sent_at or now()).isoformat(),
            "knocks": knocks}


async def send(client, world, body: dict, who: str = "canvasser"):
    return await client.post(f"{HOME}/sync", json=body, headers=world.headers(who))


async def counters(session) -> dict[str, Any]:
    """Every counter sync keeps, to compare incremental with rebuilt."""
    await session.rollback()
    return {
        "households": sorted(tuple(r) for r in (await session.execute(
            select(Household.id, Household.knocks, Household.first_knock_at, Household.contacted_at,
                   Household.last_result, Household.last_result_at).where(Household.knocks > 0))).all()),
        "stops": sorted(tuple(r) for r in (await session.execute(
            select(WalkStop.turf_id, WalkStop.household_id, WalkStop.knocks, WalkStop.contacted)
            .where(WalkStop.knocks > 0))).all()),
        "turfs": sorted(tuple(r) for r in (await session.execute(
            select(Turf.id, Turf.knocks, Turf.doors_attempted, Turf.doors_contacted, Turf.last_knock_at)
            .where(Turf.knocks > 0))).all()),
        "precincts": sorted(tuple(r) for r in (await session.execute(
            select(Precinct.id, Precinct.knocks, Precinct.doors_attempted, Precinct.doors_contacted,
                   Precinct.last_knock_at).where(Precinct.knocks > 0))).all()),
        "tallies": sorted(tuple(r) for r in (await session.execute(
            select(ResultTally.turf_id, ResultTally.precinct_id, ResultTally.result, ResultTally.knocks)
            .where(ResultTally.knocks > 0))).all()),
    }


async def stored(session) -> dict[str, Any]:
    await session.rollback()
    return {str(r.id): r for r in (await session.execute(select(DoorKnock))).scalars()}


async def knock_count(session) -> int:
    await session.rollback()
    return await session.scalar(select(func.count()).select_from(DoorKnock)) or 0


def later(hours: float = 0, minutes: float = 0) -> datetime:
    return now() + timedelta(hours=hours, minutes=minutes)
