"""Text types for request schemas."""

from typing import Annotated

from pydantic import AfterValidator


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("holds a NUL character")
    return value


# A string the databases store alike: PostgreSQL refuses NUL characters, SQLite keeps them.
Text = Annotated[str, AfterValidator(_no_nul)]
