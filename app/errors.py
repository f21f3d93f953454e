"""Errors the services raise; the HTTP layer renders them as RFC 9457 problems, the CLI as one line."""

from typing import Any

# Every problem type the API answers with, by the slug of its URI (`/problems/{slug}`): its status, its title
# and what a client should make of it. One type a kind of error; `/problems/{slug}` serves each as a short page
# (RFC 9457 §3.1.1: a type URI that resolves to its documentation).
PROBLEM_TYPES: dict[str, tuple[int, str, str]] = {
    "invalid": (422, "Invalid input", "A field, the body or the URL holds a value the API doesn't take. `errors` "
                "names each field at fault; fix those and send again."),
    "bad-file": (422, "File cannot be imported", "The uploaded file was read but can't be imported whole (a "
                 "missing column, a row that can't be read, SQL or a link inside it); nothing of it was kept."),
    "unsupported-media-type": (415, "Unsupported file format", "The file or body is in a format this route "
                               "doesn't read; `accepted` lists the ones it does."),
    "too-large": (413, "Request too large", "The body is over the route's limit; send less at a time."),
    "rate-limited": (429, "Too many requests", "Too many attempts from this account or address; wait the "
                     "seconds `Retry-After` gives."),
    "unauthenticated": (401, "Not authenticated", "No credentials, or ones that are wrong, expired or ended: log "
                        "in again, or send a valid API key."),
    "forbidden": (403, "Forbidden", "The caller's role or API key's scopes don't allow this."),
    "not-found": (404, "Not found", "Nothing by that id, or not in a campaign the caller belongs to (the two look "
                  "alike on purpose)."),
    "method-not-allowed": (405, "Method not allowed", "The route exists but doesn't take this method."),
    "conflict": (409, "Conflict", "The request clashes with the current state (a name taken, a turf held or "
                 "worked, another job running); the detail says which. Read the state again first."),
    "gone": (410, "No longer valid", "It existed but can't be used any more (a join code revoked, expired or "
             "used up)."),
    "http": (400, "Bad request", "The request couldn't be read as HTTP the API understands."),
    "internal": (500, "Internal error", "A fault on the server's side; it is logged. Trying again may not help."),
    "unavailable": (503, "Service unavailable", "The database can't be reached just now (down, restarting or "
                    "busy); try again after the seconds `Retry-After` gives."),
}


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


class Unauthenticated(AppError):
    status, title, slug = 401, "Not authenticated", "unauthenticated"


class Forbidden(AppError):
    status, title, slug = 403, "Forbidden", "forbidden"
