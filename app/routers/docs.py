"""The API's documentation pages, Swagger UI at /docs and ReDoc at /redoc, with their scripts, styles and icon
served by the app from files installed with it (fastapi-offline's copies of swagger-ui-dist and of ReDoc's
standalone bundle): a page loads nothing from another origin, so it works offline, under a policy that names no
other (`DOCS_POLICY` in app/routers/headers.py)."""

import gzip
import hashlib
import html
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import PurePath

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse

from app.errors import NotFound
from app.routers.responses import COMPRESS_MIN, accepts_gzip

ASSETS = "/docs/assets"
# Each file is served under a name carrying a digest of its content, so a browser may keep it for a year: an
# upgrade changes the name, never the file behind a name.
CACHED = "public, max-age=31536000, immutable"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
VENDORED = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")

# Swagger UI's start. FastAPI's get_swagger_ui_html writes it as an inline script, which the docs' policy
# refuses, so /docs is a page of ours that loads it as a file. FastAPI's default parameters, and never a validator
# badge, whatever the layout (an image from validator.swagger.io, which would be told the spec's address).
SWAGGER_INIT = b"""window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.openapiUrl,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    source: str
    body: bytes
    # Compressed once: GZipMiddleware would compress a megabyte of script on the event loop at every request.
    gzipped: bytes | None
    media_type: str


@cache
def assets() -> dict[str, Asset]:
    """Every file the docs pages load, by the name it is served under (its own, with a digest inserted). Read and
    compressed on the first call: a process that never serves the docs never reads them."""
    vendored = files("fastapi_offline") / "static"
    bodies = {name: (vendored / name).read_bytes() for name in VENDORED} | {"swagger-init.js": SWAGGER_INIT}
    served = {}
    for source, body in bodies.items():
        path = PurePath(source)
        name = f"{path.stem}.{hashlib.sha256(body).hexdigest()[:16]}{path.suffix}"
        gzipped = gzip.compress(body, mtime=0) if path.suffix != ".png" and len(body) >= COMPRESS_MIN else None
        served[name] = Asset(source, body, gzipped, MEDIA_TYPES[path.suffix])
    return served


def _urls(request: Request) -> dict[str, str]:
    """The URL of each file the pages load, by its source name, and of the OpenAPI document (`openapi`), under
    the app's root path (a proxy's prefix), as FastAPI's own docs pages have them."""
    root = request.scope.get("root_path", "").rstrip("/")
    urls = {asset.source: f"{root}{ASSETS}/{name}" for name, asset in assets().items()}
    return urls | {"openapi": root + (request.app.openapi_url or "")}


# Plain functions: FastAPI runs them on its threads, so the first call's reading of the files (a few megabytes,
# hashed and compressed) never holds up the event loop.
@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI on the app's OpenAPI document."""
    urls = _urls(request)
    title = html.escape(f"{request.app.title} - Swagger UI")
    return HTMLResponse(f"""<!DOCTYPE html>
<html>
<head>
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link type="text/css" rel="stylesheet" href="{urls["swagger-ui.css"]}">
<link rel="shortcut icon" href="{urls["favicon.png"]}">
<title>{title}</title>
</head>
<body>
<div id="swagger-ui" data-openapi-url="{html.escape(urls["openapi"])}"></div>
<script src="{urls["swagger-ui-bundle.js"]}"></script>
<script src="{urls["swagger-init.js"]}"></script>
</body>
</html>
""")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc on the app's OpenAPI document."""
    urls = _urls(request)
    return get_redoc_html(openapi_url=urls["openapi"], title=f"{request.app.title} - ReDoc",
                          redoc_js_url=urls["redoc.standalone.js"], redoc_favicon_url=urls["favicon.png"],
                          with_google_fonts=False)


@router.get(ASSETS + "/{name}")
def asset(request: Request, name: str) -> Response:
    """One of the docs pages' files; any other name is not found (no name reaches the file system)."""
    found = assets().get(name)
    if found is None:
        raise NotFound(f"The docs have no file {name}.")
    headers = {"Cache-Control": CACHED, "Vary": "Accept-Encoding"}
    if found.gzipped is not None and accepts_gzip(request):
        return Response(found.gzipped, media_type=found.media_type, headers={**headers, "Content-Encoding": "gzip"})
    return Response(found.body, media_type=found.media_type, headers=headers)
