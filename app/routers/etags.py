"""An ETag on every GET, and a 304 when the caller's copy is current (RFC 9110 §8.8.3, §13.1.2).

Routes that can tell cheaply whether their answer moved (progress, walk lists) set their own ETag and answer the
304 before doing the work; this middleware tags the rest by their body. It buffers a 200 answer to a GET that
carries no ETag, hashes it, and answers `If-None-Match` naming that hash with a 304 and no body. The tag is weak:
it is made of the identity body, and compression changes the bytes, not the meaning.
"""

import hashlib

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.routers.headers import CACHE_CONTROL
from app.routers.responses import COMPRESS_MIN, etag_matches

# A body is held to be hashed up to this size; a streamed one that grows past it goes on untagged as it comes.
BUFFER_MAX = 4 * 1024 * 1024
# Above this, the hash runs in a worker thread so the event loop goes on serving.
THREAD_MIN = 1024 * 1024
# What a 304 repeats of the 200 it stands for (RFC 9110 §15.4.5); the security headers are added outside.
KEPT = frozenset({b"etag", b"cache-control", b"vary", b"content-location", b"expires", b"date"})
STREAMED = "etag_streamed"


def tag_streamed(request: Request) -> None:
    """Let the middleware hold this route's streamed answer, up to BUFFER_MAX, to tag it: for a stream that streams
    to bound its memory (an export), not one to be read while it lasts. Other streamed answers pass untouched."""
    request.state.etag_streamed = True


def _etag(media_type: bytes, body: bytes) -> str:
    digest = hashlib.blake2b(media_type + b"\n", digest_size=16)
    digest.update(body)
    return f'W/"{digest.hexdigest()}"'


class ETags:
    """ASGI middleware: an ETag of the body on a GET's 200 that has none, and a 304 for an `If-None-Match` that
    names it. Inside the compression, so the tag is the identity body's. Passed through untouched: other methods
    and statuses, answers with an ETag of their own, event streams, streams that didn't ask to be held
    (`tag_streamed`), and bodies that grow past `buffer_max`."""

    def __init__(self, app: ASGIApp, *, buffer_max: int = BUFFER_MAX, compress_min: int = COMPRESS_MIN) -> None:
        self.app = app
        self.buffer_max = buffer_max
        # The compression's minimum: a 200 that big says it varies on Accept-Encoding, so its 304 says it too.
        self.compress_min = compress_min

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        held: list[bytes] = []
        size = 0
        passing = False

        async def release(message: Message) -> None:
            """Stop holding: what was held goes, then `message`, and everything after as it comes."""
            nonlocal passing
            passing = True
            if start is not None:
                await send(start)
            if held:
                await send({"type": "http.response.body", "body": b"".join(held), "more_body": True})
                held.clear()
            await send(message)

        async def tagging(message: Message) -> None:
            nonlocal start, size
            if passing:
                await send(message)
            elif message["type"] == "http.response.start":
                headers = Headers(raw=message.get("headers", []))
                if (message["status"] != 200 or "etag" in headers
                        or headers.get("content-type", "").startswith("text/event-stream")):
                    await release(message)
                else:
                    start = message
            elif message["type"] != "http.response.body" or start is None:
                await release(message)
            else:
                body, more = message.get("body", b""), message.get("more_body", False)
                if more and not held and not scope.get("state", {}).get(STREAMED):
                    await release(message)  # a stream, as it comes
                    return
                if more and size + len(body) > self.buffer_max:
                    await release(message)  # too big to hold: untagged, as it comes
                    return
                held.append(body)
                size += len(body)
                if not more:
                    await self._answer(scope, start, b"".join(held), send)

        await self.app(scope, receive, tagging)

    async def _answer(self, scope: Scope, start: Message, body: bytes, send: Send) -> None:
        """The held answer, tagged; or a 304 in its stead when the caller has it."""
        raw = list(start.get("headers", []))
        headers = MutableHeaders(raw=raw)
        media_type = headers.get("content-type", "").encode()
        etag = (await anyio.to_thread.run_sync(_etag, media_type, body) if len(body) >= THREAD_MIN
                else _etag(media_type, body))
        headers["ETag"] = etag
        if "cache-control" not in headers:
            headers["Cache-Control"] = CACHE_CONTROL
        if etag_matches(Request(scope), etag):
            kept = MutableHeaders(raw=[(name, value) for name, value in raw if name.lower() in KEPT])
            if len(body) >= self.compress_min and "content-encoding" not in headers:
                kept.add_vary_header("Accept-Encoding")
            await send({"type": "http.response.start", "status": 304, "headers": kept.raw})
            await send({"type": "http.response.body", "body": b""})
            return
        headers["Content-Length"] = str(len(body))  # a held stream's length is known now
        await send({**start, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body})
