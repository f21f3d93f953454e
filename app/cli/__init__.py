"""The `doorstep` command line, for organizers and operators. Bad input gets one line and exit code 2.

A module per area; each defines its command group, and this one puts them together.
"""

import sys

import typer

from app.cli.campaigns import campaign_cli, key_cli, user_cli
from app.cli.common import err
from app.cli.db import db_cli
from app.cli.demo import start_cli
from app.cli.events import event_cli
from app.cli.imports import import_cli
from app.cli.progress import progress_cli
from app.cli.turfs import turf_cli
from app.errors import AppError

cli = typer.Typer(help="Doorstep: the backend for door-to-door canvassing.", no_args_is_help=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None, add_completion=False)
# First, so `doorstep --help` lists the top-level commands before the groups.
cli.add_typer(start_cli)
for sub, name in ((db_cli, "db"), (campaign_cli, "campaign"), (user_cli, "user"), (key_cli, "apikey"),
                  (import_cli, "import"), (turf_cli, "turfs"), (event_cli, "events"), (progress_cli, "progress")):
    cli.add_typer(sub, name=name)


def main() -> None:
    """Entry point: one clear line and exit code 2 for bad input, never a traceback."""
    try:
        # Not standalone, so the errors below are ours to print; a command's `typer.Exit` comes back as its code.
        code = cli(standalone_mode=False)
    except typer.Abort:
        err.print("doorstep: aborted")
        sys.exit(1)
    except typer.TyperException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        # With no command at all, the "error" is the help text: print it as it is.
        err.print(message if message.startswith("Usage:") else f"doorstep: {message}", highlight=False,
                  markup=False)
        sys.exit(2)
    except AppError as exc:
        say(str(exc))
        sys.exit(2)
    except Exception as exc:
        code = _failure(exc)
        if code is None:
            raise
        sys.exit(code)
    sys.exit(code if isinstance(code, int) else 0)


def say(line: str) -> None:
    err.print(f"doorstep: {line}", highlight=False, markup=False)


def _failure(exc: Exception) -> int | None:
    """Say in a line what stopped a command that is no bug of ours, and its exit code; None for anything else.
    The classes are imported here: `--help` shouldn't pay for pydantic's and SQLAlchemy's."""
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError, ProgrammingError

    if isinstance(exc, ValidationError):
        say(f"settings: {exc.errors()[0]['msg']}")
        return 2
    if isinstance(exc, OperationalError | ProgrammingError):
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        say(f"database error: {reason} (is the database migrated? `doorstep db upgrade`)")
        return 1
    if isinstance(exc, OSError):
        # Most often the database can't be reached: say so in a line; it is no bad input, so not 2.
        say(str(exc))
        return 1
    return None
