"""Responses the routers share: pages with a next cursor, GeoJSON by content negotiation, uploads."""

import shutil
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response, UploadFile
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from app.errors import TooLarge, UnsupportedMedia
from app.schemas import FeatureCollection

GEOJSON = "application/geo+json"


def wants_geojson(request: Request) -> bool:
    """True when the caller asks for GeoJSON, by Accept header or `?format=geojson`. Either way the answer now
    depends on Accept, which its `Vary` says (app/routers/headers.py)."""
    if request.url.path.endswith(".geojson"):
        return True  # a list's GeoJSON twin (`geojson_twin`): GeoJSON whatever Accept says
    request.state.varies_on_accept = True
    return request.query_params.get("format") == "geojson" or GEOJSON in request.headers.get("accept", "")


class GeoJSONAnswer(JSONResponse):
    media_type = GEOJSON


def geojson_twin(router: APIRouter, path: str, endpoint: Callable[..., Any], *, name: str, of: str,
                 openapi_extra: dict[str, Any], responses: dict[int | str, dict[str, Any]] | None = None) -> None:
    """The GeoJSON of a list (`endpoint`, which answers it to `wants_geojson`) as an operation of its own at
    `path` (`.../turfs.geojson`): generated clients type an answer by one media type, so a list that answers JSON
    or GeoJSON by negotiation is only ever parsed as JSON; and a GIS program opens this URL with no header."""
    router.add_api_route(path, endpoint, methods=["GET"], name=name, response_model=FeatureCollection,
                         response_class=GeoJSONAnswer, responses=responses, openapi_extra=openapi_extra,
                         summary=name.replace("_", " ").capitalize().replace("geojson", "GeoJSON"),
                         description=f"{of} as a GeoJSON FeatureCollection: the same as `GET {of}` with "
                                     "`Accept: application/geo+json`.")


def etag_matches(request: Request, etag: str) -> bool:
    """True when `If-None-Match` names `etag` (or is `*`): the caller's copy is current. The comparison is weak
    (RFC 9110 §13.1.2): `W/"x"` and `"x"` match."""
    header = request.headers.get("if-none-match", "")
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return header.strip() == "*" or etag.removeprefix("W/") in tags


# Big answers polled live (progress for a whole city) are compressed fast rather than small: zlib's level 1 takes a
# twelfth of the time of the app-wide level 9 on a city's GeoJSON, for about a third more bytes.
FAST_LEVEL = 1
# Smaller bodies aren't worth compressing (the app-wide GZipMiddleware's minimum too).
COMPRESS_MIN = 1000
# Above this, compression runs in a worker thread so the event loop goes on serving.
THREAD_MIN = 128 * 1024


def _gzip(body: bytes) -> bytes:
    compressor = zlib.compressobj(FAST_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


def accepts_gzip(request: Request | Scope) -> bool:
    """Whether `Accept-Encoding` takes gzip: named, or `*`, with a weight above 0 (RFC 9110 §12.5.3). By hand: a
    few lines, where Starlette's own test (`"gzip" in header`) takes `gzip;q=0` for a yes."""
    headers = request.headers if isinstance(request, Request) else Headers(scope=request)
    weights: dict[str, float] = {}
    for part in headers.get("accept-encoding", "").lower().split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        weight = next((p[2:] for p in params if p.startswith("q=")), "1")
        try:
            weights[coding] = float(weight)
        except ValueError:
            weights[coding] = 0.0
    return weights.get("gzip", weights.get("*", 0.0)) > 0


async def fast_compressed(request: Request, body: bytes, *, media_type: str, headers: dict[str, str]) -> Response:
    """`body` as a response, gzipped at a fast level for a client that accepts gzip (GZipMiddleware leaves an
    encoded response alone)."""
    headers = {**headers, "Vary": "Accept-Encoding"}
    if len(body) >= COMPRESS_MIN and accepts_gzip(request):
        body = await anyio.to_thread.run_sync(_gzip, body) if len(body) >= THREAD_MIN else _gzip(body)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=media_type, headers=headers)


def next_link(request: Request, next_cursor: str | None) -> dict[str, str]:
    """The RFC 8288 `Link: rel="next"` header of a page whose list goes on at `next_cursor` (none on the last)."""
    if not next_cursor:
        return {}
    return {"Link": f'<{request.url.include_query_params(cursor=next_cursor)}>; rel="next"'}


def link_next(request: Request, response: Response, next_cursor: str | None) -> None:
    response.headers.update(next_link(request, next_cursor))


# What a list of precincts or turfs answers besides its JSON: a FeatureCollection when asked.
GEOJSON_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {GEOJSON: {"schema": {"$ref": "#/components/schemas/FeatureCollection"}}},
          "description": "JSON, or a GeoJSON FeatureCollection when asked for `application/geo+json`."},
}


def geojson_format(format: Annotated[Literal["json", "geojson"] | None, Query(description=(
        "`geojson` for a GeoJSON FeatureCollection, as `Accept: application/geo+json` asks; for links and "
        "tools that can't set a header."))] = None) -> None:
    """A route dependency that puts `format` in the contract and refuses other values; `wants_geojson` reads it."""


class Gzip(GZipMiddleware):
    """Starlette's GZipMiddleware, for clients `accepts_gzip` says take gzip (not `gzip;q=0`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not accepts_gzip(scope):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class EventStream(StreamingResponse):
    """Server-Sent Events; `on_close` runs when the answer ends, however it ends (a HEAD's body never starts)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], status_code: int = 200, *,
                 on_close: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(content, status_code, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()


class CsvStream(StreamingResponse):
    media_type = "text/csv"


def require_json(request: Request) -> None:
    """A dependency for routes that read GeoJSON bodies: any other media type (an XML VRT, a form) gets 415."""
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in ("application/json", GEOJSON):
        raise UnsupportedMedia(f"The body is {media}; accepted: GeoJSON (application/json or {GEOJSON}).",
                               accepted=["GeoJSON"], field="body")


@asynccontextmanager
async def uploaded_file(upload: UploadFile, *, max_bytes: int) -> AsyncIterator[Path]:
    """The upload saved to a temporary file. Raises TooLarge.

    The caller's file name is not kept: the format is told by content (app/sources.py), never by a name.
    """
    with tempfile.TemporaryDirectory(prefix="doorstep-upload-") as folder:
        path = Path(folder) / "upload"
        written = 0
        with path.open("wb") as out:
            while chunk := await upload.read(1 << 20):
                written += len(chunk)
                if written > max_bytes:
                    raise TooLarge(f"The file is over the limit of {max_bytes} bytes.", limit=max_bytes)
                out.write(chunk)
        yield path
        shutil.rmtree(folder, ignore_errors=True)
