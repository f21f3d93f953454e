"""What assignments, claims and canvass launches share: which turfs are free to hand out, which is nearest, and
how a change of hands is written.

Every change of who holds a turf writes `turf_history` (append-only), keeps `turf.holders`, and is published as
TurfHoldingsChanged (the change counter and the turf.assigned webhooks follow it).
"""

import math
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import Conflict, NotFound
from app.events import TurfHoldingsChanged, publish
from app.organizing.models import Event, EventTurf, TurfHistory
from app.turfs.models import Turf

# A turf's status while it is in use (app.turfs.service's ACTIVE).
ACTIVE = "active"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed on phones


def new_code() -> str:
    """A fresh join code's text."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))


async def record(session: AsyncSession, campaign_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """Write these changes of hands (`turf_id`, `user_id`, `action`, and `by_user_id`, `event_id` where known) to
    the turf history, and publish them."""
    if rows:
        at = utcnow()
        await session.execute(insert(TurfHistory), [{"campaign_id": campaign_id, "at": at, **r} for r in rows])
        await publish(session, TurfHoldingsChanged(campaign_id, changes=tuple(rows)))


async def holders_changed(session: AsyncSession, deltas: dict[int, int]) -> None:
    """Add each turf's change of holders to its stored count.

    An increment, not a recount: concurrent changes to one turf queue on its row lock and add up, where a
    recount could miss a holding another transaction hasn't committed yet.
    """
    for turf_id, delta in sorted(deltas.items()):
        if delta:
            await session.execute(update(Turf).where(Turf.id == turf_id).values(holders=Turf.holders + delta)
                                  .execution_options(synchronize_session=False))


def events_on(now: datetime) -> tuple[Any, ...]:
    """The events still on: not over, not cancelled. Everything that reads a pool goes by it."""
    return Event.ends_at > now, Event.cancelled_at.is_(None)


def reserved_now(now: datetime) -> Any:
    """Turfs a running or coming event holds in its pool, not yet checked out."""
    return (select(EventTurf.turf_id).join(Event, Event.id == EventTurf.event_id)
            .where(*events_on(now), EventTurf.checked_out_at.is_(None)))


def distance(lon: float, lat: float) -> Any:
    """How far a turf is from a point, to order turfs nearest first: the squared distance of its bounding box's
    centre, in degrees scaled to equal metres."""
    scale = math.cos(math.radians(lat))
    dx = ((Turf.min_lon + Turf.max_lon) / 2 - lon) * scale
    dy = (Turf.min_lat + Turf.max_lat) / 2 - lat
    return dx * dx + dy * dy


async def active_turf(session: AsyncSession, campaign_id: int, turf_id: int) -> None:
    """Check the campaign has this turf, active. Raises NotFound, Conflict."""
    status = await session.scalar(select(Turf.status).where(Turf.campaign_id == campaign_id, Turf.id == turf_id))
    if status is None:
        raise NotFound(f"No turf {turf_id} in this campaign.")
    if status != ACTIVE:
        raise Conflict(f"Turf {turf_id} is archived.")
