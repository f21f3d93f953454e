"""Rate limits on the calls that take a password or a refresh token: per account and per client address.

Kept in memory by the `limits` library (a moving window), one store per app: each server process counts its own,
so with N workers an attacker gets N times the rate (the README says so).
"""

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from app.errors import TooManyRequests


class RateLimits:
    """The limits of one app: `rate_per_account` and `rate_per_address` for each action (login, join...)."""

    def __init__(self, *, per_account: str, per_address: str) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_account: RateLimitItem = parse(per_account)
        self.per_address: RateLimitItem = parse(per_address)

    async def hit(self, action: str, *, account: str | None, address: str | None) -> None:
        """Count one attempt at `action`. Raises TooManyRequests, with the seconds to wait, past either limit."""
        for item, kind, key in ((self.per_address, "address", address), (self.per_account, "account", account)):
            if key is None:
                continue
            if not await self.limiter.hit(item, action, kind, key.strip().lower()):
                stats = await self.limiter.get_window_stats(item, action, kind, key.strip().lower())
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                per = "this account" if kind == "account" else "this address"
                raise TooManyRequests(f"Too many attempts from {per}; try again in {wait} s.", retry_after=wait)
