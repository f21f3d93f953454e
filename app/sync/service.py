"""Sync: store door knocks from phones exactly once, whatever the network and the phone's clock did, and keep
the counters progress reads in the same transaction.

A batch is one transaction. Each knock is checked on its own (app/sync/checks.py); its id is its identity, so a
resent knock is a duplicate and changes nothing. The storage (app/sync/store.py) writes the knocks and moves the
counters (app/sync/counters.py) on; what else follows stored knocks (webhooks, the change counter) hears of them
through `KnocksAccepted`.
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import contact
from app.attributes import service as attributes
from app.auth.service import Access
from app.campaigns.roles import Role
from app.db import begin_write, utcnow
from app.events import CountersRebuilt, KnocksAccepted, publish
from app.sync import checks, counters
from app.sync.checks import SUSPECT_OFFSET, outcome, repeat
from app.sync.schemas import SyncEnvelope
from app.sync.store import knock_rows, store_for
from app.values import sane_time


async def sync_batch(session: AsyncSession, access: Access, batch: SyncEnvelope) -> dict[str, Any]:
    """Store a batch of knocks in one transaction; the outcome of each, in the order sent (a SyncResult).

    Built for throughput (phones sync all evening): a handful of round trips a batch, whatever its size.
    """
    await begin_write(session)
    campaign_id = access.campaign_id
    store = await store_for(session)
    await store.lock(session, campaign_id)
    received_at = utcnow()
    # Aware times subtract without converting to UTC, so even year 1 or 9999 makes an offset, not an overflow.
    offset = received_at - batch.sent_at
    suspect = abs(offset) >= SUSPECT_OFFSET or not sane_time(batch.sent_at)
    user_id = access.caller.user_id
    assert user_id is not None
    staff = access.role in (Role.admin, Role.organizer)

    outcomes, items = checks.parse(batch.knocks, offset, received_at, suspect)
    state = await store.load(session, campaign_id, user_id, staff, items)
    fresh: list[checks.Item] = []
    for item in items:
        problem = checks.check(item, state, staff)
        if problem is not None:
            outcomes[item.index] = outcome(str(item.knock.id), "rejected", problem)
        else:
            fresh.append(item)
    shared, rows = knock_rows(campaign_id, user_id, batch.device_id, batch.batch_id, offset.total_seconds(),
                              received_at, fresh)
    inserted = await store.store(session, shared, rows, fresh, state)
    # Ids stored before (a resend), or by another sync meanwhile: identical is a duplicate, else a conflict.
    stored = await store.stored_digests(session, [i.knock.id for i in fresh if i.knock.id not in inserted])
    for item in fresh:
        if item.knock.id in stored:
            outcomes[item.index] = repeat(item, stored[item.knock.id])
    accepted = [i for i in fresh if i.knock.id in inserted]
    people, doors = checks.contact_marks(accepted)
    if people or doors:
        await contact.from_results(session, campaign_id, people=people, doors=doors)
    if tagged := checks.answer_tags(accepted, state):
        await attributes.tag_people(session, campaign_id, tagged, source="answer")
    if accepted:
        await publish(session, KnocksAccepted(campaign_id, campaign_slug=access.campaign.slug,
                                              knocks=checks.accepted_payloads(accepted),
                                              first_doors=checks.first_doors(accepted, state)))
    await session.commit()
    counts = {s: sum(1 for o in outcomes if o["status"] == s) for s in ("accepted", "duplicate", "rejected")}
    return {"batch_id": batch.batch_id, "received_at": received_at, "clock_offset_s": offset.total_seconds(),
            "clock_suspect": suspect, **counts, "knocks": outcomes}


async def rebuild_progress(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Recompute every counter of the campaign from its knocks, in one transaction; what it counted."""
    await begin_write(session)
    await (await store_for(session)).lock(session, campaign_id)
    counted = await counters.rebuild(session, campaign_id)
    await publish(session, CountersRebuilt(campaign_id))
    await session.commit()
    return counted
