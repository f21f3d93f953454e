"""Request bodies bounded before any route parses them: in bytes per route (413), and JSON in nesting depth (422)."""

import re

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.routers.problems import problem
from app.sync.schemas import MAX_BYTES as SYNC_MAX_BYTES
from app.values import MAX_DEPTH, json_depth, lone_surrogate

# File uploads (multipart): counted as they stream to the route, which spools them to disk.
UPLOADS = re.compile(r"^/v1/campaigns/[^/]+/(addresses|people|streets)$")
PRECINCTS = re.compile(r"^/v1/campaigns/[^/]+/precincts$")
SYNC = re.compile(r"^/v1/campaigns/[^/]+/sync$")
# A multipart body carries its file and a little more (part headers, the form's other fields).
FORM_SLACK = 64 * 1024


def _json_fault(body: bytes) -> tuple[str, str, str] | None:
    """What makes a JSON body unreadable before it is parsed (its detail, message and type), or None."""
    if json_depth(body) > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} arrays and objects", f"nested deeper than {MAX_DEPTH}", "too_deep"
    if lone_surrogate(body):
        return "a string holds a lone UTF-16 surrogate, which is no text", "a lone surrogate", "string_unicode"
    return None


class BoundBodies:
    """ASGI middleware: a body over its route's limit is refused with 413 (by its Content-Length when it has
    one, else by the bytes as they come), and a JSON body nested deeper than MAX_DEPTH with 422."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit(self, scope: Scope) -> tuple[int, bool]:
        """The route's limit in bytes, and whether its body streams through (uploads) or is read here first."""
        path = scope["path"]
        if scope["method"] == "POST":
            if UPLOADS.match(path):
                return self.settings.upload_max_bytes + FORM_SLACK, True
            if PRECINCTS.match(path):
                return self.settings.precinct_body_max_bytes, False
            if SYNC.match(path):
                return SYNC_MAX_BYTES, False
        return self.settings.json_max_bytes, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, streams = self.limit(scope)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").strip()
        if length.isdigit() and int(length) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        if streams:
            await self._stream(scope, receive, send, limit)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away: nothing to answer.
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        fault = _json_fault(body) if body and (b"json" in kind or not kind) else None
        if fault is not None:
            detail, message, kind_of = fault
            # The shape of a validation error (problems.validation_error), for the one field "body".
            response = problem(Request(scope), 422, "Invalid input", "invalid", f"body: {detail}",
                               errors=[{"field": "body", "message": message, "type": kind_of}])
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Pass the body through, counting; past the limit answer 413 and tell the route the client left."""
        size, refused, started = 0, False, False

        async def counted() -> Message:
            nonlocal size, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit and not started:
                    refused = True
                    await self._too_large(scope, receive, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer; the route's own (to a client it was told left) goes nowhere
            started = True
            await send(message)

        await self.app(scope, counted, sending)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem(Request(scope), 413, "Request too large", "too-large",
                           f"The request body is over this route's limit of {limit} bytes.", limit=limit)
        await response(scope, receive, send)
