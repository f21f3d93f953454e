"""Any interleaving of retried, duplicated, reordered and cut-off batches stores each knock exactly once.

A hypothesis state machine plays a phone on a real database: it makes knocks and sends them any way a bad
network allows. After every run the phone resends whatever it never saw acknowledged; then the stored knocks
must be exactly those made, and every counter must equal the one rebuilt from the knocks.
"""

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from app.campaigns.service import get_campaign
from app.db import make_engine, make_sessionmaker
from app.sync.models import DoorKnock
from app.sync.service import rebuild_progress
from tests.conftest import app_client
from tests.sync.helpers import HOME, counters, doors, hold, now

CODES = ("not_home", "contacted", "refused", "moved", "come_back")


class Loop:
    """An event loop in this (worker) thread with an app client and a session on the test database."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.stack = AsyncExitStack()
        self.client = self.run(self.stack.enter_async_context(app_client(url)))
        engine = make_engine(url)
        self.stack.push_async_callback(engine.dispose)
        self.session = self.run(self.stack.enter_async_context(make_sessionmaker(engine)()))

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def close(self) -> None:
        self.run(self.stack.aclose())
        self.loop.close()


def machine(env: Loop, walk: dict, headers: dict[str, str], campaign_id: int) -> type[RuleBasedStateMachine]:
    households = [h["id"] for h in doors(walk)]

    class Phone(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.device = f"phone-{uuid.uuid4()}"
            self.made: dict[str, dict] = {}
            self.acked: set[str] = set()
            self.skew = timedelta(0)

        @initialize(skew=st.sampled_from([0, 3600, -3600, 7200]))
        def set_clock(self, skew: int) -> None:
            self.skew = timedelta(seconds=skew)

        @rule(door=st.integers(0, len(households) - 1), result=st.sampled_from(CODES),
              minutes_ago=st.integers(0, 10))
        def knock(self, door: int, result: str, minutes_ago: int) -> None:
            knock = {"id": str(uuid.uuid4()), "household_id": households[door], "turf_id": walk["turf"]["id"],
                     "result": result,
                     "knocked_at": (now() + self.skew - timedelta(minutes=minutes_ago)).isoformat()}
            self.made[knock["id"]] = knock

        @rule(data=st.data(), cut_off=st.booleans(), lost=st.booleans())
        def send(self, data: st.DataObject, cut_off: bool, lost: bool) -> None:
            """Send any knocks made (again, in any order, some twice); the tail may never arrive (cut off) and
            the answer may never come back (lost)."""
            if not self.made:
                return
            knocks = data.draw(st.lists(st.sampled_from(sorted(self.made)), min_size=1, max_size=12))
            if cut_off:
                knocks = knocks[:data.draw(st.integers(0, len(knocks)))]
            body = {"device_id": self.device, "batch_id": str(uuid.uuid4()),
                    "sent_at": (now() + self.skew).isoformat(), "knocks": [self.made[k] for k in knocks]}
            r = env.run(env.client.post(f"{HOME}/sync", json=body, headers=headers))
            assert r.status_code == 200, r.text
            outcomes = r.json()["knocks"]
            assert {o["status"] for o in outcomes} <= {"accepted", "duplicate"}, outcomes
            if not lost:
                self.acked |= {o["id"] for o in outcomes}

        def stored(self) -> set[str]:
            env.run(env.session.rollback())
            return {str(i) for i in env.run(env.session.execute(
                select(DoorKnock.id).where(DoorKnock.device_id == self.device))).scalars()}

        @invariant()
        def acknowledged_knocks_are_stored_and_nothing_else(self) -> None:
            stored = self.stored()
            assert self.acked <= stored <= set(self.made)

        def teardown(self) -> None:
            unsent = [self.made[k] for k in sorted(set(self.made) - self.acked)]
            for start in range(0, len(unsent), 100):
                body = {"device_id": self.device, "batch_id": str(uuid.uuid4()),
                        "sent_at": (now() + self.skew).isoformat(), "knocks": unsent[start:start + 100]}
                r = env.run(env.client.post(f"{HOME}/sync", json=body, headers=headers))
                assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
            assert self.stored() == set(self.made)
            kept = env.run(counters(env.session))
            env.run(rebuild_progress(env.session, campaign_id))
            assert env.run(counters(env.session)) == kept

    return Phone


async def test_any_interleaving_of_batches_stores_each_knock_once(cut_client, cut_session, cut_db_url, world):
    walk = await hold(cut_client, world)
    campaign_id = (await get_campaign(cut_session, "cambridge")).id
    await cut_session.close()
    headers = world.headers("canvasser")

    def play() -> None:
        env = Loop(cut_db_url)
        try:
            run_state_machine_as_test(
                machine(env, walk, headers, campaign_id),
                settings=settings(max_examples=25, stateful_step_count=15, deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow]))
        finally:
            env.close()

    await asyncio.to_thread(play)


# A database of its own: batches interleaved on several connections.
pytestmark = pytest.mark.own_database
