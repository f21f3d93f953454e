"""Opaque cursors for keyset pagination: a list is ordered by a key, and a cursor is the last key seen."""

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from app.errors import Invalid
from app.values import MAX_ID

T = TypeVar("T")


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, field: str = "cursor") -> Any:
    """The key a cursor holds, or None for the first page. Raises Invalid naming `field`."""
    if not cursor:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise Invalid("not a cursor this API gave out", field=field) from exc


def int_cursor(cursor: str | None, field: str = "cursor", *, most: int = MAX_ID) -> int:
    """The integer key a cursor holds (at most `most`: ids by default, as INTEGER columns hold); 0 before the
    first page."""
    key = decode_cursor(cursor, field)
    if key is None:
        return 0
    if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key <= most:
        raise Invalid("not a cursor this API gave out", field=field)
    return key


def page(rows: Sequence[T], limit: int, key: Callable[[T], Any] = lambda row: row.id) -> tuple[list[T], str | None]:
    """A page of `rows` (queried with `limit + 1`, in key order) and the cursor of the next one, None on the last."""
    if len(rows) > limit:
        return list(rows[:limit]), encode_cursor(key(rows[limit - 1]))
    return list(rows), None
