"""The ASGI app: `app.main:app`, built from settings by `create_app`."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit.service import AuditLog
from app.auth import passwords
from app.auth.ratelimit import RateLimits
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.progress import live
from app.routers import (
    addresses,
    attributes,
    auth,
    campaigns,
    contract,
    docs,
    organizing,
    precincts,
    problems,
    progress,
    results,
    scripts,
    sync,
    turfs,
    walklists,
)
from app.routers import audit as audit_routes
from app.routers import webhooks as webhook_routes
from app.routers.audit import AuditSent
from app.routers.bodies import BoundBodies
from app.routers.etags import ETags
from app.routers.head import HeadAsGet
from app.routers.headers import SecurityHeaders
from app.routers.responses import COMPRESS_MIN, Gzip
from app.schemas import FeatureCollection
from app.sync.schemas import SyncBatch
from app.webhooks import service as webhooks

DESCRIPTION = """The REST API behind door-to-door canvassing: precincts, addresses and people, turfs, walk lists,
offline sync and live progress. Every error is an RFC 9457 `application/problem+json`.

Log in at `POST /v1/auth/token`, or send a campaign's API key as `Authorization: Bearer dsk_...` or `X-API-Key`.
Each operation lists who may call it: `x-roles` (a member's role in the campaign) and `x-scopes` (an API key's)."""

# What a page on another origin may send and read (CORS): every method the API has; the headers its clients
# send (credentials, bodies, conditional and ranged GETs, a stream's resume point); the headers its answers carry.
CORS_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "If-None-Match", "Range", "Last-Event-ID"]
CORS_EXPOSED = ["ETag", "Link", "Location", "Retry-After", "Content-Range", "Accept-Ranges", "Content-Disposition"]


def operation_id(route: APIRoute) -> str:
    """An operation's id in the contract: its function's name (`get_walklist`, `sync_knocks`), short and stable,
    which generated clients name their calls after (tests/test_openapi.py holds them unique)."""
    return route.name


def create_app(settings: Settings | None = None, *, connection: AsyncConnection | None = None) -> FastAPI:
    """The app. On `connection`, in a transaction its owner rolls back (the tests'), every session is a
    savepoint of it and nothing runs beside the requests: one connection does one thing at a time, so the
    webhook worker and the progress listener stay off, and the audit is written when the app stops (or a
    reader of the audit asks). A background job (a turf cut) needs an engine of its own."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.jwt_secret is None:
            raise RuntimeError("DOORSTEP_JWT_SECRET is not set: run `doorstep init` to write one into .env")
        engine = None if connection is not None else make_engine(
            settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow,
            pool_timeout_s=settings.db_pool_timeout_s, connect_timeout_s=settings.db_connect_timeout_s,
            statement_timeout_s=settings.db_statement_timeout_s)
        app.state.sessionmaker = make_sessionmaker(connection if engine is None else engine)
        app.state.audit = AuditLog(app.state.sessionmaker, buffer_max=settings.audit_buffer_max)
        app.state.tasks = set()
        # Per app, so each starts counting afresh (each test's app too); per process, so N workers allow N times.
        app.state.rate_limits = RateLimits(per_account=settings.rate_per_account,
                                           per_address=settings.rate_per_address)
        app.state.hash_limiter = passwords.start_hashing(settings.hash_threads)
        # What is alive once the app has started (modules, mappings, the engine) lives as long as the app:
        # frozen, the collector's full passes skip it (they cost a sync batch 5 ms on average). Thawed at
        # shutdown, so a process that runs several apps (the tests) keeps no garbage.
        gc.freeze()
        stop = asyncio.Event()
        workers = [] if engine is None else [
            # Every process hears of every campaign's changes (progress streams), on PostgreSQL by LISTEN.
            asyncio.create_task(live.listen(settings.database_url, stop,
                                             connect_timeout_s=settings.db_connect_timeout_s)),
            # The webhook worker drains the outbox in the background: a receiver never holds up the request.
            asyncio.create_task(webhooks.run(app.state.sessionmaker, settings, stop))]
        # Reads of voter data are audited in batches, off the request path (see app/audit/service.py).
        auditor = asyncio.create_task(app.state.audit.run(stop, settings.audit_flush_s if engine else None))
        yield
        stop.set()
        await asyncio.gather(*workers)
        gc.unfreeze()
        # Background jobs (turf cuts) finish before the engine goes.
        if app.state.tasks:
            await asyncio.gather(*app.state.tasks, return_exceptions=True)
        await auditor  # its last batch, written once stop is set
        if engine is not None:
            await engine.dispose()

    # The docs pages are app/routers/docs.py's, which serve their own assets, not a CDN's.
    app = FastAPI(title="Doorstep", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  generate_unique_id_function=operation_id, docs_url=None, redoc_url=None)
    app.state.settings = settings
    problems.install(app)
    # Bodies are bounded (bytes per route, JSON depth) before any route reads them.
    app.add_middleware(BoundBodies, settings=settings)
    # Every GET's 200 gets an ETag (of its body, unless the route made one) and If-None-Match a 304. Inside the
    # compression, so the tag is the identity body's, and a 304 is never compressed.
    app.add_middleware(ETags)
    # Walk lists go to phones on weak signal: anything over 1 KB goes gzipped to clients that accept it.
    app.add_middleware(Gzip, minimum_size=COMPRESS_MIN)
    # Reads of voter data are audited once their answer is sent: outside the ETags (a 304 sends none).
    app.add_middleware(AuditSent)
    # Outside the compression, so a HEAD's headers are the gzipped GET's.
    app.add_middleware(HeadAsGet)
    # Outermost, so errors, streamed and gzipped answers get them too (500s get them in problems.unhandled).
    app.add_middleware(SecurityHeaders, settings=settings)
    if settings.cors_origins:
        # Outside the rest, so a browser's preflight is answered before any route or limit sees it. Tokens go in
        # headers, never cookies: no credentials mode.
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=CORS_METHODS,
                           allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED, max_age=600)
    # Organizing first: its /turfs:claim must not be taken for a turf id.
    for module in (auth, campaigns, precincts, addresses, attributes, organizing, turfs, walklists, scripts, sync,
                   progress, results, webhook_routes, audit_routes):
        app.include_router(module.router)
    app.include_router(organizing.public)
    app.include_router(campaigns.index)
    app.include_router(docs.router)
    contract.document(app, SyncBatch, FeatureCollection)
    return app


app = create_app()
