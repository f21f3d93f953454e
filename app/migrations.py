"""Alembic's configuration for a database URL, shared by `doorstep db`, the tests and the benchmarks."""

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def alembic_config(database_url: str) -> "Config":
    """The Alembic config of this checkout, pointed at `database_url`; its env leaves logging alone."""
    # Imported here: every `doorstep` command imports this module, and few of them migrate.
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config
