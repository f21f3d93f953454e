"""Security headers on every answer: the browser may not sniff, frame, refer or run anything it isn't told to, nor
keep an answer for anyone but its caller."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings

# API answers are data, never a page: nothing in one may load, run or be framed.
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
# The docs pages (app/routers/docs.py) load only what the app serves, and start from files, not inline scripts.
# Styles may be inline: ReDoc's styled components write <style> elements as it runs (and FastAPI's ReDoc page
# holds one), and a style can't run code. ReDoc runs its search in a blob: worker.
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "connect-src 'self'; worker-src blob:; frame-ancestors 'none'")
# Their assets (/docs/assets/...) are no page: the API's policy does for them.
CACHE_CONTROL = "private, no-cache"
DOCS_PATHS = frozenset({"/docs", "/redoc"})


def headers_for(path: str, settings: Settings) -> dict[str, str]:
    """The security headers of an answer to `path`."""
    headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
               "Content-Security-Policy": DOCS_POLICY if path in DOCS_PATHS else API_POLICY,
               # Every answer is the caller's own (their role, their turfs): kept for them only, asked for again.
               "Cache-Control": CACHE_CONTROL}
    if settings.hsts_max_age_s > 0:
        # Only behind TLS: a browser that saw it refuses plain HTTP to this host for that long.
        headers["Strict-Transport-Security"] = f"max-age={settings.hsts_max_age_s}; includeSubDomains"
    return headers


class SecurityHeaders:
    """ASGI middleware: adds the security headers to every HTTP answer (streamed and gzipped ones too), unless
    the route set one itself."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [(name.lower().encode(), value.encode())
                 for name, value in headers_for(scope["path"], self.settings).items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = _one_vary(message.get("headers", []), accept=scope.get("state", {}).get(
                    "varies_on_accept", False))
                present = {name.lower() for name, _ in headers}
                message["headers"] = [*headers, *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _one_vary(headers: list[tuple[bytes, bytes]], *, accept: bool) -> list[tuple[bytes, bytes]]:
    """`headers` with one `Vary` naming each header once: compression (the route's own, GZipMiddleware's) adds
    Accept-Encoding, content negotiation Accept (`accept`)."""
    names: dict[bytes, bytes] = {}
    for name, value in headers:
        if name.lower() == b"vary":
            names |= {v.strip().lower(): v.strip() for v in value.split(b",") if v.strip()}
    if accept:
        names.setdefault(b"accept", b"Accept")
    if not names:
        return headers
    return [*((n, v) for n, v in headers if n.lower() != b"vary"), (b"vary", b", ".join(names.values()))]
