"""`doorstep events list`'s rows: one query for what the N+1 loop over `event_detail` used to gather."""

import pytest

from app.campaigns import service as campaign_service
from app.campaigns.models import User
from app.organizing import launches
from app.organizing.listing import list_event_summaries
from tests.cli import doorstep, ok
from tests.organizing.test_organizing import HERE, HOME, later


async def make_event(client, world, *, turfs: int) -> dict:
    body = {"title": "Saturday launch", "starts_at": later(0), "ends_at": later(4), **HERE, "capacity": 4,
            "turfs": turfs}
    r = await client.post(f"{HOME}/events", json=body, headers=world.headers("host"))
    assert r.status_code == 201, r.text
    return r.json()


class TestEventSummaries:
    @pytest.mark.own_database  # the CLI runs in a process of its own
    async def test_counts_match_each_events_detail(self, cut_client, cut_session, cut_db_url, world, tmp_path):
        events = [await make_event(cut_client, world, turfs=n) for n in (2, 1)]
        r = await cut_client.post("/v1/join", json={"code": events[0]["code"], "name": "A", "email": "a@example.org",
                                                    "password": "a good password"})
        token = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await cut_client.post(f"{HOME}/events/{events[0]['id']}/check-ins", json={}, headers=token)
        assert r.status_code == 200, r.text

        campaign_id = (await campaign_service.get_campaign(cut_session, "cambridge")).id
        listed = await list_event_summaries(cut_session, campaign_id)
        expected = []
        for event in await launches.list_events(cut_session, campaign_id, user=None, role=None):
            detail = await launches.event_detail(cut_session, event)
            host = await cut_session.get(User, event.host_id)
            expected.append((event.id, event.title, event.starts_at, event.ends_at, host.email if host else None,
                             len(detail["attendees"]), len(detail["turfs"]),
                             sum(1 for t in detail["turfs"] if t.checked_out_at)))
        got = [(e.id, e.title, e.starts_at, e.ends_at, e.host_email, e.attendees, e.turfs, e.turfs_out) for e in listed]
        assert got == expected
        assert [(e.attendees, e.turfs, e.turfs_out) for e in listed] == [(1, 2, 1), (0, 1, 0)]

        table = ok(await doorstep(cut_db_url, tmp_path, "events", "list", "--campaign", "cambridge")).out
        assert "1/2" in table and "0/1" in table
