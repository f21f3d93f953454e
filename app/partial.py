"""Partial updates, as PATCH sends them: a field left out (None) keeps its stored value."""

from typing import Any


def set_given(row: Any, **values: Any) -> None:
    """Set each of `row`'s fields named in `values` whose value is not None; leave the others as they are.

    A table row refuses a name it has no field of (ValueError), so a misspelt name fails rather than passes.
    """
    for name, value in values.items():
        if value is not None:
            setattr(row, name, value)
