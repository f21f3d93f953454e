"""Text helpers: request string types, and sorting unit numbers as people read them."""

import re
from typing import Annotated

from pydantic import AfterValidator


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("holds a NUL character")
    return value


# A string the databases store alike: PostgreSQL refuses NUL characters, SQLite keeps them.
Text = Annotated[str, AfterValidator(no_nul)]


_RUNS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key putting numbers in number order: `2` before `10`, `W90` before `W909`.

    >>> sorted(["10", "2", "W909", "W90", "1A", "B"], key=natural_key)
    ['1A', '2', '10', 'B', 'W90', 'W909']
    """
    return tuple((0, int(part)) if part.isdigit() else (1, part.casefold())
                 for part in _RUNS.split(text.strip()) if part)
