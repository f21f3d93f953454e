"""Responses the routers share: pages with a next cursor, GeoJSON by content negotiation, uploads."""

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request, Response, UploadFile

from app.errors import TooLarge

GEOJSON = "application/geo+json"


def wants_geojson(request: Request) -> bool:
    """True when the caller asks for GeoJSON, by Accept header or `?format=geojson`."""
    return request.query_params.get("format") == "geojson" or GEOJSON in request.headers.get("accept", "")


def etag_matches(request: Request, etag: str) -> bool:
    """True when `If-None-Match` names `etag` (or is `*`): the caller's copy is current."""
    header = request.headers.get("if-none-match", "")
    return header.strip() == "*" or etag in [t.strip() for t in header.split(",")]


def link_next(request: Request, response: Response, next_cursor: str | None) -> None:
    if next_cursor:
        url = request.url.include_query_params(cursor=next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'


def geojson_response(collection: dict[str, Any], request: Request, next_cursor: str | None = None) -> Response:
    if next_cursor:
        collection["next_cursor"] = next_cursor  # a foreign member, allowed by RFC 7946 section 6.1
    response = Response(orjson.dumps(collection), media_type=GEOJSON)
    link_next(request, response, next_cursor)
    return response


GEOJSON_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {GEOJSON: {"schema": {"type": "object", "description": "An RFC 7946 FeatureCollection."}}},
          "description": "JSON, or a GeoJSON FeatureCollection when asked for `application/geo+json`."},
}


@asynccontextmanager
async def uploaded_file(upload: UploadFile, *, max_bytes: int) -> AsyncIterator[Path]:
    """The upload saved to a temporary file keeping its suffix (OGR picks the format by it). Raises TooLarge."""
    suffix = Path(upload.filename or "upload.csv").suffix or ".csv"
    with tempfile.TemporaryDirectory(prefix="doorstep-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        written = 0
        with path.open("wb") as out:
            while chunk := await upload.read(1 << 20):
                written += len(chunk)
                if written > max_bytes:
                    raise TooLarge(f"The file is over the limit of {max_bytes} bytes.", limit=max_bytes)
                out.write(chunk)
        yield path
        shutil.rmtree(folder, ignore_errors=True)
