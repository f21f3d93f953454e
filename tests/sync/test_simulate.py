"""`doorstep simulate`: phones played against a real server on the test database; what they sent, what the
server answered and what it counted agree, and the rows behind it are there.

The server is uvicorn on the test's event loop (the simulator is an HTTP client, like the phones it plays); the
simulator runs in this process too (tests/cli.py, on a thread), but where its exit code is the point, as the
console script in a process.
"""

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

import simulator
from app.cli import main
from app.demo import DEMO_SCRIPT
from app.sync.models import DoorKnock
from app.turfs.models import Turf
from simulator.run import resolve_password
from simulator.wire import BadInput
from tests.cli import doorstep, ok, one_json_object
from tests.conftest import db_session
from tests.factories import PASSWORD
from tests.sync.test_durability import serving as served

HOME = "/v1/campaigns/cambridge"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def serving(url: str, cwd: Path) -> AsyncIterator[str]:
    """uvicorn on this event loop serving the database at `url`; its base URL."""
    async with served(url, cwd, process=False) as server:
        yield server.base


def one_line_error(ran, code: int = 2) -> str:
    assert ran.code == code and "Traceback" not in ran.err, ran
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("doorstep: "), ran
    return lines[0]


class TestSimulate:
    async def test_what_phones_sent_is_what_the_server_counted(self, cut_db_url, world, tmp_path):
        async with serving(cut_db_url, tmp_path) as base:
            # A default script, so the phones answer questions and use the campaign's own result code.
            async with httpx.AsyncClient(base_url=base, headers=world.headers("organizer")) as client:
                r = await client.post(f"{HOME}/scripts", json=DEMO_SCRIPT.model_dump())
                assert r.status_code == 201, r.text
                r = await client.put(f"{HOME}/scripts/{r.json()['id']}/uses", json={"default": True})
                assert r.status_code == 200, r.text
            report = one_json_object(await doorstep(
                cut_db_url, tmp_path, "simulate", "--url", base, "--organizer", world.emails["organizer"],
                "--password", PASSWORD, "--canvassers", "5", "--minutes", "30", "--seed", "11", "--json"))

        totals, server = report["totals"], report["server"]
        assert report["agree"] and all(report["checks"].values()), report["checks"]
        distinct = totals["distinct_sent"]
        assert distinct > 0 and totals["accepted"] == distinct == server["counted"] == totals["knocks"]
        assert totals["rejected"] == 0
        # Lost answers were sent again and came back duplicate, resent knock for resent knock.
        assert totals["lost_answers"] >= 5 and totals["duplicate"] > 0
        assert totals["duplicate"] == totals["knocks_resent"]
        assert totals["sends"] > totals["batches"]
        assert len(server["turfs"]) == 5
        phones = report["phones"]
        # The fifth phone's clock thinks it is 1970: flagged; an hour off or a drift is not.
        assert phones[-1]["clock_suspect"] and not any(p["clock_suspect"] for p in phones[:-1])
        speed = report["throughput"]
        assert speed["knocks_per_s"] > 0 and speed["requests_per_s"] > 0 and speed["sync_requests"] == totals["sends"]

        async with db_session(cut_db_url) as session:
            assert await session.scalar(select(func.count()).select_from(DoorKnock)) == distinct
            assert await session.scalar(select(func.sum(Turf.knocks))) == distinct
            by_device = dict((await session.execute(select(DoorKnock.device_id, func.count())
                                                    .group_by(DoorKnock.device_id))).all())
            assert by_device == {p["device_id"]: p["knocks"] for p in phones if p["knocks"]}
            suspect = await session.scalar(select(func.count()).select_from(DoorKnock).where(DoorKnock.clock_suspect))
            assert suspect == phones[-1]["knocks"]
            answered = await session.scalar(select(func.count()).select_from(DoorKnock).where(
                DoorKnock.answers != "{}"))
            assert answered > 0

    async def test_the_table_says_agree(self, cut_db_url, world, tmp_path):
        async with serving(cut_db_url, tmp_path) as base:
            ran = ok(await doorstep(cut_db_url, tmp_path, "simulate", "--url", base, "--organizer",
                                    world.emails["organizer"], "--password", PASSWORD, "--canvassers", "2",
                                    "--minutes", "10", "--seed", "3"))
        assert ran.out.strip().splitlines()[-1].startswith("AGREE: "), ran
        assert "knocks/s" in ran.out and "requests/s" in ran.out

    async def test_bad_input_gets_one_line_and_exit_2(self, cut_db_url, world, tmp_path):
        closed = f"http://127.0.0.1:{free_port()}"
        login = ("--organizer", world.emails["organizer"], "--password", PASSWORD)
        runs = await asyncio.gather(
            doorstep(cut_db_url, tmp_path, "simulate", "--url", closed, *login),
            doorstep(cut_db_url, tmp_path, "simulate", "--canvassers", "0", *login),
            doorstep(cut_db_url, tmp_path, "simulate", "--url", closed, "--organizer", "nobody@example.test"))
        assert f"cannot reach {closed}" in one_line_error(runs[0])
        assert "--canvassers" in one_line_error(runs[1])
        # No password given, and no `doorstep demo` file in the folder to take it from.
        assert "--password" in one_line_error(runs[2])
        async with serving(cut_db_url, tmp_path) as base:
            runs = await asyncio.gather(
                doorstep(cut_db_url, tmp_path, "simulate", "--url", base, "--organizer", world.emails["organizer"],
                         "--password", "wrong password"),
                doorstep(cut_db_url, tmp_path, "simulate", "--url", base, "--campaign", "nowhere", *login),
                doorstep(cut_db_url, tmp_path, "simulate", "--url", base, "--organizer", world.emails["canvasser"],
                         "--password", PASSWORD))
        assert "can't log in" in one_line_error(runs[0])
        assert "nowhere" in one_line_error(runs[1])
        assert "needs an organizer" in one_line_error(runs[2])
        async with db_session(cut_db_url) as session:
            assert await session.scalar(select(func.count()).select_from(DoorKnock)) == 0

    async def test_giving_up_exits_1(self, cut_db_url, world, tmp_path):
        # One turf left for two phones: the second phone's claim is refused, and no phone can go on from that.
        # The console script's exit code, so a process of its own.
        async with db_session(cut_db_url) as session:
            kept = await session.scalar(select(func.min(Turf.id)).where(Turf.status == "active", Turf.holders == 0))
            await session.execute(update(Turf).where(Turf.id != kept).values(status="archived"))
            await session.commit()
        async with serving(cut_db_url, tmp_path) as base:
            ran = await doorstep(cut_db_url, tmp_path, "simulate", "--url", base, "--organizer",
                                 world.emails["organizer"], "--password", PASSWORD, "--canvassers", "2",
                                 "--minutes", "5", "--seed", "3", process=True)
        line = one_line_error(ran, code=1)
        assert line.startswith("doorstep: simulate: POST ") and "turfs:claim: 409" in line, ran
        assert ran.out == "", ran


class TestVerdict:
    def test_disagree_exits_1(self, monkeypatch, capsys):
        # A server whose count doesn't match can't be had on demand; the verdict is the simulator's own.
        async def disagreeing(options: simulator.Options) -> dict:
            return {"agree": False, "checks": {"server count == distinct knocks sent": False}}

        monkeypatch.setattr(simulator, "simulate", disagreeing)
        monkeypatch.setattr(sys, "argv", ["doorstep", "simulate", "--password", "x", "--json"])
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 1
        assert json.loads(capsys.readouterr().out)["agree"] is False


# A database of its own: a server in a process of its own.
pytestmark = pytest.mark.own_database


@pytest.mark.parametrize("saved", ['{"organizer@cambridge.example": ', '["a list"]'])
def test_torn_demo_credentials_are_bad_input(tmp_path, saved):
    """A `.doorstep-demo.json` that is no JSON object is bad input (one line, exit 2), not a traceback."""
    path = tmp_path / ".doorstep-demo.json"
    path.write_text(saved)
    with pytest.raises(BadInput, match="not the JSON object"):
        resolve_password("organizer@cambridge.example", None, saved=path)
