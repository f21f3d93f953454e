"""The committed contract is the app's contract."""

import json
from pathlib import Path

import yaml

from app.openapi import document, yaml_document

SPEC = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app():
    assert json.loads(SPEC.read_text()) == json.loads(document()), "openapi/openapi.json is stale: run make openapi"
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
