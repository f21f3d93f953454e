"""Rate limits in the HTTP layer: the client's address comes from the request, the limits from the app."""

from fastapi import Request

from app.auth.ratelimit import RateLimits


async def rate_limit(request: Request, action: str, *, account: str | None) -> None:
    """Count an attempt at `action` for the account and the client's address. Raises TooManyRequests (429).

    The address is the connection's: behind a proxy, run uvicorn with --proxy-headers and --forwarded-allow-ips
    so it is the client's, or every client shares the proxy's limit.
    """
    limits: RateLimits = request.app.state.rate_limits
    await limits.hit(action, account=account, address=request.client.host if request.client else None)
