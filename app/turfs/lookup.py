"""Finding a turf the way a person names it: by its id or by its name."""

from typing import NamedTuple

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign
from app.errors import NotFound
from app.turfs.models import Turf
from app.values import MAX_ID


class TurfRef(NamedTuple):
    id: int
    name: str


async def find_active_turf(session: AsyncSession, campaign: Campaign, ref: str) -> TurfRef:
    """An active turf of the campaign whose id or name is `ref`. Raises NotFound."""
    # ASCII digits only ("²" is a digit to str.isdigit, not to int), and no id past the column's range.
    by_id = Turf.id == int(ref) if ref.isascii() and ref.isdigit() and int(ref) <= MAX_ID else False
    found = (await session.execute(select(Turf.id, Turf.name).where(
        Turf.campaign_id == campaign.id, Turf.status == "active", or_(Turf.name == ref, by_id)))).first()
    if found is None:
        raise NotFound(f"no active turf {ref!r} in {campaign.slug}")
    return TurfRef(*found)
