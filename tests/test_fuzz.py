"""schemathesis against the served contract: whatever a client sends, valid by the contract or not, no answer is a
5xx. Bounded: a few examples per operation and mode, against real uvicorn on a copy of the cut city, as its admin
(so requests get past the access checks into the services)."""

import asyncio
import contextlib
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode

from tests.factories import HOME, World
from tests.sync.test_durability import serving

EXAMPLES = 4
# Endless by design (Server-Sent Events): a request would never finish. Its refusals are tested in
# tests/progress/test_stream.py.
ENDLESS = {("GET", "/v1/campaigns/{campaign_id}/progress/stream")}
# Background work a fuzzed body would start over the whole city (a cut of every precinct takes seconds of CPU);
# run with empty or tiny bodies, it is bounded by the examples' count, so it stays, but shapes alone get fuzzed.
SLOW = {("POST", "/v1/campaigns/{campaign_id}/turf-cuts")}


def fuzz(base: str, headers: dict[str, str]) -> list[str]:
    """Every operation of the served spec, each mode a few examples; returns what answered 5xx or broke."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in ENDLESS:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            seen: list[str] = []
            examples = 1 if key in SLOW else EXAMPLES
            # Unsatisfiable: no example of this mode can be made (a negative of a parameterless GET).
            with contextlib.suppress(hypothesis.errors.Unsatisfiable):
                _examples(operation, mode, examples, base, headers, seen)()
            failures.extend(dict.fromkeys(seen))
    return failures


def _examples(operation: Any, mode: GenerationMode, examples: int, base: str, headers: dict[str, str],
              seen: list[str]) -> Any:
    """A hypothesis test sending `examples` cases of one operation and mode, noting each 5xx in `seen`."""
    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                         phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(mode, path_parameters={"campaign_id": HOME}))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base, headers=headers, timeout=30)
        except Exception as exc:  # a dropped connection, a hang: as bad as a 500
            seen.append(f"{case.method} {case.formatted_path} ({mode.value}): {type(exc).__name__}: {exc}"[:300])
            return
        if response.status_code >= 500:
            seen.append(f"{case.method} {case.formatted_path} ({mode.value}): {response.status_code} "
                        f"{response.text[:200]}")
    return run


class TestContractFuzz:
    async def test_no_request_gets_a_5xx(self, cut_db_url: str, world: World, tmp_path) -> None:
        async with serving(cut_db_url, tmp_path, process=False) as server:
            failures = await asyncio.to_thread(fuzz, server.base, world.headers("admin"))
            # The server is still up and still answers, after everything it was sent.
            async with httpx.AsyncClient(base_url=server.base) as client:
                me = await client.get("/v1/me", headers=world.headers("admin"))
            log = server.log.read_text()
        assert me.status_code == 200 and me.json()["email"] == world.emails["admin"]
        assert not failures, "\n".join(failures)
        assert "Traceback" not in log, log[-3000:]


# A database of its own: a real server in a process of its own.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.own_database]
