"""GeoJSON FeatureCollections that GIS programs read whole: every feature, streamed a page at a time, with Range.

GDAL (QGIS, ogr2ogr, pyogrio) reads an http URL through /vsicurl/: a HEAD for the size, then GETs of growing byte
ranges (16 KB, 32 KB, 64 KB, ...). It refuses a server that answers those with the whole body ("Range downloading
not supported by this server") and can't open one that gives no size. So a collection answers:

- GET: streamed, one query a page, gzipped at a fast level for a client that accepts it; `Accept-Ranges: bytes`.
- HEAD (with no gzip asked): the collection written through and counted, for its `Content-Length`.
- GET with `Range: bytes=a-b`: the collection written up to b, those bytes in a 206 (never compressed); past its end
  or unreadable, a 416 problem. `bytes=a-` and `bytes=-n` (and a span of 16 MiB or more) read the collection once
  and hold what they ask for, so their bytes and the length they give agree; past 16 MiB, the whole collection. A
  range of several parts, or with `If-Range` (the API's tags are weak, which If-Range never matches), gets the
  whole collection.

A collection's bytes are the same on every request while its rows stand (read in key order, written by one
encoder), so the ranges of several requests fit together; a change between them (progress moves as knocks come
in) can tear the copy, as a file rewritten under a reader would.
"""

import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Any

import anyio
import orjson
from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import RangeNotSatisfiable
from app.routers.responses import FAST_LEVEL, GEOJSON, THREAD_MIN, accepts_gzip, fast_compressed, next_link

# Features, written one after another with commas between (`written`), and the key of the page after them (None
# on the last).
Page = tuple[bytes, Any]
# A range's bytes are held to be sent with their length; a wider range is counted first, then streamed.
RANGE_BUFFER = 16 * 1024 * 1024
BYTES = re.compile(r"\s*bytes\s*=\s*(\d{0,18})\s*-\s*(\d{0,18})\s*", re.IGNORECASE)

# What `limit` means to a list that answers GeoJSON too.
WHOLE = ("Rows a page (JSON: 100 if not given). GeoJSON without it is the whole list, every feature in one "
         "collection, streamed.")
# Declared on the routes that answer so: a range of the collection, or a range that can't be served.
RANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    206: {"description": "The bytes of the GeoJSON FeatureCollection a `Range: bytes=first-last` asked for, with "
                         "`Content-Range`.", "content": {GEOJSON: {"schema": {"type": "string"}}}},
    416: {"description": "The `Range` lies past the collection's end (`Content-Range: bytes */length`) or isn't "
                         "a byte range."},
}


def as_feature(feature_id: Any, geometry: str, properties: dict[str, Any],
               bbox: list[float] | None = None) -> dict[str, Any]:
    """A GeoJSON Feature with its id, its geometry as stored GeoJSON text, and its properties."""
    body: dict[str, Any] = {"type": "Feature", "id": feature_id}
    if bbox is not None:
        body["bbox"] = bbox
    body["geometry"] = orjson.Fragment(geometry)
    body["properties"] = properties
    return body


def written(features: list[dict[str, Any]]) -> bytes:
    """Features as a page of a collection: one after another, commas between (one encoder call a page)."""
    return orjson.dumps(features)[1:-1]


def in_sessions(request: Request,
                read: Callable[[AsyncSession, Any], Awaitable[Page]]) -> Callable[[Any], Awaitable[Page]]:
    """`read` of the page after a key, each in a session of its own: a slow reader holds no connection between
    pages."""
    maker = request.app.state.sessionmaker

    async def more(after: Any) -> Page:
        async with maker() as session:
            return await read(session, after)
    return more


async def listing(request: Request, session: AsyncSession, page: tuple[Sequence[Any], str | None], *, whole: bool,
                  features: Callable[[Sequence[Any]], bytes],
                  more: Callable[[AsyncSession, str], Awaitable[tuple[Sequence[Any], str | None]]]) -> Response:
    """A paged list's rows as GeoJSON Features (`features` writes them). With `whole`, every row from `page` on,
    `more` reading the page after a cursor; else that one page, with its `next_cursor` member and
    `Link: rel="next"`."""
    rows, cursor = page
    if not whole:
        return await answer(request, Collection((features(rows), None), **({"next_cursor": cursor} if cursor else {})),
                            headers=next_link(request, cursor))

    async def read(reader: AsyncSession, after: Any) -> Page:
        rows, then = await more(reader, after)
        return features(rows), then
    collection = Collection((features(rows), cursor), in_sessions(request, read))
    if not collection.whole:
        await session.close()  # the pages after are read in sessions of their own
    return await answer(request, collection)


class Collection:
    """A FeatureCollection to write: its first page, how to read the next ones, and foreign members to end it
    with (RFC 7946 section 6.1)."""

    def __init__(self, first: Page, more: Callable[[Any], Awaitable[Page]] | None = None,
                 **members: Any) -> None:
        self.first, self.more, self.members = first, more, members

    @property
    def whole(self) -> bool:
        """Whether the first page is all of it."""
        return self.more is None or self.first[1] is None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The collection's bytes, a page of features at a time; each call reads it anew."""
        yield b'{"type":"FeatureCollection","features":['
        features, after = self.first
        comma = b""
        while True:
            if features:
                yield comma + features
                comma = b","
            if after is None or self.more is None:
                break
            features, after = await self.more(after)
        yield b"]" + b"".join(b"," + orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in self.members.items()) + b"}"


def byte_range(request: Request) -> tuple[int | None, int | None] | None:
    """The one byte range `Range` asks for, as (first, last), (None, suffix length) or (first, None); None for
    the whole answer. Raises RangeNotSatisfiable for a bytes range that can't be read."""
    header = request.headers.get("range")
    if header is None or "if-range" in request.headers:
        return None
    unit = header.split("=", 1)[0].strip().lower()
    if unit != "bytes" or "," in header:
        return None  # another unit, or several ranges: RFC 9110 lets a server send the whole answer
    match = BYTES.fullmatch(header)
    if match is None or not (match[1] or match[2]) or (match[1] and match[2] and int(match[2]) < int(match[1])):
        raise RangeNotSatisfiable(f"Range {header[:100]!r} is no byte range this answer can serve; send "
                                  "bytes=first-last, bytes=first- or bytes=-length.")
    return (int(match[1]) if match[1] else None), (int(match[2]) if match[2] else None)


async def answer(request: Request, collection: Collection, *, headers: dict[str, str] | None = None) -> Response:
    """The collection as the request asks for it: streamed, counted for a HEAD, or a range of it. One page is
    written at once, gzipped fast (app.routers.responses), with its length."""
    headers = {**(headers or {}), "Accept-Ranges": "bytes"}
    wanted = byte_range(request)
    if collection.whole:
        body = b"".join([chunk async for chunk in collection.chunks()])
        if wanted is None:
            return await fast_compressed(request, body, media_type=GEOJSON, headers=headers)
        first, last = _within(wanted, len(body))
        headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
        return Response(body[first:last + 1], status_code=206, media_type=GEOJSON, headers=headers)
    if wanted is not None and (ranged := await _ranged(collection, wanted, headers)) is not None:
        return ranged
    gzip = accepts_gzip(request)
    headers["Vary"] = "Accept-Encoding"
    if request.scope.get("state", {}).get("head") and not gzip:
        headers["Content-Length"] = str(await _length(collection))
        # Streamed, as the GET is (so the ETag middleware leaves its length alone); HEAD sends no body.
        return StreamingResponse(_nothing(), media_type=GEOJSON, headers=headers)
    if gzip:
        headers["Content-Encoding"] = "gzip"
        return StreamingResponse(_gzipped(collection.chunks()), media_type=GEOJSON, headers=headers)
    return StreamingResponse(collection.chunks(), media_type=GEOJSON, headers=headers)


async def _nothing() -> AsyncIterator[bytes]:
    yield b""


async def _length(collection: Collection) -> int:
    total = 0
    async for chunk in collection.chunks():
        total += len(chunk)
    return total


async def _gzipped(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    compressor = zlib.compressobj(FAST_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    async with aclosing(chunks):
        async for chunk in chunks:
            # A big page compresses in a worker thread, so the event loop goes on serving.
            out = (await anyio.to_thread.run_sync(compressor.compress, chunk) if len(chunk) >= THREAD_MIN
                   else compressor.compress(chunk))
            if out:
                yield out
    yield compressor.flush()


async def _ranged(collection: Collection, wanted: tuple[int | None, int | None],
                  headers: dict[str, str]) -> Response | None:
    """A 206 of the range, from one read of the collection (so its bytes and its length agree); None for a range
    too wide to hold, which gets the whole collection (RFC 9110 §14.2 lets a server ignore Range)."""
    first, last = wanted
    if first is not None and last is not None and last - first < RANGE_BUFFER:
        # GDAL's case: read up to `last` and no further; the length is known only if the collection ends there.
        part, total = await _slice(collection, first, last)
        if total is not None and first >= total:
            raise _past(total)
        shown = "*" if total is None else str(total)
        headers |= {"Content-Range": f"bytes {first}-{first + len(part) - 1}/{shown}"}
        return Response(part, status_code=206, media_type=GEOJSON, headers=headers)
    held = await _tail(collection, wanted)
    if held is None:
        return None
    part, total = held
    first, last = _within(wanted, total)
    headers |= {"Content-Range": f"bytes {first}-{last}/{total}"}
    return Response(part[:last - first + 1], status_code=206, media_type=GEOJSON, headers=headers)


async def _tail(collection: Collection, wanted: tuple[int | None, int | None]) -> tuple[bytes, int] | None:
    """The bytes from a range's start (or its last `n`: `bytes=-n`) to the collection's end, and its length, in
    one read; None once they pass RANGE_BUFFER."""
    first, suffix = wanted if wanted[0] is None else (wanted[0], None)
    if suffix is not None and suffix > RANGE_BUFFER:
        return None
    held, offset = bytearray(), 0
    async with aclosing(collection.chunks()) as chunks:
        async for chunk in chunks:
            if suffix is not None:
                held += chunk
                del held[:max(0, len(held) - suffix)]
            else:
                held += chunk[max(0, first - offset):]
                if len(held) > RANGE_BUFFER:
                    return None
            offset += len(chunk)
    return bytes(held), offset


def _within(wanted: tuple[int | None, int | None], total: int) -> tuple[int, int]:
    """The first and last byte a range asks for of `total`. Raises RangeNotSatisfiable past the end."""
    first, last = wanted
    if first is None:
        if not last:
            raise _past(total)
        return max(0, total - last), total - 1
    if first >= total:
        raise _past(total)
    return first, total - 1 if last is None else min(last, total - 1)


def _past(total: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(f"The range starts past the answer's end: it is {total} bytes.", length=total)


async def _slice(collection: Collection, first: int, last: int) -> tuple[bytes, int | None]:
    """Bytes `first` to `last` of the collection, and its length if it ends by then (None if it goes on)."""
    held, offset = [], 0
    async with aclosing(collection.chunks()) as chunks:
        async for chunk in chunks:
            if offset > last:
                return b"".join(held), None
            held.append(chunk[max(0, first - offset):max(0, last + 1 - offset)])
            offset += len(chunk)
    return b"".join(held), offset
