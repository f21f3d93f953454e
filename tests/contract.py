"""Every answer the suite receives from the app, held to the committed contract (openapi/openapi.json): its status
must be one its operation declares, its media type one declared for that status, and its body must match the
schema declared for both. tests/conftest.py puts `checked` on httpx's ASGI transport for the whole run, so the
hand-built hot answers (walk lists, sync results, progress, the results feed) can't drift from the contract.
"""

import functools
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs

SPEC: dict[str, Any] = json.loads((Path(__file__).resolve().parents[1] / "openapi" / "openapi.json").read_text())
JSON_TYPES = ("application/json", "application/problem+json", "application/geo+json")
class ContractViolation(AssertionError):
    """An answer the contract doesn't describe."""


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


# Literal paths before templated ones of the same shape: fewer parameters first.
PATHS = sorted(((_pattern(path), path) for path in SPEC["paths"]), key=lambda p: p[1].count("{"))


def operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The contract's path template and operation for a request, or None when it has none. HEAD is GET's."""
    for pattern, template in PATHS:
        if pattern.match(path):
            found = SPEC["paths"][template].get("get" if method == "HEAD" else method.lower())
            return (template, found) if found is not None else None
    return None


@functools.cache
def _validator(template: str, method: str, status: str, media: str) -> Any:
    schema = SPEC["paths"][template][method]["responses"][status]["content"][media]["schema"]
    # The document's components ride along, so `#/components/schemas/...` resolves against this root.
    return jsonschema_rs.validator_for({**schema, "components": SPEC["components"]})


def _problem_validator() -> Any:
    return jsonschema_rs.validator_for({"$ref": "#/components/schemas/Problem", "components": SPEC["components"]})


PROBLEM = _problem_validator()


def violations(method: str, path: str, status: int, media: str, body: bytes) -> list[str]:
    """What is wrong with this answer by the contract; empty when it holds."""
    media = media.split(";")[0].strip().lower()
    if not path.startswith("/v1/") or method == "OPTIONS":
        # Not the API: its docs (tests/test_docs.py), the problem types' pages, a browser's CORS preflight.
        return []
    found = operation(method, path)
    if found is None:
        # No such operation: a 404 or 405 problem is the only fitting answer.
        if status not in (404, 405) or media != "application/problem+json":
            return [f"{status} {media} for an operation the contract doesn't have"]
        if method == "HEAD":
            return []
        return [f"not a Problem: {e.message}" for e in PROBLEM.iter_errors(json.loads(body))]
    template, op = found
    declared = op["responses"].get(str(status))
    if declared is None:
        return [f"status {status} is not declared (declared: {', '.join(op['responses'])})"]
    content = declared.get("content")
    if not content:
        return [] if not body else [f"status {status} declares no body, got {len(body)} bytes of {media}"]
    if media not in content:
        return [f"{status} answered {media!r}; declared: {', '.join(content)}"]
    if method == "HEAD" or status == 206 or media not in JSON_TYPES:
        return []  # no body, a part of one (Range), or text (CSV, an event stream) the contract types as a string
    try:
        instance = json.loads(body)
    except ValueError as exc:
        return [f"{status} {media} body is not JSON: {exc}"]
    validator = _validator(template, "get" if method == "HEAD" else method.lower(), str(status), media)
    return [f"{status} {media} at {'/'.join(map(str, e.instance_path)) or 'the root'}: {e.message}"
            for e in validator.iter_errors(instance)]


Handle = Callable[[httpx.ASGITransport, httpx.Request], Awaitable[httpx.Response]]


def checked(handle: Handle) -> Handle:
    """`handle` (ASGITransport.handle_async_request) raising ContractViolation on an answer the contract doesn't
    describe."""
    @functools.wraps(handle)
    async def check(transport: httpx.ASGITransport, request: httpx.Request) -> httpx.Response:
        response = await handle(transport, request)
        raw = b"".join([chunk async for chunk in response.stream])
        # Decoded (gzip) to check; the client gets the bytes as they came.
        body = httpx.Response(response.status_code, headers=response.headers, content=raw).read()
        faults = violations(request.method, request.url.path, response.status_code,
                            response.headers.get("content-type", ""), body)
        if faults:
            raise ContractViolation(f"{request.method} {request.url.path}: " + "; ".join(faults[:5]))
        return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(raw),
                              extensions=response.extensions)
    return check
