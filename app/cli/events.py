"""`doorstep events`: canvass launches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.cli.common import CampaignOpt, get_campaign, group, out, run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

event_cli = group("Canvass launches.")


@event_cli.command("list")
def events_list(campaign: CampaignOpt) -> None:
    """List a campaign's canvass launches.

    When and where, the host, and the turfs out of the pool.
    """
    from rich.table import Table

    from app.organizing.listing import EventSummary, list_event_summaries

    async def go(session: AsyncSession) -> list[EventSummary]:
        c = await get_campaign(session, campaign)
        return await list_event_summaries(session, c.id or 0)

    table = Table(title=f"Events of {campaign}")
    for column in ("id", "title", "starts", "ends", "host", "attendees", "turfs out"):
        table.add_column(column)
    for event in run(go):
        table.add_row(str(event.id), event.title, f"{event.starts_at:%Y-%m-%d %H:%M}", f"{event.ends_at:%H:%M}",
                      event.host_email or "?", str(event.attendees), f"{event.turfs_out}/{event.turfs}")
    out.print(table)
