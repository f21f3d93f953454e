"""`doorstep db`: migrations."""

from typing import Annotated

import typer

from app.cli.common import group, out

db_cli = group("The database.")
Revision = Annotated[str, typer.Argument(metavar="REVISION", help="An Alembic revision id, `head` or `base`.")]


def _migrate(direction: str, revision: str) -> None:
    # Alembic and the settings are imported here: `doorstep --help` shouldn't pay for them.
    from alembic import command
    from app.config import Settings
    from app.migrations import alembic_config

    getattr(command, direction)(alembic_config(Settings().database_url), revision)
    out.print(f"Database at {revision}.")


@db_cli.command("upgrade")
def db_upgrade(revision: Revision = "head") -> None:
    """Migrate the database up to a revision (the newest by default).

    The database is DOORSTEP_DATABASE_URL's.
    """
    _migrate("upgrade", revision)


@db_cli.command("downgrade")
def db_downgrade(revision: Revision) -> None:
    """Migrate the database down to a revision (`base` empties it)."""
    _migrate("downgrade", revision)
