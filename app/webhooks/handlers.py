"""The webhook outbox follows the changes receivers subscribe to: deliveries are written in the transaction of
the change (so a rolled-back change sends nothing), and the worker in app/webhooks/service.py sends them."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.events import KnocksAccepted, TurfHoldingsChanged, on
from app.organizing.models import ASSIGNED
from app.turfs.models import Turf
from app.webhooks.service import enqueue, subscribed


@on(KnocksAccepted)
async def knocks_accepted(session: AsyncSession, event: KnocksAccepted) -> None:
    """One `knock.accepted` with the batch's knocks (no names), and a `turf.completed` for each turf whose last
    unknocked door the batch reached."""
    hooks = await subscribed(session, event.campaign_id)
    if hooks.get("knock.accepted") and event.knocks:
        await enqueue(session, hooks["knock.accepted"], "knock.accepted",
                      [{"campaign": event.campaign_slug, "knocks": list(event.knocks)}])
    if hooks.get("turf.completed") and event.first_doors:
        # The turf was complete before if its count of attempted doors, less this batch's first knocks, already
        # reached its doors.
        turfs = (await session.execute(select(Turf.id, Turf.name, Turf.doors, Turf.doors_attempted)
                                       .where(Turf.id.in_(list(event.first_doors))))).all()
        done = [t for t in turfs if t.doors and t.doors_attempted >= t.doors > t.doors_attempted
                - event.first_doors[t.id]]
        await enqueue(session, hooks["turf.completed"], "turf.completed", [
            {"campaign": event.campaign_slug, "turf": {"id": t.id, "name": t.name, "doors": t.doors}}
            for t in done])


@on(TurfHoldingsChanged)
async def turfs_assigned(session: AsyncSession, event: TurfHoldingsChanged) -> None:
    taken = [c for c in event.changes if c["action"] in ASSIGNED]
    if taken and (hooks := (await subscribed(session, event.campaign_id)).get("turf.assigned")):
        await enqueue(session, hooks, "turf.assigned", [
            {"turf_id": c["turf_id"], "user_id": str(c["user_id"]), "action": c["action"],
             "event_id": c.get("event_id")} for c in taken])
