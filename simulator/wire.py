"""The simulator's HTTP client and its errors: it talks to the server over HTTP only, never through `app`."""

import asyncio
import time
from collections import defaultdict
from typing import Any

import httpx


class BadInput(Exception):
    """Options the run can't start with: no password, no server (or no Doorstep one) at the URL, an organizer who
    can't log in or doesn't organize the campaign, a campaign with no precincts. The command exits 2."""


class SimulationFailed(Exception):
    """The server answered in a way no phone can go on from: a refused batch, or errors past every retry."""


class Wire:
    """The HTTP client every phone shares, counting requests and timing them by endpoint."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.requests = 0
        self.errors = 0
        self.ms: dict[str, list[float]] = defaultdict(list)

    async def send(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """One request, timed by endpoint; transport errors propagate."""
        self.requests += 1
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = time.perf_counter()
        try:
            return await self.client.request(method, path, headers=headers, **kwargs)
        finally:
            self.ms[endpoint(method, path)].append((time.perf_counter() - started) * 1000)

    async def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), token: str | None = None,
                   **kwargs: Any) -> httpx.Response:
        """A request retried on transport errors and 5xx. Raises SimulationFailed on another status or when the
        retries run out."""
        failure = ""
        for attempt in range(4):
            try:
                response = await self.send(method, path, token=token, **kwargs)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in ok:
                    return response
                if response.status_code < 500:
                    raise SimulationFailed(f"{method} {path}: {problem(response)}")
                failure = problem(response)
            self.errors += 1
            await asyncio.sleep(0.2 * 2**attempt)
        raise SimulationFailed(f"{method} {path} failed 4 times; the last time: {failure}")

    async def pages(self, path: str, token: str) -> list[dict[str, Any]]:
        """Every item of a cursor-paginated list."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = (await self.call("GET", path, token=token, params=params)).json()
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items
            if cursor in seen:  # a server handing back a cursor twice would have this read forever
                raise SimulationFailed(f"GET {path} gave the cursor {cursor!r} twice")
            seen.add(cursor)


def endpoint(method: str, path: str) -> str:
    """A request's endpoint, with ids left out: `POST sync`, `GET walklist`."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    name = last.split(":")[-1] if ":" in last else (path.rsplit("/", 2)[-2] if last.isdigit() else last)
    return f"{method} {name}"


def problem(response: httpx.Response) -> str:
    """An error answer in a few words: its status and the problem's detail."""
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return f"{response.status_code} {detail or response.text[:200]}"
