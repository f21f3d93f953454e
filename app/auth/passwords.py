"""Passwords: the policy a new one must meet, and hashing them with argon2 in a bounded pool of threads.

The policy follows NIST SP 800-63B (section 3.1.1.2): at least 8 characters, at most 256, no composition rules,
refused when common or the account's own email. The common ones are Django's list, shipped with the package:
app/auth/common-passwords.txt.gz is django/contrib/auth/common-passwords.txt.gz from Django 5.2.19 (20,000
passwords by Royce Williams, lower-cased; BSD 3-clause, Copyright (c) Django Software Foundation and individual
contributors).
"""

import gzip
from functools import cache
from pathlib import Path

import anyio
from anyio.lowlevel import RunVar
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import Invalid

MIN_PASSWORD = 8
# Longer passphrases are fine; past this a password is a way to make argon2 (and the request) heavy.
MAX_PASSWORD = 256
COMMON = Path(__file__).with_name("common-passwords.txt.gz")
HASH_THREADS = 2

_hasher = PasswordHasher()
# argon2 takes a fifth of a second of CPU on purpose. Its own few threads, so unauthenticated log-ins and joins
# can't take the default pool that geometry, compression and the database driver share. One per event loop.
_limiter: RunVar[anyio.CapacityLimiter] = RunVar("doorstep_hash_limiter")


@cache
def _dummy_hash() -> str:
    """Verified against when an email is unknown, so a wrong email costs as long as a wrong password. Made on
    first use: every process (each CLI command) would pay a hash at import."""
    return _hasher.hash("not a password anyone has")


@cache
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def check_password(password: str, *, email: str | None, field: str = "password") -> None:
    """Check a new password against the policy. Raises Invalid naming `field`, saying why."""
    if len(password) < MIN_PASSWORD or not password.strip():
        raise Invalid(f"the password needs at least {MIN_PASSWORD} characters, not all spaces", field=field)
    if len(password) > MAX_PASSWORD:
        raise Invalid(f"the password may have at most {MAX_PASSWORD} characters", field=field)
    folded = password.strip().casefold()
    if email and folded in {email.strip().casefold(), email.strip().casefold().split("@")[0]}:
        raise Invalid("the password can't be the email address or its part before the @", field=field)
    if folded in common_passwords():
        raise Invalid("that password is among the most common ones; choose another (a few words make a good one)",
                      field=field)


def start_hashing(threads: int = HASH_THREADS) -> anyio.CapacityLimiter:
    """Give this event loop a fresh pool of `threads` for hashing; returns its limiter."""
    limiter = anyio.CapacityLimiter(threads)
    _limiter.set(limiter)
    return limiter


def hash_limiter() -> anyio.CapacityLimiter:
    """The limiter bounding this event loop's hashing (made with the default size if the app set none)."""
    try:
        return _limiter.get()
    except LookupError:
        return start_hashing()


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password, limiter=hash_limiter())


async def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether the password is the hash's; a missing hash checks a dummy, so unknown emails take as long."""
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False
    return await anyio.to_thread.run_sync(verify, limiter=hash_limiter())
