"""Do not contact: a person or a door kept off every list from now on, and why (the file said so, an organizer,
a result at the door)."""

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses.models import Household, Person
from app.db import begin_write, utcnow
from app.errors import NotFound
from app.events import HouseholdsChanged, publish

# Keys a statement names.
CHUNK = 5000


class Reason(StrEnum):
    imported = "import"
    organizer = "organizer"
    refused = "refused"
    deceased = "deceased"
    moved = "moved"


async def from_import(session: AsyncSession, model: type[Person] | type[Household], ids: Sequence[int],
                      flags: np.ndarray) -> set[int]:
    """Mark what a file's `do_not_contact` column says (1 yes, 0 no, NaN said nothing): a yes marks a row not
    marked yet; a no clears only a mark an import made (an organizer's or a result's stands). The ids changed.
    Flushes only."""
    said_yes = [i for i, f in zip(ids, flags.tolist(), strict=True) if f == 1.0]
    said_no = [i for i, f in zip(ids, flags.tolist(), strict=True) if f == 0.0]
    changed: set[int] = set()
    now = utcnow()
    for wanted, where, values in (
            (said_yes, model.do_not_contact.is_(None), {"do_not_contact": Reason.imported.value,
                                                        "do_not_contact_at": now}),
            (said_no, model.do_not_contact == Reason.imported.value, {"do_not_contact": None,
                                                                       "do_not_contact_at": None})):
        for start in range(0, len(wanted), CHUNK):
            moved = (await session.execute(update(model).where(model.id.in_(wanted[start:start + CHUNK]), where)
                                           .values(**values).returning(model.id)
                                           .execution_options(synchronize_session=False))).scalars().all()
            changed |= set(moved)
    return changed


async def mark(session: AsyncSession, campaign_id: int, model: type[Person] | type[Household], row_id: int, *,
               do_not_contact: bool, reason: Reason = Reason.organizer) -> Person | Household:
    """Mark a person or a door (or clear its mark, whatever made it), for the walk lists holding it to drop or
    show it. Raises NotFound for an id the campaign has none of."""
    await begin_write(session)
    row = await session.scalar(select(model).where(model.campaign_id == campaign_id, model.id == row_id))
    if row is None:
        raise NotFound(f"No {model.__tablename__} {row_id}.")
    if do_not_contact and row.do_not_contact is None:
        row.do_not_contact, row.do_not_contact_at = reason.value, utcnow()
    elif not do_not_contact:
        row.do_not_contact, row.do_not_contact_at = None, None
    door = row.id if isinstance(row, Household) else row.household_id
    await publish(session, HouseholdsChanged(campaign_id, household_ids=frozenset({door})))
    await session.commit()
    return row


async def from_results(session: AsyncSession, campaign_id: int, *, people: dict[int, str],
                       doors: dict[int, str]) -> None:
    """Mark what knocks at the door said (`people` and `doors`, each to its reason) and is not marked yet: one
    statement a reason and kind. Flushes only."""
    now = utcnow()
    for model, marks in ((Person, people), (Household, doors)):
        for reason in sorted(set(marks.values())):
            ids = [i for i, r in marks.items() if r == reason]
            await session.execute(update(model).where(model.campaign_id == campaign_id, model.id.in_(ids),
                                                      model.do_not_contact.is_(None))
                                  .values(do_not_contact=reason, do_not_contact_at=now)
                                  .execution_options(synchronize_session=False))
    households = set(doors) | set((await session.execute(select(Person.household_id).where(
        Person.id.in_(list(people))))).scalars()) if people else set(doors)
    await publish(session, HouseholdsChanged(campaign_id, household_ids=frozenset(households)))
