"""HEAD on every GET route: the GET's status and headers, no body (RFC 9110 §9.3.2). GIS readers (GDAL's
/vsicurl/) and caches ask HEAD first; FastAPI routes answer only the methods they declare."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _Done(Exception):
    """The answer's head has gone: the rest of the GET (a stream's events, for one) is not wanted."""


class HeadAsGet:
    """ASGI middleware: a HEAD runs as the GET it asks about; the head of the answer goes out, its body never.
    Outside the compression, so Content-Length, Content-Encoding and ETag are the GET's own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def head_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                raise _Done
        scope.setdefault("state", {})  # shared with the GET's scope: what routes note there, the outer layers read
        # A route that streams may count its body for a HEAD, to give its length (app/routers/features.py).
        scope["state"]["head"] = True
        try:
            await self.app({**scope, "method": "GET"}, receive, head_only)
        except* _Done:  # a streamed answer raises it from inside its task group
            pass
