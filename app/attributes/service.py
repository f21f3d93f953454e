"""Attributes a campaign keeps of its voter and address files: declared once (name, type, whose, seen by
canvassers or not), read from the columns an import is told to keep, typed, and written in place on every import."""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.attributes.models import Attribute, AttributeValue, PersonTag, Tag
from app.attributes.schemas import KINDS, AttributeIn, Kind, Of
from app.db import bulk_insert, insert_new, utcnow
from app.errors import BadFile, Conflict, Invalid, NotFound
from app.ingest import FieldSpec, mapped_columns

NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
TEXT_MAX = 200
# What a boolean column may say, in any case.
TRUE, FALSE = frozenset({"true", "t", "yes", "y", "1"}), frozenset({"false", "f", "no", "n", "0"})
# Integers are stored as floats (one typed column to filter on): exact up to 2**53.
INTEGER_MAX = 2.0 ** 53
# A chunk of rows a statement writes, and of keys a statement names.
CHUNK = 5000
# Where a read file's tags column goes among its fields.
TAGS = "tags:"


@dataclass(frozen=True)
class Keep:
    """A column an import is told to keep: the file's column (the attribute's name) and its type."""

    name: str
    kind: Kind


def parse_keeps(items: Sequence[str] | None) -> list[Keep]:
    """`NAME` or `NAME:TYPE` each (`party`, `support_score:int`, `vote_2024:bool`). Raises Invalid naming `keep`."""
    keeps: dict[str, Keep] = {}
    for item in items or ():
        name, _, kind = item.strip().partition(":")
        name, kind = name.strip(), kind.strip().lower() or "text"
        if not NAME.fullmatch(name):
            raise Invalid(f"keep {item[:80]!r}: a name is a lower-case letter, then letters, digits or _ "
                          "(at most 64)", field="keep")
        if kind not in KINDS:
            raise Invalid(f"keep {item[:80]!r}: the type is one of {', '.join(sorted(KINDS))}", field="keep")
        if name in keeps:
            raise Invalid(f"keep {name!r} is named twice", field="keep")
        keeps[name] = Keep(name, KINDS[kind])
    return list(keeps.values())


def typed(values: pd.Series, kind: Kind, *, label: str) -> tuple[np.ndarray, list[str | None]]:
    """A kept column's values (stripped text, '' for blank) as what `attribute_value` stores: (numbers, texts),
    NaN and None for a blank. Raises BadFile naming the first row and column that doesn't fit the type."""
    text = values.to_numpy(dtype=object)
    blank = text == ""
    numbers = np.full(len(text), np.nan)
    texts: list[str | None] = [None] * len(text)
    bad = np.zeros(len(text), dtype=bool)
    if kind in (Kind.integer, Kind.number):
        numbers = pd.to_numeric(values.where(~blank, None), errors="coerce").to_numpy(dtype=float)
        bad = np.isnan(numbers) & ~blank
        bad |= ~np.isnan(numbers) & (np.abs(numbers) > (INTEGER_MAX if kind == Kind.integer else np.finfo(float).max))
        if kind == Kind.integer:
            bad |= ~np.isnan(numbers) & (np.mod(numbers, 1) != 0)
    elif kind == Kind.boolean:
        lowered = values.str.lower().to_numpy(dtype=object)
        numbers = np.where(np.isin(lowered, list(TRUE)), 1.0, np.where(np.isin(lowered, list(FALSE)), 0.0, np.nan))
        bad = np.isnan(numbers) & ~blank
    elif kind == Kind.date:
        # ISO (2024-11-05) or the US voter files' 11/05/2024; stored as ISO, which sorts as dates do.
        days = pd.to_datetime(values.where(~blank, None), format="%Y-%m-%d", errors="coerce")
        us = pd.to_datetime(values.where(~blank & days.isna(), None), format="%m/%d/%Y", errors="coerce")
        days = days.fillna(us)
        bad = days.isna().to_numpy() & ~blank
        texts = [None if pd.isna(d) else d.date().isoformat() for d in days]
    else:
        bad = np.array([len(t) > TEXT_MAX for t in text], dtype=bool)
        texts = [None if b else t for t, b in zip(text.tolist(), blank.tolist(), strict=True)]
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        wanted = (f"at most {TEXT_MAX} characters" if kind == Kind.text
                  else f"{'an' if kind.value[0] in 'aeiou' else 'a'} {kind.value}")
        # The value itself is a voter's: the row and column find it, the answer (and a log) never holds it.
        raise BadFile(f"{label} row {int(values.index[at]) + 1}, column {values.name!r}: the value is not {wanted}")
    return numbers, texts


def kept_columns(frame: pd.DataFrame, keeps: Sequence[Keep], label: str, *, tags: str | None = None) -> pd.DataFrame:
    """The columns `keeps` name, as stripped text ('' for blank), under `keep:NAME`, and the tags column under
    TAGS. Raises BadFile naming the first the file lacks."""
    missing = [name for name in [*(k.name for k in keeps), *([tags] if tags else [])] if name not in frame.columns]
    if missing:
        has = ", ".join(repr(c) for c in frame.columns[:20] if c != "geometry")
        raise BadFile(f"{label}: no column {missing[0]!r} to keep (the file has {has})")
    mapping = {f"keep:{k.name}": [k.name] for k in keeps} | ({TAGS: [tags]} if tags else {})
    return mapped_columns(frame, mapping, FieldSpec(defaults={}), label)


async def keep_values(session: AsyncSession, campaign_id: int, keeps: Sequence[Keep], of: Of,
                      subjects: Sequence[int], table: pd.DataFrame, *, label: str) -> set[int]:
    """Declare what `keeps` names (`declared`) and store the values of `subjects` from `table`'s `keep:NAME`
    columns, row for row; the ids of the subjects whose values changed. Raises BadFile for a value of the wrong
    type, Invalid for an attribute declared otherwise. Flushes only."""
    if not keeps:
        return set()
    values = {k.name: typed(table[f"keep:{k.name}"].rename(k.name), k.kind, label=label) for k in keeps}
    attributes = await declared(session, campaign_id, keeps, of)
    changed: set[int] = set()
    for keep in keeps:
        changed |= await write_values(session, attributes[keep.name], subjects, values[keep.name])
    return changed


async def list_attributes(session: AsyncSession, campaign_id: int) -> Sequence[Attribute]:
    return (await session.execute(select(Attribute).where(Attribute.campaign_id == campaign_id)
                                  .order_by(Attribute.applies_to, Attribute.name))).scalars().all()


async def create_attribute(session: AsyncSession, campaign_id: int, body: AttributeIn) -> Attribute:
    """Declare an attribute. Raises Conflict for a name the campaign has."""
    if await session.scalar(select(Attribute.id).where(Attribute.campaign_id == campaign_id,
                                                       Attribute.name == body.name)):
        raise Conflict(f"The campaign has an attribute {body.name!r} already.")
    attribute = Attribute(campaign_id=campaign_id, name=body.name, kind=body.type.value, applies_to=body.of.value,
                          canvassers_see=body.canvassers_see)
    session.add(attribute)
    await session.commit()
    return attribute


async def change_attribute(session: AsyncSession, campaign_id: int, attribute_id: int, *,
                           canvassers_see: bool) -> Attribute:
    """Show an attribute to canvassers or not. Raises NotFound for an id the campaign has none of."""
    attribute = await session.scalar(select(Attribute).where(Attribute.campaign_id == campaign_id,
                                                             Attribute.id == attribute_id))
    if attribute is None:
        raise NotFound(f"No attribute {attribute_id}.")
    attribute.canvassers_see = canvassers_see
    await session.commit()
    return attribute


async def declared(session: AsyncSession, campaign_id: int, keeps: Iterable[Keep], of: Of) -> dict[str, Attribute]:
    """The attributes `keeps` name, declared now where the campaign has none of that name (not seen by
    canvassers until an organizer says so). Raises Invalid for one declared with another type or of another
    kind of row. Flushes only."""
    keeps = list(keeps)
    found = {a.name: a for a in (await session.execute(select(Attribute).where(
        Attribute.campaign_id == campaign_id, Attribute.name.in_([k.name for k in keeps])))).scalars()}
    for keep in keeps:
        attribute = found.get(keep.name)
        if attribute is None:
            attribute = found[keep.name] = Attribute(campaign_id=campaign_id, name=keep.name, kind=keep.kind.value,
                                                     applies_to=of.value)
            session.add(attribute)
        elif (attribute.kind, attribute.applies_to) != (keep.kind.value, of.value):
            raise Invalid(f"keep {keep.name!r}: the campaign keeps it as a {attribute.applies_to}'s "
                          f"{attribute.kind}, not a {of.value}'s {keep.kind.value}", field="keep")
    await session.flush()
    return found


def _plain(number: float, text: str | None) -> tuple[float | None, str | None]:
    return (None if np.isnan(number) else float(number)), text


async def write_values(session: AsyncSession, attribute: Attribute, subjects: Sequence[int],
                       values: tuple[np.ndarray, list[str | None]]) -> set[int]:
    """Store one attribute's values of `subjects` (a blank clears one); values of subjects not named stay. The ids
    of the subjects whose value changed. Flushes only."""
    assert attribute.id is not None
    numbers, texts = values
    wanted = {subject: _plain(n, t) for subject, n, t in zip(subjects, numbers.tolist(), texts, strict=True)}
    stored: dict[int, tuple[Any, Any]] = {}
    for start in range(0, len(subjects), CHUNK):
        rows = await session.execute(select(AttributeValue.subject_id, AttributeValue.number, AttributeValue.text)
                                     .where(AttributeValue.attribute_id == attribute.id,
                                            AttributeValue.subject_id.in_(subjects[start:start + CHUNK])))
        stored |= {row.subject_id: (row.number, row.text) for row in rows}
    new = [(attribute.id, s, *v) for s, v in wanted.items() if v != (None, None) and s not in stored]
    changed = [{"attribute_id": attribute.id, "subject_id": s, "number": v[0], "text": v[1]}
               for s, v in wanted.items() if v != (None, None) and s in stored and stored[s] != v]
    cleared = [s for s, v in wanted.items() if v == (None, None) and s in stored]
    for start in range(0, len(new), CHUNK):
        await bulk_insert(session, AttributeValue.__table__, ("attribute_id", "subject_id", "number", "text"),
                          new[start:start + CHUNK])
    for start in range(0, len(changed), CHUNK):
        await session.execute(update(AttributeValue), changed[start:start + CHUNK])
    for start in range(0, len(cleared), CHUNK):
        await session.execute(delete(AttributeValue).where(AttributeValue.attribute_id == attribute.id,
                                                           AttributeValue.subject_id.in_(cleared[start:start + CHUNK])))
    return {row[1] for row in new} | {c["subject_id"] for c in changed} | set(cleared)


# What separates the tags in a cell: `volunteer_prospect; yard_sign`.
TAG_SEPARATORS = re.compile(r"[;,|]")


def tag_names(cells: pd.Series, *, label: str) -> list[frozenset[str]]:
    """Each cell's tag names (lower case). Raises BadFile naming the first row and column holding one that is no
    name."""
    out = []
    for row, cell in zip(cells.index, cells.tolist(), strict=True):
        names = frozenset(n.strip().lower() for n in TAG_SEPARATORS.split(cell) if n.strip())
        if not all(NAME.fullmatch(n) for n in names):
            raise BadFile(f"{label} row {int(row) + 1}, column {cells.name!r}: a tag is a lower-case letter, then "
                          "letters, digits or _ (at most 64), separated by ; or ,")
        out.append(names)
    return out


async def _tag_ids(session: AsyncSession, campaign_id: int, names: Iterable[str]) -> dict[str, int]:
    """The ids of the campaign's tags of these names, declared now where it has none."""
    names = sorted(set(names))
    await insert_new(session, Tag.__table__, [{"campaign_id": campaign_id, "name": n, "created_at": utcnow()}
                                              for n in names])
    return dict((await session.execute(select(Tag.name, Tag.id).where(Tag.campaign_id == campaign_id,
                                                                      Tag.name.in_(names)))).all())


async def _held_tags(session: AsyncSession, people: Sequence[int]) -> dict[tuple[int, int], str]:
    """The tags `people` have: (tag, person) -> the source that set it."""
    held: dict[tuple[int, int], str] = {}
    for start in range(0, len(people), CHUNK):
        rows = await session.execute(select(PersonTag.tag_id, PersonTag.person_id, PersonTag.source).where(
            PersonTag.person_id.in_(people[start:start + CHUNK])))
        held |= {(r.tag_id, r.person_id): r.source for r in rows}
    return held


async def _add_tags(session: AsyncSession, keys: Sequence[tuple[int, int]], source: str) -> None:
    """Tag people ((tag, person) keys); a tag a person has meanwhile (another writer's) stays as it was set."""
    now = utcnow()
    for start in range(0, len(keys), CHUNK):
        await insert_new(session, PersonTag.__table__, [
            {"tag_id": t, "person_id": p, "source": source, "created_at": now} for t, p in keys[start:start + CHUNK]])


async def keep_tags(session: AsyncSession, campaign_id: int, people: Sequence[int], cells: pd.Series, *,
                    label: str) -> set[int]:
    """Tag `people` as their cells say (an import's tags column): the tags named are set, and those an earlier
    import set and this one doesn't name are taken off; tags from answers or organizers stay. New tag names are
    declared. The ids of the people whose tags changed. Flushes only."""
    wanted_names = tag_names(cells, label=label)
    tags = await _tag_ids(session, campaign_id, set().union(*wanted_names))
    wanted = {(tags[name], person) for person, names in zip(people, wanted_names, strict=True) for name in names}
    held = await _held_tags(session, people)
    new = sorted(wanted - held.keys())
    gone = sorted(key for key, source in held.items() if source == "import" and key not in wanted)
    await _add_tags(session, new, "import")
    for tag_id in {t for t, _ in gone}:
        off = [p for t, p in gone if t == tag_id]
        for start in range(0, len(off), CHUNK):
            await session.execute(delete(PersonTag).where(PersonTag.tag_id == tag_id,
                                                          PersonTag.person_id.in_(off[start:start + CHUNK])))
    return {p for _, p in new} | {p for _, p in gone}


async def tag_people(session: AsyncSession, campaign_id: int, pairs: set[tuple[int, str]], *, source: str) -> None:
    """Set tags on people ((person, tag name) pairs: a knock's answers), declaring new names; a tag a person has
    already stays as it was set. Flushes only."""
    tags = await _tag_ids(session, campaign_id, (name for _, name in pairs))
    held = await _held_tags(session, sorted({person for person, _ in pairs}))
    await _add_tags(session, sorted({(tags[name], person) for person, name in pairs} - held.keys()), source)
