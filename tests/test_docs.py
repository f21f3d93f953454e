"""The docs pages work offline: /docs (Swagger UI) and /redoc (ReDoc) load only files the app serves, under a
policy that names no other host; loaded in headless Chromium with every other host cut off, each lists every
operation of the served contract."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
from httpx import ASGITransport, AsyncClient
from playwright.async_api import Browser, Page, Request, Route, async_playwright, expect

from app.config import Settings
from app.main import create_app
from app.routers.headers import DOCS_POLICY
from tests.conftest import upgrade
from tests.factories import SECRET
from tests.sync.test_durability import serving
from tests.test_errors import assert_problem
from tests.test_privacy import SECURITY, assert_secured

PAGES = ["/docs", "/redoc"]
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
# Debian's, as .ci/run installs it: `playwright install` would download a browser build from elsewhere.
CHROMIUM = Path("/usr/bin/chromium")
# A name for the server that isn't loopback, as a deployment's: Swagger UI, for one, asks nothing of
# validator.swagger.io for a spec on localhost, so only under another name would such a request show.
HOST = "docs.doorstep.test"
# The one thing ReDoc's bundle asks for from elsewhere, its attribution's logo, always, with no option to turn
# it off; the page's policy refuses it before any request is made, and ReDoc then shows the words alone.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
# Both pages render the whole contract at once, on two cores shared with the rest of the suite.
LOADING_MS = 60_000
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
async def docs_client() -> AsyncIterator[AsyncClient]:
    """The app over HTTP without its lifespan: the docs pages touch no database."""
    app = create_app(Settings(jwt_secret=SECRET, _env_file=None))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        yield client


def policy(response: httpx.Response) -> dict[str, list[str]]:
    """The Content-Security-Policy of `response`, each directive's sources by its name."""
    directives = [part.split() for part in response.headers["content-security-policy"].split(";")]
    return {name: sources for name, *sources in directives}


def loads(page: str) -> list[str]:
    """Every URL a page names for its browser to load or start from: scripts, stylesheets, icons, the spec."""
    return re.findall(r'\b(?:src|href|spec-url|data-openapi-url)="([^"]*)"', page)


class TestPages:
    @pytest.mark.parametrize("page", PAGES)
    async def test_a_page_names_only_the_apps_own_files(self, docs_client, page):
        r = await docs_client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = loads(r.text)
        assert "/openapi.json" in urls and any("/docs/assets/" in url for url in urls), urls
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
        # No inline script: each script is a file.
        assert re.findall(r"<script\b[^>]*>", r.text) == [f'<script src="{url}">' for url in re.findall(
            r'<script src="([^"]+)">', r.text)], r.text

    @pytest.mark.parametrize("page", PAGES)
    async def test_the_policy_allows_this_origin_only(self, docs_client, page):
        r = await docs_client.get(page)
        for name, value in SECURITY.items():
            assert r.headers[name] == value
        assert r.headers["content-security-policy"] == DOCS_POLICY
        directives = policy(r)
        assert directives["default-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
        assert directives["script-src"] == ["'self'"]
        # Keywords and schemes of the page's own making (data: images, a blob: worker): no host, no wildcard.
        sources = {source for values in directives.values() for source in values}
        assert sources <= {"'none'", "'self'", "'unsafe-inline'", "data:", "blob:"}, sources

    @pytest.mark.parametrize("page", PAGES)
    async def test_each_file_comes_with_its_media_type_and_is_kept_a_year(self, docs_client, page):
        r = await docs_client.get(page)
        for url in loads(r.text):
            if not url.startswith("/docs/assets/"):
                continue
            asset = await docs_client.get(url, headers={"Accept-Encoding": "identity"})
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].split(";")[0] == MEDIA_TYPES[Path(url).suffix], url
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert_secured(asset)
            gzipped = await docs_client.get(url, headers={"Accept-Encoding": "gzip"})
            assert gzipped.content == asset.content and "accept-encoding" in gzipped.headers["vary"].lower()
            if len(asset.content) > 10_000 and url.endswith((".js", ".css")):
                assert gzipped.headers["content-encoding"] == "gzip"
                assert int(gzipped.headers["content-length"]) < len(asset.content) / 2

    async def test_the_files_are_the_packages_own(self, docs_client):
        page = (await docs_client.get("/docs")).text
        bundle = next(url for url in loads(page) if "/swagger-ui-bundle." in url)
        served = (await docs_client.get(bundle)).content
        assert served == (files("fastapi_offline") / "static" / "swagger-ui-bundle.js").read_bytes()
        page = (await docs_client.get("/redoc")).text
        redoc = next(url for url in loads(page) if "/redoc.standalone." in url)
        served = (await docs_client.get(redoc)).content
        assert served == (files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()

    @pytest.mark.parametrize("path", [
        "/docs/assets/nothing.js",
        "/docs/assets/swagger-ui-bundle.js",  # the package's file, but not by a name the app serves it under
        "/docs/assets/..%2F..%2Fmain.py",
        "/docs/assets/%2e%2e/%2e%2e/config.py",
        "/docs/assets/",
        "/docs/oauth2-redirect",  # for flows that redirect: the API's log-in is the password flow
    ])
    async def test_any_other_path_is_not_found(self, docs_client, path):
        r = await docs_client.get(path)
        assert_problem(r, 404)
        assert_secured(r)


def operations(spec: dict) -> list[dict]:
    return [op for ops in spec["paths"].values() for method, op in ops.items() if method in METHODS]


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, dict, Browser]]:
    """uvicorn serving the app on loopback, as deployed (from an empty database of its own: the docs read none),
    its contract as it serves it, and Debian's Chromium, headless."""
    folder = tmp_path_factory.mktemp("docs")
    url = f"sqlite+aiosqlite:///{folder}/docs.db"
    await upgrade(url)
    async with serving(url, folder, process=False) as server, async_playwright() as playwright:
        async with AsyncClient(base_url=server.base) as client:
            spec = (await client.get("/openapi.json")).json()
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[f"--host-resolver-rules=MAP {HOST} 127.0.0.1"])
        try:
            yield f"http://{HOST}:{server.port}", spec, browser
        finally:
            await browser.close()


class Visit:
    """A page loaded with every host but the server's cut off. Of its requests to other hosts: `asked`, every one
    the page made; `sent`, those that got past its policy towards the network (each then aborted); `refused`,
    those its policy stopped in the browser. And its script errors."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base = page, base
        self.asked: list[str] = []
        self.sent: list[str] = []
        self.refused: list[str] = []
        self.errors: list[Exception] = []

    def ours(self, url: str) -> bool:
        return url.startswith((f"{self.base}/", "data:", "blob:"))

    async def settled(self) -> None:
        """Wait until nothing has gone over the network for half a second: anything the page would ask for once
        rendered (a badge, a logo) has been asked by then."""
        await self.page.wait_for_load_state("networkidle")


@asynccontextmanager
async def offline(browser: Browser, base: str, path: str) -> AsyncIterator[Visit]:
    """`path` in a fresh browser context where a request to any host but the server's is aborted and noted."""
    context = await browser.new_context()
    try:
        visit = Visit(await context.new_page(), base)

        async def only_the_server(route: Route) -> None:
            if visit.ours(route.request.url):
                await route.continue_()
            else:
                visit.sent.append(route.request.url)
                await route.abort("blockedbyclient")

        def failed(request: Request) -> None:
            if not visit.ours(request.url) and request.failure == "csp":
                visit.refused.append(request.url)

        await context.route("**/*", only_the_server)
        visit.page.on("request", lambda request: None if visit.ours(request.url) else visit.asked.append(request.url))
        visit.page.on("requestfailed", failed)
        visit.page.on("pageerror", lambda error: visit.errors.append(error))
        await visit.page.goto(f"{base}{path}")
        yield visit
    finally:
        await context.close()


def sync_operation(spec: dict) -> dict:
    """The operation phones sync through (summary `Sync Knocks`), as the served contract has it."""
    return next(op for path, ops in spec["paths"].items() if path.endswith("/sync")
                for method, op in ops.items() if method == "post")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed: .ci/run installs it")
class TestInTheBrowser:
    async def test_swagger_ui_lists_every_operation_asking_nothing_of_another_host(self, served):
        base, spec, browser = served
        async with offline(browser, base, "/docs") as visit:
            page = visit.page
            await expect(page.locator(".opblock")).to_have_count(len(operations(spec)), timeout=LOADING_MS)
            summary = sync_operation(spec)["summary"]
            await expect(page.locator(".opblock-summary-description").get_by_text(summary, exact=True)).to_be_visible()
            await visit.settled()
            assert not visit.asked and not visit.errors, (visit.asked, visit.errors)

    async def test_redoc_lists_every_operation_sending_nothing_to_another_host(self, served):
        base, spec, browser = served
        async with offline(browser, base, "/redoc") as visit:
            page = visit.page
            await expect(page.locator("[data-section-id^='operation/']")).to_have_count(
                len(operations(spec)), timeout=LOADING_MS)
            sync = sync_operation(spec)
            await expect(page.locator(f"[data-section-id='operation/{sync['operationId']}'] h2")).to_have_text(
                sync["summary"])
            await visit.settled()
            assert not visit.sent and not visit.errors, (visit.sent, visit.errors)
            assert set(visit.asked) <= {REDOC_LOGO} and visit.refused == visit.asked, (visit.asked, visit.refused)
