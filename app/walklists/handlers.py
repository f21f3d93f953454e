"""Walk lists follow the doors: a change to a turf's doors, its streets or its people moves its stored walking
order and version on, in the transaction of the change, so no phone downloads a stale list."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.events import HouseholdsChanged, StreetsImported, TurfsCut, TurfShapeChanged, on
from app.walklists.service import refresh_campaign_walks, refresh_walks, store_walks, touch_households


@on(HouseholdsChanged)
async def doors_changed(session: AsyncSession, event: HouseholdsChanged) -> None:
    await refresh_walks(session, event.campaign_id, event.turf_ids)
    await touch_households(session, event.household_ids)


@on(StreetsImported)
async def streets_imported(session: AsyncSession, event: StreetsImported) -> None:
    await refresh_campaign_walks(session, event.campaign_id)


@on(TurfShapeChanged)
async def turfs_reshaped(session: AsyncSession, event: TurfShapeChanged) -> None:
    await refresh_walks(session, event.campaign_id, event.turf_ids)


@on(TurfsCut)
async def turfs_cut(session: AsyncSession, event: TurfsCut) -> None:
    await store_walks(session, event.walks, new=True)
