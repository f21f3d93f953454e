"""Domain events: the facts a service publishes when it changes data, and the handlers that keep what is derived
from that data in step (walk lists, the change counter, the webhook outbox, live announcements).

A service states what happened (`await publish(session, HouseholdsChanged(...))`) and knows nothing of who
listens; each deriving domain subscribes in its own `handlers.py`, and `app/subscribers.py` wires them all.
Handlers run in two phases:

- `on(Event)`: inside the publisher's transaction, before it commits, so derived rows are atomic with the change
  (a failed handler rolls the change back with it).
- `after_commit(Event)`: plain functions run once the transaction has committed (never after a rollback), from
  one SQLAlchemy after_commit hook below, whichever path commits; for what must not happen unless the change is
  durable (telling this process's live streams).

Subscribing to a base class hears every event derived from it: `CampaignChanged` is every change that progress
and its ETags follow.
"""

import importlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

Handler = Callable[[AsyncSession, Any], Awaitable[None]]
AfterCommit = Callable[[Session, Any], None]
# Events of the session's open transaction that after-commit handlers wait for, and handlers' notes on it.
PENDING = "doorstep_events"
SCRATCH = "doorstep_scratch"
SUBSCRIBERS = "app.subscribers"


def scratch(session: AsyncSession) -> dict[str, Any]:
    """A dict for handlers' notes on the session's open transaction, emptied when it commits or rolls back."""
    return session.sync_session.info.setdefault(SCRATCH, {})


@dataclass(frozen=True)
class CampaignChanged:
    """Something a campaign's progress (figures, ETags, streams) reads changed."""

    campaign_id: int


@dataclass(frozen=True)
class PrecinctsChanged(CampaignChanged):
    """Precincts were imported or their stored counts of buildings, households and people recounted."""


@dataclass(frozen=True)
class HouseholdsChanged(CampaignChanged):
    """Doors were imported or changed: `turf_ids` hold doors that moved or changed address (their walking order
    is stale); `household_ids` are doors whose people or address changed (phones must download them again)."""

    turf_ids: frozenset[int] = frozenset()
    household_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class StreetsImported(CampaignChanged):
    """The campaign's street network changed: every active turf walks along it anew."""


@dataclass(frozen=True)
class TurfsCut(CampaignChanged):
    """A cut made new turfs: `walks` holds the walking order it computed for each (turf id -> TurfWalk), stored
    as their first version."""

    walks: dict[int, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TurfShapeChanged(CampaignChanged):
    """These turfs' doors changed (reshaped, merged, retired, a cut took doors from them): walk them anew."""

    turf_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class TurfHoldingsChanged(CampaignChanged):
    """Turfs changed hands: each change is one row of turf history (`turf_id`, `user_id`, `action`, and
    `event_id` for an event's)."""

    changes: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class EventPoolChanged(CampaignChanged):
    """An event's pool of turfs grew, shrank or was let go."""

    event_id: int = 0


@dataclass(frozen=True)
class KnocksAccepted(CampaignChanged):
    """A sync batch stored new knocks: `knocks` as webhooks carry them (no names), and per turf how many of its
    doors this batch knocked for the first time (the turf is complete if they were its last)."""

    campaign_slug: str = ""
    knocks: tuple[dict[str, Any], ...] = ()
    first_doors: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CountersRebuilt(CampaignChanged):
    """Every progress counter of the campaign was recomputed from its knocks."""


@dataclass
class Bus:
    handlers: dict[type, list[Handler]] = field(default_factory=lambda: defaultdict(list))
    after: dict[type, list[AfterCommit]] = field(default_factory=lambda: defaultdict(list))
    wired: bool = False

    def on(self, *kinds: type) -> Callable[[Handler], Handler]:
        """Run the decorated `async def handler(session, event)` in the publisher's transaction."""
        def register(handler: Handler) -> Handler:
            for kind in kinds:
                self.handlers[kind].append(handler)
            return handler
        return register

    def after_commit(self, *kinds: type) -> Callable[[AfterCommit], AfterCommit]:
        """Run the decorated `def handler(session, event)` (the sync Session) once the publisher's transaction
        has committed."""
        def register(handler: AfterCommit) -> AfterCommit:
            for kind in kinds:
                self.after[kind].append(handler)
            return handler
        return register

    def _of(self, table: dict[type, list[Any]], kind: type) -> Iterable[Any]:
        for base in kind.__mro__:
            yield from table.get(base, ())

    async def publish(self, session: AsyncSession, event: CampaignChanged) -> None:
        """Tell the subscribers that `event` happened in the session's open (write) transaction."""
        if not self.wired:
            # Wired on first use, whatever the entry point (app, CLI, bench, a test's service call): a publisher
            # run without the handlers would leave walk lists and counters stale without a word. By name, so
            # this kernel module imports no domain.
            importlib.import_module(SUBSCRIBERS)
            self.wired = True
        for handler in self._of(self.handlers, type(event)):
            await handler(session, event)
        if any(True for _ in self._of(self.after, type(event))):
            session.sync_session.info.setdefault(PENDING, []).append(event)


BUS = Bus()
on, after_commit, publish = BUS.on, BUS.after_commit, BUS.publish


@sa_event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop(SCRATCH, None)
    for event in session.info.pop(PENDING, ()):
        for handler in BUS._of(BUS.after, type(event)):
            handler(session, event)


@sa_event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(SCRATCH, None)
