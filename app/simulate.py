"""Phones played against a running server: the end-to-end check of sync, and its load test.

Each simulated phone joins the campaign with a join code, claims a turf, downloads its walk list and knocks its
doors offline by its own clock (most drift a little, some are an hour off, and with five phones or more one was
reset to 1970, which the server must flag). It uploads in batches the way phones on bad signal do: answers lost
and the batch sent again, a batch sent twice at once, batches held offline and sent out of order, batches cut
short and finished later. At the end what the phones sent is set against what the server counted: they agree,
or the run failed.

A shift of M minutes of phone time is played in seconds. The server takes only knocks made while the phone held
its turf (by its corrected clock), so a knock's time is a real instant between the claim and the upload of its
batch, by the phone's clock, spaced in proportion to the shift's phone minutes.
"""

import asyncio
import json
import random
import secrets
import statistics
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from app.errors import AppError, Forbidden, Invalid, NotFound, Unauthenticated
from app.sync.service import SUSPECT_OFFSET

DEMO_ORGANIZER = "organizer@cambridge.example"  # app.demo.USERS, whose passwords `doorstep demo` saves
DEMO_CREDENTIALS = Path(".doorstep-demo.json")
# Phones' local zones: the offset a knock's time is written with (the instant is what counts).
ZONES = (timezone(timedelta(hours=-4)), timezone(timedelta(hours=-5)), UTC)
# Chances per batch upload; at least one lost answer per phone, so every run exercises the retry path.
FAULTS = {"none": 0.55, "lost": 0.2, "double": 0.12, "truncated": 0.13}
OFFLINE = 0.3  # a batch made where there is no signal waits for the next upload
REORDER = 0.5  # a phone back online sends what waited in any order
REFRESH = 0.25  # after an upload, the walk list is refreshed (a delta: the partner's results)
MAX_ATTEMPTS = 12  # sends of one batch before the run gives up on the server
NOTES = ("Dog in the yard", "Call back after 6pm", "Árvore caída na frente", "Spanish speaker: 'hablo español'",
         "Gate code 4411 🐕", "Ring the side door")


class Unreachable(AppError):
    status, title, slug = 503, "Server unreachable", "unreachable"


class SimulationFailed(Exception):
    """The server answered in a way no phone can go on from: a refused batch, or errors past every retry."""


@dataclass
class Options:
    url: str = "http://127.0.0.1:8000"
    campaign: str = "cambridge"
    organizer: str = DEMO_ORGANIZER
    password: str | None = None
    canvassers: int = 10
    minutes: int = 60
    seed: int | None = None


@dataclass
class Batch:
    id: str
    knocks: list[dict[str, Any]]
    fault: str
    attempts: int = 0


@dataclass
class PhoneReport:
    """One phone's run: what it made and sent, and what the server answered (lost answers included)."""

    phone: int
    email: str
    device_id: str
    clock_skew_s: float
    turf_id: int | None = None
    turf: str | None = None
    doors: int = 0
    script_id: int | None = None
    shift_minutes: float = 0.0
    knocks: int = 0
    batches: int = 0
    sends: int = 0
    resends: int = 0
    knocks_resent: int = 0
    lost_answers: int = 0
    double_sends: int = 0
    truncated: int = 0
    reordered: int = 0
    failed_sends: int = 0
    refreshes: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    clock_offset_s: float | None = None
    clock_suspect: bool | None = None
    problems: list[str] = field(default_factory=list)


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
            self.ms[_endpoint(method, path)].append((time.perf_counter() - started) * 1000)

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
                    raise SimulationFailed(f"{method} {path}: {_problem(response)}")
                failure = _problem(response)
            self.errors += 1
            await asyncio.sleep(0.2 * 2**attempt)
        raise SimulationFailed(f"{method} {path} failed 4 times; the last time: {failure}")


def _endpoint(method: str, path: str) -> str:
    """A request's endpoint, with ids left out: `POST sync`, `GET walklist`."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    name = last.split(":")[-1] if ":" in last else (path.rsplit("/", 2)[-2] if last.isdigit() else last)
    return f"{method} {name}"


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return f"{response.status_code} {detail or response.text[:200]}"


def resolve_password(email: str, given: str | None, saved: Path = DEMO_CREDENTIALS) -> str:
    """The organizer's password: the one given, else the one `doorstep demo` saved. Raises Invalid."""
    if given:
        return given
    if saved.exists():
        found = json.loads(saved.read_text()).get(email)
        if found:
            return str(found)
    raise Invalid(f"no password for {email}: give --password or set DOORSTEP_SIM_PASSWORD", field="password")


async def _log_in(wire: Wire, url: str, email: str, password: str) -> str:
    """The organizer's token. Raises Unreachable, Unauthenticated."""
    try:
        response = await wire.send("POST", "/v1/auth/token", data={"username": email, "password": password})
    except httpx.TransportError as exc:
        raise Unreachable(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
    if response.status_code == 401:
        raise Unauthenticated(f"{email} can't log in at {url}: {_problem(response)}")
    if response.status_code != 200 or "access_token" not in response.text:
        raise Unreachable(f"{url} doesn't answer as a Doorstep server: POST /v1/auth/token gave "
                          f"{_problem(response)}")
    return str(response.json()["access_token"])


async def _check_organizer(wire: Wire, token: str, email: str, campaign: str) -> None:
    """Raises NotFound or Forbidden unless `email` organizes `campaign`: only an organizer sees every turf."""
    me = (await wire.call("GET", "/v1/me", token=token)).json()
    roles = {m["campaign_id"]: m["role"] for m in me["memberships"]}
    if campaign not in roles:
        raise NotFound(f"{email} is no member of a campaign {campaign!r}")
    if roles[campaign] not in ("admin", "organizer"):
        raise Forbidden(f"{email} is {roles[campaign]} in {campaign}; simulate needs an organizer or admin")


async def _pages(wire: Wire, path: str, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = (await wire.call("GET", path, token=token, params=params)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def _choose_result(rng: random.Random, codes: list[dict[str, Any]]) -> dict[str, Any]:
    weights = [{"not_home": 5.0, "contacted": 3.0, "refused": 1.0}.get(c["code"], 0.3) for c in codes]
    return rng.choices(codes, weights)[0]


def _answers(rng: random.Random, questions: list[dict[str, Any]]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for q in questions:
        if rng.random() < 0.2:
            continue  # not asked, or no answer
        ids = [c["id"] for c in q["choices"]]
        if q["kind"] == "single":
            answers[q["id"]] = rng.choice(ids)
        elif q["kind"] == "multiple":
            answers[q["id"]] = rng.sample(ids, rng.randint(1, min(3, len(ids))))
        else:
            answers[q["id"]] = rng.choice(NOTES)
    return answers


def plan_shift(rng: random.Random, walk: dict[str, Any], minutes: float) -> list[tuple[float, dict[str, Any]]]:
    """The knocks of a shift in walking order, each with its phone minute; not-home doors are tried again at
    the end if there is time. Knocks have no time yet: they get one when their batch is made."""
    script = walk["script"]
    codes, questions = script["result_codes"], script["questions"]
    stops = [(b, h) for b in walk["buildings"] for h in b["households"]]
    planned: list[tuple[float, dict[str, Any]]] = []
    clock = 0.0
    for pass_stops in (stops, None):
        if pass_stops is None:
            tried_again = {k["household_id"] for _, k in planned if k["result"] in ("not_home", "come_back")}
            pass_stops = [(b, h) for b, h in stops if h["id"] in tried_again]
        building = None
        for b, h in pass_stops:
            if b is not building:
                clock += rng.uniform(0.3, 1.5)  # walking to the next building
                building = b
            code = _choose_result(rng, codes)
            clock += rng.uniform(2, 6) if code["contacted"] else rng.uniform(0.5, 1.5)
            if clock > minutes:
                return planned
            knock: dict[str, Any] = {"id": str(uuid.uuid4()), "household_id": h["id"], "turf_id": walk["turf"]["id"],
                                     "result": code["code"], "lon": b["point"][0], "lat": b["point"][1]}
            if script["script_id"] is not None:
                knock |= {"script_id": script["script_id"], "script_version": script["version"]}
                if code["contacted"]:
                    knock["answers"] = _answers(rng, questions)
            if code["contacted"] and h["people"]:
                knock["person_id"] = rng.choice(h["people"])["id"]
            if rng.random() < 0.05:
                knock["note"] = rng.choice(NOTES)
            planned.append((clock, knock))
    return planned


class Phone:
    """One canvasser's phone: joins, claims, downloads, knocks offline and syncs over a bad network."""

    def __init__(self, n: int, options: Options, run: str, code: str, point: tuple[float, float],
                 wire: Wire, started: float) -> None:
        self.rng = random.Random(f"{options.seed}-{n}") if options.seed is not None else random.Random()
        self.options, self.wire, self.point, self.code = options, wire, point, code
        self.home = f"/v1/campaigns/{options.campaign}"
        self.zone = self.rng.choice(ZONES)
        if options.canvassers >= 5 and n == options.canvassers - 1:
            # A phone whose clock was reset: it thinks it is the first hour of 1970.
            skew = -started + self.rng.uniform(0, 3600)
        elif self.rng.random() < 0.3:
            skew = self.rng.choice((-3600.0, 3600.0)) + self.rng.uniform(-30, 30)  # an hour off
        else:
            skew = self.rng.uniform(-120, 120)  # drift
        self.report = PhoneReport(phone=n + 1, email=f"sim-{run}-{n + 1}@example.test", device_id=f"sim-{run}-{n + 1}",
                                  clock_skew_s=round(skew, 3))
        self.skew = skew
        self.password = secrets.token_urlsafe(12)
        self.token = ""
        self.outcomes: dict[str, list[str]] = defaultdict(list)
        self.sent: set[str] = set()
        self.walk: dict[str, Any] = {}
        self.claimed = 0.0

    def clock(self, real: float) -> datetime:
        """The phone's clock at real time `real` (seconds since the epoch), in its local zone."""
        return datetime.fromtimestamp(real + self.skew, tz=self.zone)

    async def start(self) -> None:
        """Sign up with the join code, claim a turf near the phone, download its walk list."""
        r = self.report
        joined = (await self.wire.call("POST", "/v1/join", ok=(201,), json={
            "code": self.code, "name": f"Simulated phone {r.phone}", "email": r.email,
            "password": self.password})).json()
        self.token = joined["access_token"]
        lon, lat = self.point
        claim = (await self.wire.call("POST", f"{self.home}/turfs:claim", ok=(200, 201), token=self.token,
                                      json={"lon": lon, "lat": lat})).json()
        self.claimed = time.time()
        r.turf_id, r.turf, r.doors = claim["turf_id"], claim["name"], claim["doors"]
        response = await self.wire.call("GET", f"{self.home}/turfs/{r.turf_id}/walklist", token=self.token)
        self.walk = response.json()
        r.script_id = self.walk["script"]["script_id"]

    async def shift(self) -> None:
        """Knock the turf's doors offline and upload them over a bad network; then give the turf back."""
        r = self.report
        planned = plan_shift(self.rng, self.walk, self.options.minutes)
        r.knocks = len(planned)
        r.shift_minutes = round(planned[-1][0], 1) if planned else 0.0
        chunks: list[list[tuple[float, dict[str, Any]]]] = []
        while len(planned) > sum(map(len, chunks)):
            start = sum(map(len, chunks))
            chunks.append(planned[start:start + self.rng.randint(3, 12)])
        faults = self.rng.choices(list(FAULTS), list(FAULTS.values()), k=len(chunks))
        if chunks and "lost" not in faults:
            faults[self.rng.randrange(len(chunks))] = "lost"

        outbox: list[Batch] = []
        made_until, made_at = 0.0, self.claimed
        for chunk, fault in zip(chunks, faults, strict=True):
            # The batch is made now: its knocks get real instants since the last batch, by their phone minute.
            now = max(time.time(), made_at + 0.001)
            last = chunk[-1][0]
            for minute, knock in chunk:
                real = made_at + (minute - made_until) / (last - made_until) * (now - made_at)
                knock["knocked_at"] = self.clock(real).isoformat()
            made_until, made_at = last, now
            outbox.append(Batch(id=str(uuid.uuid4()), knocks=[k for _, k in chunk], fault=fault))
            r.batches += 1
            if self.rng.random() >= OFFLINE:
                await self.flush(outbox)
        while outbox:
            await self.flush(outbox)
        await self.wire.call("POST", f"{self.home}/turfs/{r.turf_id}/release", ok=(204,), token=self.token)

    async def flush(self, outbox: list[Batch]) -> None:
        """Upload what waits, each batch with its fault; what wasn't answered (as the phone saw it) stays."""
        r = self.report
        order = list(outbox)
        if len(order) > 1 and self.rng.random() < REORDER:
            self.rng.shuffle(order)
            r.reordered += 1
        for batch in order:
            batch.attempts += 1
            if batch.attempts > MAX_ATTEMPTS:
                raise SimulationFailed(f"phone {r.phone}: batch {batch.id} was sent {MAX_ATTEMPTS} times and never "
                                       "answered")
            fault, batch.fault = batch.fault, "none"  # a fault strikes a batch once
            if fault == "truncated" and len(batch.knocks) > 1:
                # The upload was cut off: the server got a prefix; the rest goes with a later upload.
                cut = self.rng.randint(1, len(batch.knocks) - 1)
                if await self.upload(batch.id, batch.knocks[:cut]) is not None:
                    r.truncated += 1
                    batch.knocks = batch.knocks[cut:]
                continue
            if fault == "double":
                # Sent twice at once (a retry racing the first try): one stores, the other finds it stored.
                r.double_sends += 1
                answers = await asyncio.gather(self.upload(batch.id, batch.knocks),
                                               self.upload(batch.id, batch.knocks))
                if any(a is not None for a in answers):
                    outbox.remove(batch)
                continue
            answer = await self.upload(batch.id, batch.knocks)
            if answer is None:
                await asyncio.sleep(0.05 * batch.attempts)
            elif fault == "lost":
                # The server stored it, but the phone never saw the answer: it sends the batch again later.
                r.lost_answers += 1
            else:
                outbox.remove(batch)
        if self.rng.random() < REFRESH:
            await self.refresh()

    async def upload(self, batch_id: str, knocks: list[dict[str, Any]]) -> dict[str, Any] | None:
        """POST a batch stamped with the phone's clock; its answer, or None when none came (an error)."""
        r = self.report
        again = [k["id"] for k in knocks if k["id"] in self.sent]
        r.sends += 1
        r.resends += bool(again)
        r.knocks_resent += len(again)
        self.sent.update(k["id"] for k in knocks)
        body = {"device_id": r.device_id, "batch_id": batch_id, "sent_at": self.clock(time.time()).isoformat(),
                "knocks": knocks}
        try:
            response = await self.wire.send("POST", f"{self.home}/sync", token=self.token, json=body)
        except httpx.TransportError:
            r.failed_sends += 1
            self.wire.errors += 1
            return None
        if response.status_code >= 500:
            r.failed_sends += 1
            self.wire.errors += 1
            return None
        if response.status_code != 200:
            raise SimulationFailed(f"phone {r.phone}: the server refused a batch: {_problem(response)}")
        answer: dict[str, Any] = response.json()
        for outcome in answer["knocks"]:
            self.outcomes[outcome["id"]].append(outcome["status"])
            if outcome["status"] == "rejected" and len(r.problems) < 5:
                r.problems.append(f"{outcome['id']}: {(outcome.get('problem') or {}).get('detail')}")
        r.accepted += answer["accepted"]
        r.duplicate += answer["duplicate"]
        r.rejected += answer["rejected"]
        r.clock_offset_s = round(answer["clock_offset_s"], 3)
        r.clock_suspect = bool(r.clock_suspect) or answer["clock_suspect"]
        return answer

    async def refresh(self) -> None:
        """Fetch the walk list's changes since the version held (a partner's results, a new order)."""
        r = self.report
        r.refreshes += 1
        response = await self.wire.call("GET", f"{self.home}/turfs/{r.turf_id}/walklist", ok=(200, 304),
                                        token=self.token, params={"since": self.walk["version"]})
        if response.status_code == 200:
            self.walk["version"] = response.json()["version"]


def _spread(rng: random.Random, precincts: list[dict[str, Any]], n: int) -> list[tuple[float, float]]:
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
    they agree. Raises Unreachable, Unauthenticated, NotFound or Forbidden for bad input, SimulationFailed
    when the server stops the phones."""
    password = resolve_password(options.organizer, options.password)
    run = secrets.token_hex(3)
    rng = random.Random(options.seed)
    limits = httpx.Limits(max_connections=2 * options.canvassers + 8, max_keepalive_connections=2 * options.canvassers)
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=options.url.rstrip("/"), timeout=60, limits=limits) as client:
        wire = Wire(client)
        token = await _log_in(wire, options.url, options.organizer, password)
        await _check_organizer(wire, token, options.organizer, options.campaign)
        home = f"/v1/campaigns/{options.campaign}"
        precincts = await _pages(wire, f"{home}/precincts", token)
        if not precincts:
            raise NotFound(f"{options.campaign} has no precincts: load some and cut turfs first")
        before = {t["id"]: t["knocks"] for t in await _pages(wire, f"{home}/turfs", token)}
        expires = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        # Room for retried sign-ups (a join whose answer was lost uses the code again); revoked at the end.
        join_code = (await wire.call("POST", f"{home}/join-codes", ok=(201,), token=token, json={
            "role": "canvasser", "expires_at": expires, "max_uses": 2 * options.canvassers})).json()
        code = join_code["code"]
        setup_s = time.perf_counter() - began

        started = time.time()
        phones = [Phone(n, options, run, code, point, wire, started)
                  for n, point in enumerate(_spread(rng, precincts, options.canvassers))]
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
        await wire.call("DELETE", f"{home}/join-codes/{join_code['id']}", token=token)
        if failures:
            raise failures[0]
        after = {t["id"]: t["knocks"] for t in await _pages(wire, f"{home}/turfs", token)}
        total_s = time.perf_counter() - began
    return _summarise(options, run, phones, before, after, wire, setup_s=setup_s, phases=phases, total_s=total_s)


def _summarise(options: Options, run: str, phones: list[Phone], before: dict[int, int], after: dict[int, int],
               wire: Wire, *, setup_s: float, phases: dict[str, dict[str, float]], total_s: float) -> dict[str, Any]:
    reports = [p.report for p in phones]
    totals = {k: sum(getattr(r, k) for r in reports) for k in (
        "knocks", "batches", "sends", "resends", "knocks_resent", "lost_answers", "double_sends", "truncated",
        "reordered", "failed_sends", "refreshes", "accepted", "duplicate", "rejected")}
    distinct = sum(len(p.sent) for p in phones)
    totals["distinct_sent"] = distinct
    turfs = sorted({r.turf_id for r in reports if r.turf_id is not None})
    counted = sum(after.get(t, 0) - before.get(t, 0) for t in turfs)
    accepted_once = Counter(s.count("accepted") for p in phones for s in p.outcomes.values())
    wrong_clock = SUSPECT_OFFSET.total_seconds()
    checks = {
        "every knock made was sent": distinct == totals["knocks"],
        "accepted == distinct knocks sent": totals["accepted"] == distinct,
        "server count == distinct knocks sent": counted == distinct,
        "each knock accepted exactly once": set(accepted_once) <= {1},
        "no knock rejected": totals["rejected"] == 0,
        "each phone its own turf": len(turfs) == len(reports),
        "wrong clocks flagged, right ones not": all(
            r.clock_suspect is None or r.clock_suspect == (abs(r.clock_skew_s) >= wrong_clock) for r in reports),
    }
    sync_ms = wire.ms.get("POST sync", [])
    return {
        "run": run, "url": options.url, "campaign": options.campaign, "canvassers": options.canvassers,
        "minutes": options.minutes, "seed": options.seed,
        "phones": [asdict(r) for r in reports],
        "totals": totals,
        "server": {"turfs": turfs, "knocks_before": sum(before.get(t, 0) for t in turfs),
                   "knocks_after": sum(after.get(t, 0) for t in turfs), "counted": counted,
                   "campaign_counted": sum(after.values()) - sum(before.values())},
        "checks": checks,
        "agree": all(checks.values()),
        "throughput": {
            "setup_s": round(setup_s, 3), "start_s": round(phases["start"]["s"], 3),
            "shift_s": round(phases["shift"]["s"], 3), "total_s": round(total_s, 3), "requests": wire.requests,
            "start_requests": phases["start"]["requests"], "shift_requests": phases["shift"]["requests"],
            "errors_retried": wire.errors,
            "knocks_per_s": round(totals["accepted"] / phases["shift"]["s"], 1),
            "requests_per_s": round(phases["shift"]["requests"] / phases["shift"]["s"], 1),
            "start_requests_per_s": round(phases["start"]["requests"] / phases["start"]["s"], 1),
            "sync_requests": len(sync_ms),
            "endpoints": {name: _latency(ms) for name, ms in sorted(wire.ms.items())},
        },
    }


def _latency(ms: list[float]) -> dict[str, Any]:
    """Count and milliseconds (median, 95th percentile, max) of an endpoint's requests."""
    ordered = sorted(ms)
    return {"requests": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
            "max_ms": round(ordered[-1], 1)}


def _skew(seconds: float) -> str:
    if abs(seconds) >= SUSPECT_OFFSET.total_seconds():
        return f"{datetime.fromtimestamp(time.time() + seconds, UTC):%Y-%m-%d}"
    sign = "-" if seconds < 0 else "+"
    whole = int(abs(seconds))
    return f"{sign}{whole // 3600}:{whole % 3600 // 60:02}:{whole % 60:02}"


def _offset(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds / 86400:+.0f} days" if abs(seconds) >= 86400 else f"{seconds:+.0f} s"


def format_report(report: dict[str, Any]) -> str:
    """The report as lines for a terminal: a row per phone, the totals, the server's count, the verdict."""
    t, s, speed = report["totals"], report["server"], report["throughput"]
    phones = f"{report['canvassers']} phone" + "s" * (report["canvassers"] != 1)
    seed = "random" if report["seed"] is None else report["seed"]
    lines = [f"Simulated {phones} against {report['url']} (campaign {report['campaign']}, run {report['run']}, "
             f"seed {seed}): sign-up, claim and walk list in {speed['start_s']:.1f} s, then shifts of "
             f"{report['minutes']} phone minutes played in {speed['shift_s']:.1f} s."]
    header = ("phone", "turf", "doors", "clock", "knocks", "batches", "sends", "resends", "lost", "double", "cut",
              "accepted", "duplicate", "rejected", "server offset")
    rows = [[str(r["phone"]), f"{r['turf']} ({r['turf_id']})", str(r["doors"]), _skew(r["clock_skew_s"]),
             str(r["knocks"]), str(r["batches"]), str(r["sends"]), str(r["resends"]), str(r["lost_answers"]),
             str(r["double_sends"]), str(r["truncated"]), str(r["accepted"]), str(r["duplicate"]),
             str(r["rejected"]),
             _offset(r["clock_offset_s"]) + (" (suspect)" if r["clock_suspect"] else "")] for r in report["phones"]]
    rows.append(["total", f"{len(s['turfs'])} turfs", str(sum(r["doors"] for r in report["phones"])), "",
                 str(t["knocks"]), str(t["batches"]), str(t["sends"]), str(t["resends"]), str(t["lost_answers"]),
                 str(t["double_sends"]), str(t["truncated"]), str(t["accepted"]), str(t["duplicate"]),
                 str(t["rejected"]), ""])
    widths = [max(len(row[i]) for row in [list(header), *rows]) for i in range(len(header))]
    for row in [list(header), *rows]:
        lines.append("  ".join(cell.ljust(w) if i in (1, 3, 14) else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
    for r in report["phones"]:
        lines += [f"  phone {r['phone']} rejected {p}" for p in r["problems"]]
    lines.append(f"Server counted {s['counted']} new knocks on the {len(s['turfs'])} turfs the phones held "
                 f"({s['knocks_before']} before, {s['knocks_after']} after; {s['campaign_counted']} new in the "
                 "whole campaign).")
    lines.append(f"Also: {t['reordered']} uploads out of order, {t['failed_sends']} uploads unanswered (errors), "
                 f"{t['refreshes']} walk-list refreshes.")
    lines.append(f"Throughput: the shifts synced {t['accepted']} knocks in {speed['shift_s']:.2f} s = "
                 f"{speed['knocks_per_s']} knocks/s, {speed['shift_requests']} requests = {speed['requests_per_s']} "
                 f"requests/s; sign-up and claims {speed['start_requests']} requests = "
                 f"{speed['start_requests_per_s']} requests/s; {speed['errors_retried']} errors retried.")
    lines += [f"  {name:<16} {e['requests']:>5} requests  p50 {e['p50_ms']:>7.1f} ms  p95 {e['p95_ms']:>7.1f} ms  "
              f"max {e['max_ms']:>7.1f} ms" for name, e in speed["endpoints"].items()]
    failed = [name for name, ok in report["checks"].items() if not ok]
    verdict = "AGREE" if report["agree"] else "DISAGREE"
    lines.append(f"{verdict}: {t['distinct_sent']} distinct knocks sent, {t['accepted']} accepted, {s['counted']} "
                 "counted by the server" + (f"; failed: {', '.join(failed)}." if failed else "."))
    return "\n".join(lines)
