"""What every `doorstep` command shares: the consoles, the common options, and running a service on the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    # Only for annotations: the database's modules cost ~0.3 s, which `--help` or a bad option shouldn't pay;
    # each command imports the services it runs.
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.campaigns.models import Campaign
    from app.config import Settings

T = TypeVar("T")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

CampaignOpt = Annotated[str, typer.Option("--campaign", "-c", metavar="SLUG", help="The campaign's slug.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")]
MapOpt = Annotated[list[str] | None, typer.Option("--map", metavar="FIELD=COLUMN[+COLUMN...]",
                                                  help="Which column holds a field; repeat per field.")]
KeepOpt = Annotated[list[str] | None, typer.Option("--keep", metavar="COLUMN[:TYPE]", help=(
    "Keep this column as an attribute; TYPE is text (the default), int, number, bool or date. Repeat per column: "
    "only the columns named are kept."))]
RejectionsOpt = Annotated[Path | None, typer.Option("--rejections", metavar="FILE", help=(
    "Write every rejected row to this CSV (--json and the HTTP answer list the first 1,000)."))]

FileArg = Annotated[Path, typer.Argument(metavar="FILE", help="CSV, GeoJSON, GeoPackage or zipped Shapefile.")]
EmailArg = Annotated[str, typer.Argument(metavar="EMAIL", help="The user's email.")]


def group(help: str) -> typer.Typer:
    """A command group (`doorstep db ...`): its help when called bare."""
    return typer.Typer(help=help, no_args_is_help=True)


def run(work: Callable[[AsyncSession], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run `work` with a session on the configured database."""
    # Imported here: settings and every table cost ~0.3 s, which `--help` or a bad option shouldn't pay.
    import app.models  # noqa: F401  every table, so foreign keys across domains resolve whatever a command loads
    from app.config import Settings
    from app.db import make_engine, make_sessionmaker

    async def main() -> T:
        engine = make_engine((settings or Settings()).database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()
    return asyncio.run(main())


async def get_campaign(session: AsyncSession, slug: str) -> Campaign:
    """The campaign a command's `--campaign` names. Raises NotFound."""
    from app.campaigns import service as campaign_service

    return await campaign_service.get_campaign(session, slug)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback drawing a bar on stderr (nothing when stderr is no terminal and not asked for)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not enabled) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
        yield update
