"""Every error as RFC 9457 `application/problem+json`."""

import html
import logging
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from app.db import UNREACHABLE, hide_row_values, unavailable
from app.errors import PROBLEM_TYPES, AppError, NotFound, problem_body
from app.routers import headers as security

log = logging.getLogger("doorstep")
PROBLEM = "application/problem+json"


def _server_paths() -> re.Pattern[str]:
    """Absolute paths on this server (the temporary folder, the working folder, the installation) and what
    follows them up to a space, quote or punctuation."""
    roots = {tempfile.gettempdir(), os.getcwd(), sys.prefix, sys.base_prefix, str(Path(__file__).parents[2])}
    roots |= {os.path.realpath(root) for root in roots}
    # The root folder itself would match every path-like word, and some containers run from it.
    roots = {root.rstrip("/") for root in roots if root.rstrip("/")}
    alternatives = "|".join(re.escape(root) for root in sorted(roots, key=len, reverse=True))
    return re.compile(rf"(?:{alternatives})(?:/[^\s'\"`,;:()\[\]<>]*)?(?![\w.-])")


def hide_paths(value: Any) -> Any:
    """`value` with the server's paths replaced by "file": defence in depth, as the messages of libraries an
    import calls (GDAL's, pandas') name the temporary file an upload was saved to."""
    if isinstance(value, str):
        return _server_paths().sub("file", value) if "/" in value else value
    if isinstance(value, list):
        return [hide_paths(v) for v in value]
    if isinstance(value, dict):
        return {k: hide_paths(v) for k, v in value.items()}
    return value


def problem(request: Request, status: int, title: str, slug: str, detail: str, **extra: Any) -> JSONResponse:
    body = problem_body(status, title, slug, hide_paths(detail), instance=request.url.path, **hide_paths(extra))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


async def app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    response = problem(request, exc.status, exc.title, exc.slug, str(exc), **exc.extra)
    response.headers.update(getattr(exc, "headers", {}))  # e.g. a 429's Retry-After
    return response


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # No input value is echoed back: it may be a password or a voter's name.
    errors = [{"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(request, 422, "Invalid input", "invalid", detail, errors=errors)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthenticated"}.get(exc.status_code, "http")
    title = {404: "Not found", 405: "Method not allowed", 401: "Not authenticated"}.get(exc.status_code, "Error")
    response = problem(request, exc.status_code, title, slug, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers.setdefault(name, value)
    return response


# SQLSTATEs for text PostgreSQL can't store (a NUL character, a byte sequence that isn't UTF-8).
UNSTORABLE_TEXT = {"22021", "22P05"}


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """Text the database can't store is the caller's fault, not ours; anything else is a 500."""
    assert isinstance(exc, DBAPIError)
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in UNSTORABLE_TEXT:
        return problem(request, 422, "Invalid input", "invalid",
                       "The input holds a character that can't be stored (a NUL byte, or text that isn't UTF-8).")
    return await unhandled(request, exc)


class RefuseNul:
    """ASGI middleware: a NUL character in the URL is refused before any route sees it (PostgreSQL can't store one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for part, raw in (("path", scope.get("raw_path") or scope["path"].encode()),
                              ("query", scope.get("query_string", b""))):
                if b"%00" in raw or b"\x00" in raw:
                    response = problem(Request(scope), 422, "Invalid input", "invalid",
                                       f"The URL's {part} holds a NUL character.",
                                       errors=[{"field": part, "message": "NUL character"}])
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


# How long a client should wait before trying again when the database can't be reached.
RETRY_AFTER_S = 5


async def unhandled(request: Request, exc: Exception) -> JSONResponse:
    hide_row_values(exc)  # a driver error straight from asyncpg (the hot paths) carries the row's values too
    if unavailable(exc):
        # An outage, not a bug: a line in the log (no traceback, no values), and an answer clients can retry on.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        response = problem(request, 503, "Service unavailable", "unavailable",
                           "The database can't be reached just now; try again shortly.")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        response = problem(request, 500, "Internal error", "internal",
                           "Something went wrong on our side; it is logged.")
    # Starlette sends this answer outside the app's middleware, so it gets the security headers here.
    response.headers.update(security.headers_for(request.url.path, request.app.state.settings))
    return response


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>HTTP status {status}. {text}</p>
<p>An answer of this type is an RFC 9457 <code>application/problem+json</code> whose <code>detail</code> says what
happened.</p></body></html>
"""


async def problem_page(slug: str) -> HTMLResponse:
    """What a problem type means, at its type URI."""
    if slug not in PROBLEM_TYPES:
        raise NotFound("No such problem type.")
    status, title, text = PROBLEM_TYPES[slug]
    return HTMLResponse(PAGE.format(title=html.escape(title), status=status, text=html.escape(text)))


def install(app: FastAPI) -> None:
    app.add_api_route("/problems/{slug}", problem_page, methods=["GET"], include_in_schema=False)
    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(DBAPIError, database_error)
    # Handled here, not by the catch-all below (which Starlette re-raises to the server as a crash).
    for kind in UNREACHABLE:
        app.add_exception_handler(kind, unhandled)
    app.add_exception_handler(Exception, unhandled)
    app.add_middleware(RefuseNul)
