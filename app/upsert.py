"""Create-or-update of many rows at once, as every import does it: compare with what is stored, then
COPY (or executemany) the new rows and update the changed ones by id."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import bulk_insert
from app.ingest import Progress

# Rows a COPY (or executemany) carries: big enough that round trips don't count, small enough to move a
# progress bar on a city's file.
WRITE_CHUNK = 20000


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):  # value != value: NaN
        return None
    return value.item() if isinstance(value, np.generic) else value


def frame_values(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Rows of plain Python values (missing ones None), fast: a list per column, zipped."""
    lists = []
    for column in columns:
        values = frame[column]
        plain = (pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)
                 or (pd.api.types.is_string_dtype(values.dtype) and values.map(type).eq(str).all()))
        if plain and not values.hasnans:
            lists.append(values.tolist())
        else:
            lists.append([_plain(v) for v in values.tolist()])
    return list(zip(*lists, strict=True))


@dataclass
class Upsert:
    """Rows to insert (key first, then the fields) and changes to apply by id."""

    new: list[tuple[Any, ...]]
    changed: list[dict[str, Any]]
    unchanged: int


def plan_upsert(stored: dict[Any, tuple[Any, tuple[Any, ...]]], wanted: list[tuple[Any, ...]],
                fields: Sequence[str]) -> Upsert:
    """Compare wanted rows (key, *fields) with the stored ones (key -> (id, fields))."""
    new, changed = [], []
    for row in wanted:
        old = stored.get(row[0])
        if old is None:
            new.append(row)
        elif old[1] != row[1:]:
            changed.append({"id": old[0], **dict(zip(fields, row[1:], strict=True))})
    return Upsert(new, changed, len(wanted) - len(new) - len(changed))


async def stored_rows(session: AsyncSession, model: type, key: str, fields: Sequence[str],
                      campaign_id: int) -> dict[Any, tuple[Any, tuple[Any, ...]]]:
    """The campaign's rows of a table as key -> (id, fields), to compare an import with."""
    columns = [getattr(model, f) for f in (key, "id", *fields)]
    result = await session.execute(select(*columns).where(model.campaign_id == campaign_id))
    return {row[0]: (row[1], tuple(row[2:])) for row in result}


async def apply_upsert(session: AsyncSession, model: type, key: str, fields: Sequence[str], campaign_id: int,
                       upsert: Upsert, progress: Progress, stage: str) -> None:
    """Insert the new rows and update the changed ones, in chunks that move the progress bar. Flushes only."""
    table = model.__table__
    total = len(upsert.new) + len(upsert.changed)
    for start in range(0, len(upsert.new), WRITE_CHUNK):
        chunk = [(campaign_id, *row) for row in upsert.new[start:start + WRITE_CHUNK]]
        await bulk_insert(session, table, ("campaign_id", key, *fields), chunk)
        progress(stage, start + len(chunk), total)
    for start in range(0, len(upsert.changed), WRITE_CHUNK):
        await session.execute(update(model), upsert.changed[start:start + WRITE_CHUNK])
        progress(stage, len(upsert.new) + min(start + WRITE_CHUNK, len(upsert.changed)), total)
