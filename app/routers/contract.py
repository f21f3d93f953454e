"""The contract (`openapi/openapi.json`) as generated clients read it: every answer an operation can give,
declared once here for what every route shares, by the routes for what is theirs.

Routes declare their own statuses as `responses={409: {"description": ...}}`: every 4xx and 5xx gets the one
`Problem` schema here. tests/contract.py holds every answer the suite receives to this document.
"""

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.schemas import Problem

PROBLEM = "application/problem+json"
REF = "#/components/schemas/{model}"
PROBLEM_REF = {"$ref": REF.format(model="Problem")}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}}
# Routes that take a password or a refresh token, limited per account and per client address.
RATE_LIMITED = {"/v1/auth/token", "/v1/auth/refresh", "/v1/join", "/v1/me/password"}
NOT_MODIFIED = "Not modified: the `ETag` sent in `If-None-Match` is current. No body."
EVENT_STREAM = "text/event-stream"
# The headers of a GET's answer (a stream's aside): its tag, and that it is the caller's own.
CACHING = {"ETag": {"description": "The answer's (weak) tag: send it in `If-None-Match` for a 304.",
                    "schema": {"type": "string"}},
           "Cache-Control": {"description": "`private, no-cache` (an export of voter data: `private, no-store`).",
                             "schema": {"type": "string"}}}
NEXT = {"Link": {"description": "RFC 8288 `<...>; rel=\"next\"`: the next page, when there is one.",
                 "schema": {"type": "string"}}}
PART = {"Content-Range": {"description": "`bytes first-last/length` (`*` for a length not known yet).",
                          "schema": {"type": "string"}}}


def _shared(path: str, operation: dict[str, Any]) -> dict[str, str]:
    """The statuses every operation like this one can answer with, and what each means."""
    codes = {"413": "The body is over this route's limit."}
    if operation.get("security"):
        codes |= {"401": "Not authenticated: no token or API key, or one that is expired or revoked.",
                  "403": "Not allowed for this role or API key."}
    if "{" in path:
        codes["404"] = "Not found, or not in a campaign the caller belongs to."
    if operation.get("parameters") or operation.get("requestBody") or operation.get("security"):
        codes["422"] = "Invalid input: `errors` names each field at fault."
    if path in RATE_LIMITED:
        codes["429"] = "Too many attempts: wait the seconds `Retry-After` gives."
    codes["503"] = "The database can't be reached just now: try again after the seconds `Retry-After` gives."
    return codes


def _json_first(content: dict[str, Any]) -> dict[str, Any]:
    """`content` with JSON first: generators type an answer by its first media type."""
    return dict(sorted(content.items(), key=lambda item: item[0] != "application/json"))


def _rename(node: Any, names: dict[str, str]) -> Any:
    """`node` with every `$ref` to a schema in `names` pointed at its new name."""
    if isinstance(node, dict):
        return {key: (re.sub(r"[^/]+$", lambda m: names.get(m.group(), m.group()), value)
                      if key == "$ref" else _rename(value, names)) for key, value in node.items()}
    if isinstance(node, list):
        return [_rename(value, names) for value in node]
    return node


def _form_names(schemas: dict[str, Any]) -> dict[str, str]:
    """FastAPI names a form body `Body_{operation id}`; the contract names it `{Operation}Form`."""
    return {name: "".join(part.title() for part in name.removeprefix("Body_").split("_")) + "Form"
            for name in schemas if name.startswith("Body_")}


def build(app: FastAPI, models: tuple[type[BaseModel], ...]) -> dict[str, Any]:
    """The app's contract. `models` are schemas routes refer to by `$ref` without FastAPI seeing them (a body a
    route reads by hand)."""
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, which Problem replaces
        schemas.pop(unused, None)
    _, extra = models_json_schema([(model, "validation") for model in (Problem, *models)], ref_template=REF)
    schemas.update(extra["$defs"])
    spec = _rename(spec, names := _form_names(schemas))
    schemas = spec["components"]["schemas"]
    for old, new in names.items():
        schemas[new] = {**schemas.pop(old), "title": new}
    spec["components"]["schemas"] = dict(sorted(schemas.items()))
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            responses.pop("422", None)  # FastAPI's own, in its shape
            for code, description in _shared(path, operation).items():
                responses.setdefault(code, {"description": description})
            streams = EVENT_STREAM in responses.get("200", {}).get("content", {})
            if method == "get" and not streams:
                responses.setdefault("304", {"description": NOT_MODIFIED})
            paged = any(p["name"] == "cursor" for p in operation.get("parameters", ()))
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = {PROBLEM: {"schema": PROBLEM_REF}}
                    if code in ("429", "503"):
                        response["headers"] = RETRY_AFTER
                elif "content" in response:
                    response["content"] = _json_first(response["content"])
                if method == "get" and not streams and code in ("200", "206", "304"):
                    response["headers"] = {**CACHING, **(NEXT if paged and code == "200" else {}),
                                           **(PART if code == "206" else {}), **response.get("headers", {})}
            operation["responses"] = dict(sorted(responses.items()))
    return spec


def document(app: FastAPI, *models: type[BaseModel]) -> None:
    """Serve `build`'s contract as the app's OpenAPI document."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, models)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
