"""The committed contract is the app's contract."""

import json
import re
from pathlib import Path

import yaml

from app.openapi import document, yaml_document

SPEC = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app():
    # Byte for byte: the order of keys is part of the contract (generators type an answer by its first media type).
    assert SPEC.read_text() == document(), "openapi/openapi.json is stale: run make openapi"
    committed = yaml.safe_load(SPEC.with_suffix(".yaml").read_text())
    assert committed == yaml.safe_load(yaml_document()) == json.loads(document()), "openapi/openapi.yaml is stale"


def test_every_campaign_operation_states_who_may_call_it():
    spec = json.loads(document())
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/campaigns/{campaign_id}"):
            continue
        for method, operation in operations.items():
            assert "x-roles" in operation and "x-scopes" in operation, f"{method.upper()} {path} states no access"
            for status in ("401", "403", "404", "422"):
                problem = operation["responses"][status]["content"]["application/problem+json"]
                assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}, f"{method.upper()} {path}"


def _operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_operation_ids_are_short_stable_names():
    ids = [op["operationId"] for _, _, op in _operations(json.loads(document()))]
    assert len(ids) == len(set(ids)), "an operation id is used twice"
    for name in ids:
        assert re.fullmatch(r"[a-z]+(_[a-z0-9]+)*", name) and len(name) <= 32 and "v1" not in name, name
    assert {"get_walklist", "sync_knocks", "claim_turf", "list_turf_progress", "stream_progress"} <= set(ids)


def test_every_error_is_a_problem_and_json_comes_first():
    spec = json.loads(document())
    for method, path, op in _operations(spec):
        for status, answer in op["responses"].items():
            content = answer.get("content", {})
            if status[0] in "45":
                assert content == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            elif "application/json" in content:
                assert next(iter(content)) == "application/json", f"{method} {path} {status}: JSON isn't first"
        stream = "text/event-stream" in op["responses"]["200"].get("content", {}) if "200" in op["responses"] else False
        if method == "GET":
            # Every read but the live stream (which never has a tag) answers a current ETag with a 304, and says
            # its ETag and Cache-Control; a list its Link, a range its Content-Range.
            assert ("304" in op["responses"]) != stream, f"{method} {path}: a 304 {'on' if stream else 'missing'}"
            for status in {"200", "206", "304"} & set(op["responses"]) if not stream else ():
                headers = op["responses"][status].get("headers", {})
                assert {"ETag", "Cache-Control"} <= set(headers), f"{method} {path} {status}: {sorted(headers)}"
                paged = any(p["name"] == "cursor" for p in op.get("parameters", ()))
                assert ("Link" in headers) == (paged and status == "200"), f"{method} {path} {status}: Link"
                assert ("Content-Range" in headers) == (status == "206"), f"{method} {path} {status}"
    # No schema is inline or named after a route: bodies and answers are named components.
    names = spec["components"]["schemas"]
    assert not [n for n in names if "_v1_" in n or n.startswith("Body_") or "V1" in n], names
    streams = {path: op["responses"]["200"]["content"] for method, path, op in _operations(spec)
               if path.endswith(("/progress/stream", "/door-knocks.csv"))}
    assert [list(c) for c in streams.values()] == [["text/event-stream"], ["text/csv"]]


def test_a_rejected_knock_is_the_one_problem_schema():
    outcome = json.loads(document())["components"]["schemas"]["KnockOutcome"]["properties"]["problem"]
    assert {"$ref": "#/components/schemas/Problem"} in outcome["anyOf"]
