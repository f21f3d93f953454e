"""`doorstep turfs`: cutting precincts into turfs, and giving a turf to a member."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import CampaignOpt, JsonOpt, err, get_campaign, group, out, progress_bar, run
from app.errors import NotFound

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

turf_cli = group("Turfs.")


@turf_cli.command("cut")
def turfs_cut(campaign: CampaignOpt, target: Annotated[int, typer.Option(metavar="DOORS", help="Doors a turf.")] = 50,
              precinct: Annotated[list[str] | None, typer.Option(metavar="CODE", help=(
                  "A precinct id; repeat for several. All precincts when absent."))] = None,
              as_json: JsonOpt = False) -> None:
    """Cut precincts into turfs of about DOORS doors.

    Held, worked and drawn turfs stay as they are.
    """
    from app.turfs import cutting as cut_service

    async def go(session: AsyncSession, progress: Callable[[str, int, int], None]) -> dict[str, Any]:
        c = await get_campaign(session, campaign)
        assert c.id is not None
        job = await cut_service.start_cut(session, c.id, codes=precinct, target=target, created_by="cli")
        assert job.id is not None

        async def step(code: str, done: int, total: int) -> None:
            progress("precincts", done, total)
        return await cut_service.cut_turfs(session, c.id, codes=precinct, target=target, cut_id=job.id, step=step)

    with progress_bar(enabled=err.is_terminal) as progress:
        report = run(lambda s: go(s, progress))
    if as_json:
        out.print_json(json.dumps(report))
        return
    show_quality(report)


def show_quality(report: dict[str, Any]) -> None:
    """The cut's quality as a table: overall, then each precinct."""
    from rich.table import Table

    table = Table(title=f"Turf cut, target {report['target_doors']} doors "
                        f"({report['turfs_replaced']} turfs replaced, {report['turfs_kept']} kept)")
    columns = {"turfs": "turfs", "doors_min": "min", "doors_median": "median", "doors_max": "max", "doors_cv": "CV",
               "outside_15pct": "±15%", "non_contiguous": "split up", "polsby_popper_mean": "compact",
               "split_block_share": "blocks split"}
    table.add_column("precinct")
    for header in columns.values():
        table.add_column(header, justify="right")
    for name, quality in [("all", report["overall"]), *report["precincts"].items()]:
        table.add_row(name, *("" if quality.get(c) is None else str(quality.get(c)) for c in columns))
    out.print(table)


@turf_cli.command("assign")
def turfs_assign(turf: Annotated[str, typer.Argument(metavar="TURF", help="The turf's id or name.")],
                 email: Annotated[str, typer.Argument(metavar="EMAIL", help="The member to give it to.")],
                 campaign: CampaignOpt) -> None:
    """Give a turf to a member of the campaign."""
    from app.campaigns import service as campaign_service
    from app.organizing import holdings
    from app.turfs.lookup import find_active_turf

    async def go(session: AsyncSession) -> str:
        c = await get_campaign(session, campaign)
        assert c.id is not None
        found = await find_active_turf(session, c, turf)
        user = await campaign_service.find_user(session, email)
        if user is None:
            raise NotFound(f"no user {email}")
        rows = await holdings.assign(session, c.id, found.id, [user.id], by=None)
        return f"{found.name} (turf {found.id}) is held by " + ", ".join(r.email for r in rows) + "."
    out.print(run(go), highlight=False)
