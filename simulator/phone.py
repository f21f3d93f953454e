"""One simulated phone: it joins, claims a turf, knocks its doors offline by its own clock and syncs them over a
bad network."""

import asyncio
import random
import secrets
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from simulator.wire import SimulationFailed, Wire, problem

DEMO_ORGANIZER = "organizer@cambridge.example"  # app.demo.USERS, whose passwords `doorstep demo` saves
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


@dataclass
class Options:
    """What `doorstep simulate` was asked for: the server, who organizes there, and the phones to play."""

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
            raise SimulationFailed(f"phone {r.phone}: the server refused a batch: {problem(response)}")
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
