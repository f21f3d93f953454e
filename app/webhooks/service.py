"""Webhooks: registration, the outbox written in the transaction that causes an event, and the worker that
delivers it (signed, retried with backoff), so a slow or failing receiver never holds up a sync."""

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import orjson
from sqlalchemy import bindparam, case, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import UTCDateTime, begin_write, fetch_rows, skip_locked, unavailable, utcnow
from app.errors import Invalid, NotFound
from app.webhooks import targets
from app.webhooks.models import EVENTS, URL_MAX, Webhook, WebhookDelivery

log = logging.getLogger("doorstep")
# Deliveries a worker takes at once, and how long it holds them before another worker may take them over.
TAKE = 20
LEASE = timedelta(minutes=2)
MAX_BACKOFF_S = 3600.0


async def create(session: AsyncSession, campaign_id: int, *, url: str, events: Sequence[str],
                 settings: Settings) -> tuple[Webhook, str]:
    """Register a URL for events; returns the row and its signing secret (shown this once). Raises Invalid for
    a URL that is not http(s), holds a user or password, or whose host is not on the public internet (unless
    `webhook_allow_private_targets`) or does not resolve."""
    unknown = sorted(set(events) - set(EVENTS))
    if not events or unknown:
        raise Invalid(f"events are some of {', '.join(EVENTS)}" + (f"; not {', '.join(unknown)}" if unknown
                                                                    else ""), field="events")
    # The cheap checks first: the URL's costs a DNS lookup.
    try:
        url = await targets.check(url, allow_private=settings.webhook_allow_private_targets,
                                  timeout_s=settings.webhook_timeout_s)
    except ValueError as exc:
        raise Invalid(str(exc), field="url") from None
    if len(url) > URL_MAX:  # a host in other scripts grows when written in ASCII
        raise Invalid(f"at most {URL_MAX} characters, the host written in ASCII", field="url")
    await begin_write(session)
    secret = secrets.token_hex(32)
    row = Webhook(campaign_id=campaign_id, url=url, events=" ".join(sorted(set(events))), secret=secret)
    session.add(row)
    await session.commit()
    return row, secret


async def list_webhooks(session: AsyncSession, campaign_id: int) -> Sequence[Webhook]:
    return (await session.execute(select(Webhook).where(Webhook.campaign_id == campaign_id)
                                  .order_by(Webhook.created_at))).scalars().all()


async def get_webhook(session: AsyncSession, campaign_id: int, webhook_id: UUID) -> Webhook:
    found = await session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.campaign_id == campaign_id))
    if found is None:
        raise NotFound(f"No webhook {webhook_id} in this campaign.")
    return found


async def remove(session: AsyncSession, campaign_id: int, webhook_id: UUID) -> None:
    await begin_write(session)
    await get_webhook(session, campaign_id, webhook_id)
    await session.execute(delete(Webhook).where(Webhook.id == webhook_id))
    await session.commit()


async def deliveries(session: AsyncSession, campaign_id: int, webhook_id: UUID, limit: int = 100) -> list[Any]:
    """The webhook's latest deliveries, newest first, without their payloads."""
    await get_webhook(session, campaign_id, webhook_id)
    d = WebhookDelivery
    # Rows written before failures were classed hold the HTTP library's message: shown by their class.
    error = case((d.last_error.is_(None) | d.last_error.in_(targets.FAILURES), d.last_error),
                 (d.last_error.like("HTTP %"), "status"), (d.last_error.like("%Timeout%"), "timed out"),
                 (d.last_error.like("%Connection refused%"), "refused"), else_="unreachable").label("last_error")
    return list((await session.execute(
        select(d.id, d.event, d.created_at, d.attempts, d.next_attempt_at, d.delivered_at, d.failed_at,
               d.last_status, error).where(d.webhook_id == webhook_id)
        .order_by(d.created_at.desc()).limit(limit))).all())


# Read on every sync batch and change of hands (most campaigns have none): a hot read.
_SUBSCRIBED = select(Webhook.id, Webhook.events).where(Webhook.campaign_id == bindparam("campaign"))
_SUBSCRIBED_PG = "SELECT id, events FROM webhook WHERE campaign_id = :campaign"


async def subscribed(session: AsyncSession, campaign_id: int) -> dict[str, list[UUID]]:
    """Event -> the campaign's webhooks that take it."""
    out: dict[str, list[UUID]] = {}
    for webhook_id, events in await fetch_rows(session, _SUBSCRIBED, _SUBSCRIBED_PG, {"campaign": campaign_id}):
        for event in events.split():
            out.setdefault(event, []).append(webhook_id)
    return out


async def enqueue(session: AsyncSession, hooks: Sequence[UUID], event: str, payloads: Sequence[dict[str, Any]]
                  ) -> None:
    """Write deliveries of `event` (one per payload and webhook) in the caller's transaction: the outbox."""
    now = utcnow()
    rows = [{"id": uuid4(), "webhook_id": hook, "event": event, "created_at": now, "attempts": 0,
             "next_attempt_at": now, "payload": orjson.dumps({"event": event, "at": now, **payload}).decode()}
            for hook in hooks for payload in payloads]
    if rows:
        await session.execute(insert(WebhookDelivery), rows)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of `<timestamp>.<body>` with the webhook's secret."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def backoff(settings: Settings, attempts: int) -> float:
    return min(settings.webhook_backoff_s * 2 ** (attempts - 1), MAX_BACKOFF_S)


async def _take(maker: async_sessionmaker[AsyncSession]) -> list[Any]:
    """Lease up to TAKE due deliveries to this worker (another worker skips them until the lease ends)."""
    now = utcnow()
    d = WebhookDelivery
    async with maker() as session:
        due = select(d.id).where(d.next_attempt_at <= now).order_by(d.next_attempt_at).limit(TAKE)
        # Most polls find nothing: a plain read first, so an idle worker never takes SQLite's write lock.
        if await session.scalar(due.limit(1)) is None:
            return []
        await begin_write(session)
        ids = list((await session.execute(await skip_locked(session, due))).scalars())
        if not ids:
            await session.rollback()
            return []
        await session.execute(update(d).where(d.id.in_(ids)).values(next_attempt_at=now + LEASE))
        rows = (await session.execute(
            select(d.id, d.event, d.payload, d.attempts, Webhook.url, Webhook.secret)
            .join(Webhook, Webhook.id == d.webhook_id).where(d.id.in_(ids)))).all()
        await session.commit()
    return list(rows)


async def _send(client: httpx.AsyncClient, row: Any) -> tuple[int | None, str | None]:
    body = row.payload.encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "Doorstep-Webhooks",
               "X-Doorstep-Event": row.event, "X-Doorstep-Delivery": str(row.id),
               "X-Doorstep-Timestamp": timestamp, "X-Doorstep-Signature": signature(row.secret, timestamp, body)}
    try:
        # Checked again: a row from before the checks, or changed in the database, is still refused here.
        url, _ = targets.normalise(row.url)
    except ValueError:
        return None, "blocked"
    try:
        response = await client.post(url, content=body, headers=headers)
    except (targets.Undeliverable, httpx.HTTPError) as exc:
        # Only the class of failure is kept: the library's words would tell a reader what answers where.
        log.debug("webhook delivery %s failed: %r", row.id, exc)
        return None, targets.failure(exc)
    return response.status_code, None if response.is_success else "status"


async def deliver_due(maker: async_sessionmaker[AsyncSession], client: httpx.AsyncClient,
                      settings: Settings) -> int:
    """Send what is due once; record each outcome. How many were sent."""
    rows = await _take(maker)
    outcomes = await asyncio.gather(*(_send(client, row) for row in rows))
    now = utcnow()
    recorded = []
    for row, (status, error) in zip(rows, outcomes, strict=True):
        attempts = row.attempts + 1
        gave_up = error is not None and attempts >= settings.webhook_max_attempts
        recorded.append({
            "delivery": row.id, "attempts": attempts, "status": status, "error": error,
            "delivered": now if error is None else None, "failed": now if gave_up else None,
            "next": None if error is None or gave_up else now + timedelta(seconds=backoff(settings, attempts))})
    if not recorded:
        return 0
    d = WebhookDelivery.__table__.c
    async with maker() as session:
        await begin_write(session)
        await session.execute(update(WebhookDelivery.__table__).where(d.id == bindparam("delivery")).values(
            attempts=bindparam("attempts"), last_status=bindparam("status"), last_error=bindparam("error"),
            delivered_at=bindparam("delivered", type_=UTCDateTime()),
            failed_at=bindparam("failed", type_=UTCDateTime()),
            next_attempt_at=bindparam("next", type_=UTCDateTime())), recorded)
        await session.commit()
    return len(recorded)


async def run(maker: async_sessionmaker[AsyncSession], settings: Settings, stop: asyncio.Event) -> None:
    """The delivery worker: drain the outbox until `stop`, looking again every `webhook_poll_s`."""
    async with targets.client(allow_private=settings.webhook_allow_private_targets,
                              timeout_s=settings.webhook_timeout_s) as client:
        while not stop.is_set():
            try:
                sent = await deliver_due(maker, client, settings)
            except Exception as exc:  # a worker that dies delivers nothing more: log, and go on
                if unavailable(exc):  # an outage: a line a poll, not a traceback
                    log.warning("webhook deliveries wait: the database can't be reached (%s)", type(exc).__name__)
                else:
                    log.exception("webhook deliveries failed")
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.webhook_poll_s)


