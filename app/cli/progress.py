"""`doorstep progress`: the door-knock counters sync keeps."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from app.cli.common import CampaignOpt, JsonOpt, get_campaign, group, out, run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

progress_cli = group("Door-knock progress: the counters sync keeps.")


@progress_cli.command("rebuild")
def progress_rebuild(campaign: CampaignOpt, as_json: JsonOpt = False) -> None:
    """Recompute a campaign's progress counters from its knocks.

    Every counter, from the stored knocks, in one transaction.
    """
    from app.sync import service as sync_service

    async def go(session: AsyncSession) -> dict[str, int]:
        c = await get_campaign(session, campaign)
        return await sync_service.rebuild_progress(session, c.id or 0)

    counted = run(go)
    if as_json:
        out.print_json(json.dumps(counted))
    else:
        out.print(f"Rebuilt the counters of {campaign} from {counted['knocks']} knocks: "
                  f"{counted['doors_attempted']} doors attempted.", highlight=False)
