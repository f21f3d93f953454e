"""Reading import files (CSV, GeoJSON, GeoPackage, zipped Shapefile: see app/sources.py), mapping their columns,
and reporting what happened.

Shared by the address, people and precinct imports. Nothing here touches the database.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import numpy as np
import pandas as pd
import pyogrio
from pyogrio.errors import DataSourceError, FieldError, GeometryError
from shapely.errors import GEOSException

from app.errors import BadFile, Invalid
from app.sources import SHAPES, TABLES, Format, gdal_path, names, scrub

# Called with a stage name, the work done and the work in all; the CLI draws a progress bar from it.
Progress = Callable[[str, int, int], None]
T = TypeVar("T")


def no_progress(stage: str, done: int, total: int) -> None:
    """The progress callback for callers that show none."""


async def read_in_thread(read: Callable[[], T], progress: Progress) -> T:
    """`read()` in a worker thread, as an import's "reading" stage: a city's file takes seconds to parse, and the
    event loop goes on serving meanwhile."""
    progress("reading", 0, 1)
    result = await anyio.to_thread.run_sync(read)
    progress("reading", 1, 1)
    return result


@dataclass(frozen=True)
class Rejection:
    """A row left out of an import, and why; `row` counts data rows from 1 (a CSV's line is row + 1)."""

    file: str
    row: int
    column: str | None
    reason: str
    id: str | None = None


REJECTIONS_SHOWN = 1000
REJECTION_COLUMNS = ["file", "row", "column", "reason", "id"]


@dataclass
class ImportReport:
    kind: str
    file: str
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    snapped: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # Counts a particular import adds (buildings made, precincts repaired, ...).
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "file": self.file, "read": self.read, "created": self.created,
            "updated": self.updated, "unchanged": self.unchanged, "snapped": self.snapped,
            "rejected": len(self.rejected), **self.extra,
            # A file of millions of bad rows must not answer hundreds of megabytes: the first REJECTIONS_SHOWN,
            # and how many more (the CLI's --rejections writes them all).
            "rejections": [r.__dict__ for r in self.rejected[:REJECTIONS_SHOWN]],
            "rejections_omitted": max(0, len(self.rejected) - REJECTIONS_SHOWN),
        }


@dataclass(frozen=True)
class FieldSpec:
    """What an import reads: each field's default column, and which fields a file may lack."""

    defaults: Mapping[str, str]
    optional: frozenset[str] = frozenset()
    # The longest value each text field may hold (its column's size in the database).
    max_length: Mapping[str, int] = field(default_factory=dict)


def parse_map(items: list[str] | None, spec: FieldSpec) -> dict[str, list[str]]:
    """Turn `FIELD=COLUMN[+COLUMN...]` items into a mapping over the spec's defaults.

    Raises Invalid naming the item at fault.
    """
    mapping = {name: [column] for name, column in spec.defaults.items()}
    for item in items or []:
        name, sep, columns = item.partition("=")
        name = name.strip()
        if not sep or not columns.strip():
            raise Invalid(f"--map {item!r}: expected FIELD=COLUMN", field="map")
        if name not in spec.defaults:
            raise Invalid(f"--map {item!r}: unknown field {name!r}; fields are {', '.join(spec.defaults)}",
                          field="map")
        mapping[name] = [c.strip() for c in columns.split("+") if c.strip()]
    return mapping


def read_source(path: Path, label: str, *, geometry: bool = False,
                accept: tuple[Format, ...] | None = None) -> pd.DataFrame:
    """Read a CSV, GeoJSON, GeoPackage or zipped Shapefile into a frame (a GeoDataFrame if `geometry` and the file
    has any); `accept` narrows the formats (by default those with geometry when `geometry`, else all).

    Raises UnsupportedMedia for a format not accepted, BadFile for a file that can't be read or holds no rows.
    """
    if not path.exists():
        raise BadFile(f"{label}: no such file")
    if not path.is_file():
        raise BadFile(f"{label}: a folder, not a file (zip a Shapefile's parts, or name its .shp)")
    if path.stat().st_size == 0:
        raise BadFile(f"{label}: the file is empty")
    accept = accept or (SHAPES if geometry else TABLES)
    with gdal_path(path, label, accept) as source:
        try:
            # Arrow reads about 3x faster, and its string columns make the clean-up vectorised.
            frame = pyogrio.read_dataframe(source, read_geometry=geometry or not source.startswith("CSV:"),
                                           use_arrow=True)
        except (DataSourceError, FieldError, GeometryError, GEOSException, UnicodeDecodeError, ValueError) as exc:
            reason = scrub(str(exc).splitlines()[0], path, label) if str(exc) else type(exc).__name__
            raise BadFile(f"{label}: not a file Doorstep can read ({', '.join(names(accept))}): {reason}") from exc
    if len(frame) == 0:
        raise BadFile(f"{label}: the file holds no rows")
    return frame


def mapped_columns(frame: pd.DataFrame, mapping: Mapping[str, list[str]], spec: FieldSpec, label: str,
                   *, present: Callable[[str], bool] = lambda name: False) -> pd.DataFrame:
    """A frame of the mapped fields as stripped strings ('' where empty), joining multi-column fields.

    `present(name)` tells when a field the file lacks is supplied another way (a point geometry for
    lon/lat). Raises BadFile naming the first missing column.
    """
    out = pd.DataFrame(index=frame.index)
    columns = set(frame.columns)
    for name, sources in mapping.items():
        missing = [c for c in sources if c not in columns]
        if missing:
            if name in spec.optional or present(name):
                continue
            hint = "" if name not in spec.defaults else f" (name the file's column with --map {name}=COLUMN)"
            raise BadFile(f"{label}: no column {missing[0]!r} for field {name!r}{hint}")
        parts = [_as_text(frame[c]) for c in sources]
        joined = parts[0]
        for part in parts[1:]:
            joined = (joined + " " + part).str.strip()
        nul = joined.str.contains("\x00", regex=False).to_numpy()
        if nul.any():
            at = int(np.flatnonzero(nul)[0])
            raise BadFile(f"{label} row {at + 1}, column {'+'.join(sources)!r}: holds a NUL character")
        out[name] = joined
    return out


def _as_text(column: pd.Series) -> pd.Series:
    # Whole floats read from typed sources (12.0) are ids, not measurements: print them as 12.
    if pd.api.types.is_float_dtype(column):
        whole = column.dropna()
        if len(whole) and np.all(np.mod(whole, 1) == 0):
            column = column.astype("Int64")
    return column.astype("string").fillna("").str.strip().astype(object)


def parse_numbers(values: pd.Series, *, label: str, column: str, low: float, high: float,
                  integer: bool = False) -> np.ndarray:
    """Numbers from text; '' gives NaN. Raises BadFile naming the row and column of a corrupt value."""
    numbers = pd.to_numeric(values.where(values != "", None), errors="coerce").to_numpy(dtype=float)
    corrupt = np.isnan(numbers) & (values.to_numpy() != "")
    corrupt |= ~np.isnan(numbers) & ((numbers < low) | (numbers > high))
    if integer:
        corrupt |= ~np.isnan(numbers) & (np.mod(numbers, 1) != 0)
    if corrupt.any():
        at = int(np.flatnonzero(corrupt)[0])
        raise BadFile(f"{label} row {at + 1}, column {column!r}: {values.iloc[at]!r} is not "
                      f"{'a whole number' if integer else 'a number'} from {low:g} to {high:g}")
    return numbers


def drop_too_long(table: pd.DataFrame, spec: FieldSpec, mapping: Mapping[str, list[str]], label: str,
                  rejected: list[Rejection]) -> pd.DataFrame:
    """Drop rows with a value longer than its field may hold, reporting each (`table` has an `id` column)."""
    keep = np.ones(len(table), dtype=bool)
    for name, limit in spec.max_length.items():
        if name not in table:
            continue
        too_long = (table[name].str.len() > limit).to_numpy() & keep
        for row, ident in zip(table.index[too_long], table["id"][too_long], strict=True):
            rejected.append(Rejection(label, int(row) + 1, source_column(mapping, name),
                                      f"longer than {limit} characters", ident if name != "id" else None))
        keep &= ~too_long
    return table[keep]


def source_column(mapping: Mapping[str, list[str]], name: str) -> str:
    """The file's column (or columns joined with +) a field was read from, for messages."""
    return "+".join(mapping[name])
