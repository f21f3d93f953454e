"""A simulation run: the organizer's checks, the phones' two phases, and the server's count before and after."""

import asyncio
import json
import random
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from simulator.phone import Options, Phone
from simulator.report import summarise
from simulator.wire import BadInput, SimulationFailed, Wire, problem

DEMO_CREDENTIALS = Path(".doorstep-demo.json")


def resolve_password(email: str, given: str | None, saved: Path = DEMO_CREDENTIALS) -> str:
    """The organizer's password: the one given, else the one `doorstep demo` saved. Raises BadInput."""
    if given:
        return given
    if saved.exists():
        try:
            found = json.loads(saved.read_text()).get(email)
        except (ValueError, AttributeError) as exc:
            raise BadInput(f"{saved} is not the JSON object `doorstep demo` writes; give --password") from exc
        if found:
            return str(found)
    raise BadInput(f"no password for {email}: give --password or set DOORSTEP_SIM_PASSWORD")


async def log_in(wire: Wire, url: str, email: str, password: str) -> str:
    """The organizer's token. Raises BadInput."""
    try:
        response = await wire.send("POST", "/v1/auth/token", data={"username": email, "password": password})
    except httpx.TransportError as exc:
        raise BadInput(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
    if response.status_code == 401:
        raise BadInput(f"{email} can't log in at {url}: {problem(response)}")
    if response.status_code != 200 or "access_token" not in response.text:
        raise BadInput(f"{url} doesn't answer as a Doorstep server: POST /v1/auth/token gave {problem(response)}")
    return str(response.json()["access_token"])


async def check_organizer(wire: Wire, token: str, email: str, campaign: str) -> None:
    """Raises BadInput unless `email` organizes `campaign`: only an organizer sees every turf."""
    me = (await wire.call("GET", "/v1/me", token=token)).json()
    roles = {m["campaign_id"]: m["role"] for m in me["memberships"]}
    if campaign not in roles:
        raise BadInput(f"{email} is no member of a campaign {campaign!r}")
    if roles[campaign] not in ("admin", "organizer"):
        raise BadInput(f"{email} is {roles[campaign]} in {campaign}; simulate needs an organizer or admin")


def spread(rng: random.Random, precincts: list[dict[str, Any]], n: int) -> list[tuple[float, float]]:
    """A point for each phone, inside precinct bounding boxes taken round the city in a shuffled order."""
    order = sorted(precincts, key=lambda p: p["id"])
    rng.shuffle(order)
    points = []
    for i in range(n):
        min_lon, min_lat, max_lon, max_lat = order[i % len(order)]["bbox"]
        points.append((rng.uniform(min_lon, max_lon), rng.uniform(min_lat, max_lat)))
    return points


async def simulate(options: Options) -> dict[str, Any]:
    """Play the phones against the server at `options.url`; what they sent, what it counted, and whether
    they agree. Raises BadInput for bad input, SimulationFailed when the server stops the phones."""
    password = resolve_password(options.organizer, options.password)
    run = secrets.token_hex(3)
    rng = random.Random(options.seed)
    limits = httpx.Limits(max_connections=2 * options.canvassers + 8, max_keepalive_connections=2 * options.canvassers)
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=options.url.rstrip("/"), timeout=60, limits=limits) as client:
        wire = Wire(client)
        token = await log_in(wire, options.url, options.organizer, password)
        await check_organizer(wire, token, options.organizer, options.campaign)
        home = f"/v1/campaigns/{options.campaign}"
        precincts = await wire.pages(f"{home}/precincts", token)
        if not precincts:
            raise BadInput(f"{options.campaign} has no precincts: load some and cut turfs first")
        before = {t["id"]: t["knocks"] for t in await wire.pages(f"{home}/turfs", token)}
        expires = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        # Room for retried sign-ups (a join whose answer was lost uses the code again); revoked at the end.
        join_code = (await wire.call("POST", f"{home}/join-codes", ok=(201,), token=token, json={
            "role": "canvasser", "expires_at": expires, "max_uses": 2 * options.canvassers})).json()
        code = join_code["code"]
        setup_s = time.perf_counter() - began

        started = time.time()
        phones = [Phone(n, options, run, code, point, wire, started)
                  for n, point in enumerate(spread(rng, precincts, options.canvassers))]
        # Two phases, like a canvass launch: everyone signs up and gets a turf, then everyone knocks; the
        # shift's figures are then sync's alone (sign-up hashes passwords, which is slow by design).
        phases: dict[str, dict[str, float]] = {}
        failures: list[BaseException] = []
        for phase in ("start", "shift"):
            began_phase, requests_before = time.perf_counter(), wire.requests
            results = await asyncio.gather(*(getattr(p, phase)() for p in phones), return_exceptions=True)
            phases[phase] = {"s": time.perf_counter() - began_phase, "requests": wire.requests - requests_before}
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                break
        try:
            await wire.call("DELETE", f"{home}/join-codes/{join_code['id']}", token=token)
        except SimulationFailed:
            if not failures:
                raise
        if failures:
            raise failures[0]  # what stopped the phones, not the clean-up after them
        after = {t["id"]: t["knocks"] for t in await wire.pages(f"{home}/turfs", token)}
        total_s = time.perf_counter() - began
    return summarise(options, run, phones, before, after, wire, setup_s=setup_s, phases=phases, total_s=total_s)
