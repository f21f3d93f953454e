"""The checker every answer goes through (tests/contract.py) catches an answer that drifts from the contract."""

import json

import httpx
import pytest

from tests.contract import violations

HOME = "/v1/campaigns/cambridge"
KNOCK = {"id": "k1", "status": "rejected", "problem": {
    "type": "/problems/invalid", "title": "Invalid input", "status": 422, "detail": "no such result",
    "errors": [{"field": "knocks[0].result", "message": "no such result"}]}}
SYNCED = {"batch_id": "b", "received_at": "2026-12-03T18:00:00Z", "clock_offset_s": 0.5, "clock_suspect": False,
          "accepted": 0, "duplicate": 0, "rejected": 1, "knocks": [KNOCK]}


def check(method: str, path: str, status: int, body: object, media: str = "application/json") -> list[str]:
    return violations(method, path, status, media, json.dumps(body).encode() if body is not None else b"")


def test_an_answer_as_declared_holds():
    assert check("POST", f"{HOME}/sync", 200, SYNCED) == []
    assert check("GET", f"{HOME}/turfs/7/walklist", 304, None) == []
    assert check("HEAD", f"{HOME}/turfs/7/walklist", 200, None) == []


@pytest.mark.parametrize(("change", "fault"), [
    (lambda b: b.pop("clock_suspect"), "clock_suspect"),
    (lambda b: b.update(accepted="none"), "accepted"),
    (lambda b: b["knocks"][0].update(status="maybe"), "knocks/0/status"),
    (lambda b: b["knocks"][0]["problem"].pop("detail"), "knocks/0/problem"),
])
def test_a_hand_built_answer_that_drifts_is_caught(change, fault):
    body = json.loads(json.dumps(SYNCED))
    change(body)
    found = check("POST", f"{HOME}/sync", 200, body)
    assert found and fault in found[0], found


def test_a_status_or_media_type_not_declared_is_caught():
    assert "status 418 is not declared" in check("GET", f"{HOME}/turfs", 418, {})[0]
    assert "text/html" in violations("GET", f"{HOME}/turfs", 200, "text/html", b"<p>hi</p>")[0]
    assert "declares no body" in check("POST", f"{HOME}/turfs/7/release", 204, {"done": True})[0]


def test_errors_must_be_problems():
    assert check("GET", f"{HOME}/turfs/7", 404, {"type": "/problems/not-found", "title": "Not found",
                                                 "status": 404, "detail": "No turf 7."},
                 "application/problem+json") == []
    assert check("GET", f"{HOME}/turfs/7", 404, {"error": "gone"}, "application/problem+json")
    assert check("GET", "/v1/nowhere", 404, {"error": "gone"}, "application/problem+json")
    assert "the contract doesn't have" in check("GET", "/v1/nowhere", 200, {})[0]


async def test_the_checker_is_on_for_every_answer_of_the_suite(client, world):
    """Through the ASGI transport every answer is checked: a request the contract has no answer for fails."""
    assert getattr(httpx.ASGITransport.handle_async_request, "__wrapped__", None) is not None
    # A 200 declared for GET, answered to a POST the app routes nowhere: a 405 problem, which holds.
    response = await client.post(f"{HOME}/progress", headers=world.headers("organizer"))
    assert response.status_code == 405 and response.json()["type"] == "/problems/method-not-allowed"
