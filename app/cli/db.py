"""`doorstep db`: migrations."""

from typing import Annotated

import typer

from app.cli.common import group, out
from app.migrations import alembic_config

db_cli = group("The database.")


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the database (DOORSTEP_DATABASE_URL) up to a revision, by default the newest."""
    from alembic import command
    from app.config import Settings

    command.upgrade(alembic_config(Settings().database_url), revision)
    out.print(f"Database at {revision}.")


@db_cli.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Migrate the database down to a revision (`base` empties it)."""
    from alembic import command
    from app.config import Settings

    command.downgrade(alembic_config(Settings().database_url), revision)
    out.print(f"Database at {revision}.")
