"""Errors the services raise; the HTTP layer renders them as RFC 9457 problems, the CLI as one line."""

import tomllib
from pathlib import Path
from typing import Any

# Every problem type the API answers with, by the slug of its URI: (status, title, what a client should make of
# it). A table of prose, so it lives in app/problems.toml.
PROBLEM_TYPES: dict[str, tuple[int, str, str]] = {
    slug: (kind["status"], kind["title"], kind["meaning"])
    for slug, kind in tomllib.loads(Path(__file__).with_name("problems.toml").read_text(encoding="utf-8")).items()}


def problem_body(status: int, title: str, slug: str, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem as a dict: the one shape every error answer, and each rejected knock of a sync
    batch, takes."""
    return {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail, **extra}


class AppError(Exception):
    status, title, slug = 500, "Internal error", "internal"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.extra = extra


class NotFound(AppError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(AppError):
    status, title, slug = 409, "Conflict", "conflict"


class Invalid(AppError):
    """Input that parsed but makes no sense; `field` names what is at fault."""

    status, title, slug = 422, "Invalid input", "invalid"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        if field is not None:
            extra["errors"] = [{"field": field, "message": detail}]
        super().__init__(detail, **extra)


class BadFile(AppError):
    """A file that can't be imported at all: wrong format, empty, a missing column, a corrupt value."""

    status, title, slug = 422, "File cannot be imported", "bad-file"


class UnsupportedMedia(BadFile):
    """A file whose content is none of the formats an import accepts; `accepted` lists them."""

    status, title, slug = 415, "Unsupported file format", "unsupported-media-type"

    def __init__(self, detail: str, *, accepted: list[str], field: str = "file", **extra: Any) -> None:
        super().__init__(detail, accepted=accepted, errors=[{"field": field, "message": detail}], **extra)


class TooLarge(AppError):
    status, title, slug = 413, "Request too large", "too-large"


class TooManyRequests(AppError):
    """A rate limit reached; `retry_after` seconds until the next attempt is let through."""

    status, title, slug = 429, "Too many requests", "rate-limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}


class RangeNotSatisfiable(AppError):
    """A `Range` header this answer can't serve; `length`, when known, is the whole answer's in bytes."""

    status, title, slug = 416, "Range not satisfiable", "range-not-satisfiable"

    def __init__(self, detail: str, *, length: int | None = None) -> None:
        super().__init__(detail, **({"length": length} if length is not None else {}))
        self.headers = {"Content-Range": f"bytes */{length}"} if length is not None else {}


class Unauthenticated(AppError):
    status, title, slug = 401, "Not authenticated", "unauthenticated"


class Forbidden(AppError):
    status, title, slug = 403, "Forbidden", "forbidden"
