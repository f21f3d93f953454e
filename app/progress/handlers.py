"""Progress follows every change: the campaign's change counter (progress ETags are made of it) moves on once
in each transaction that changed the campaign, and every server process's streams hear of it after the commit."""

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.events import CampaignChanged, after_commit, on, scratch
from app.progress import live


@on(CampaignChanged)
async def note_change(session: AsyncSession, event: CampaignChanged) -> None:
    # One step a transaction, however many events it publishes.
    noted = scratch(session).setdefault("noted", set())
    if event.campaign_id in noted:
        return
    noted.add(event.campaign_id)
    await live.changed(session, event.campaign_id)


@after_commit(CampaignChanged)
def announce(session: Session, event: CampaignChanged) -> None:
    live.committed(session, event.campaign_id)
