"""Who is calling: passwords to tokens, tokens and API keys to callers, callers to their rights in a campaign."""

import hashlib
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import jwt
from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiKey, Scope
from app.campaigns.models import Campaign, Membership, Role, User
from app.campaigns.service import find_user, password_matches
from app.db import utcnow
from app.errors import Forbidden, Invalid, NotFound, Unauthenticated

KEY_PREFIX = "dsk_"
ALGORITHM = "HS256"
ISSUER = "doorstep"
REFRESH = "refresh"


@dataclass(frozen=True)
class Caller:
    """A logged-in user, or a campaign's API key with its scopes."""

    user_id: UUID | None = None
    api_key_id: UUID | None = None
    key_campaign_id: int | None = None
    scopes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Access:
    """What a caller may do in one campaign: a member's role, or an API key's scopes."""

    campaign: Campaign
    caller: Caller
    role: Role | None

    @property
    def campaign_id(self) -> int:
        assert self.campaign.id is not None
        return self.campaign.id


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    """The user with this email and password. Raises Unauthenticated."""
    user = await find_user(session, email) if "\x00" not in email else None
    if not await password_matches(user.password_hash if user else None, password) or user is None:
        raise Unauthenticated("Wrong email or password.")
    return user


def issue_token(user_id: UUID, *, secret: str, minutes: int) -> str:
    now = utcnow()
    claims = {"sub": str(user_id), "iat": now, "exp": now + timedelta(minutes=minutes), "iss": ISSUER}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def issue_refresh_token(user_id: UUID, *, secret: str, days: int) -> str:
    """A long-lived token that only buys access tokens (POST /v1/auth/refresh); never an access token itself."""
    now = utcnow()
    claims = {"sub": str(user_id), "iat": now, "exp": now + timedelta(days=days), "iss": ISSUER, "typ": REFRESH}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


async def refresh(session: AsyncSession, token: str, *, secret: str) -> UUID:
    """The user a refresh token stands for. Raises Unauthenticated for anything but a live refresh token."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["sub", "exp"]})
        user_id = UUID(claims["sub"])
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthenticated("The refresh token is expired or invalid; log in again.") from exc
    if claims.get("typ") != REFRESH:
        raise Unauthenticated("That is an access token; send the refresh token from the login.")
    if await session.get(User, user_id) is None:
        raise Unauthenticated("The token's user no longer exists.")
    return user_id


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _token_user(bearer: str, secret: str) -> UUID:
    """The user an access token names. Raises Unauthenticated (the user may no longer exist: callers check)."""
    try:
        claims = jwt.decode(bearer, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["sub", "exp"]})
        user_id = UUID(claims["sub"])
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthenticated("The token is expired or invalid; refresh it or log in again.") from exc
    if claims.get("typ") == REFRESH:
        raise Unauthenticated("A refresh token only buys access tokens: POST it to /v1/auth/refresh.")
    return user_id


def _credential(bearer: str | None, api_key: str | None) -> str | None:
    """The API key sent, as X-API-Key or as a bearer token; None for a user's token."""
    key = api_key or (bearer if bearer and bearer.startswith(KEY_PREFIX) else None)
    if key is None and not bearer:
        raise Unauthenticated("Log in (POST /v1/auth/token) and send `Authorization: Bearer <token>`, "
                              "or send an API key.")
    return key


def _live_key(found: ApiKey | None) -> ApiKey:
    if found is None or found.revoked_at is not None:
        raise Unauthenticated("Unknown or revoked API key.")
    return found


def _key_caller(key: ApiKey) -> Caller:
    return Caller(api_key_id=key.id, key_campaign_id=key.campaign_id, scopes=frozenset(key.scopes.split()))


async def resolve_caller(session: AsyncSession, *, bearer: str | None, api_key: str | None,
                         secret: str) -> Caller:
    """The caller a bearer token or an API key stands for. Raises Unauthenticated."""
    if key := _credential(bearer, api_key):
        found = (await session.execute(select(ApiKey).where(ApiKey.key_hash == _key_hash(key)))).scalar_one_or_none()
        return _key_caller(_live_key(found))
    assert bearer is not None
    user_id = _token_user(bearer, secret)
    if await session.get(User, user_id) is None:
        raise Unauthenticated("The token's user no longer exists.")
    return Caller(user_id=user_id)


async def campaign_access(session: AsyncSession, *, bearer: str | None, api_key: str | None, secret: str,
                          slug: str) -> Access:
    """The caller's access to a campaign, read in one query (every campaign route pays for it).

    Raises Unauthenticated for bad credentials, and NotFound when the caller has no access, so ids can't be
    probed.
    """
    missing = NotFound(f"No campaign {slug!r}.")
    if key := _credential(bearer, api_key):
        row = (await session.execute(select(ApiKey, Campaign).outerjoin(Campaign, Campaign.slug == slug)
                                     .where(ApiKey.key_hash == _key_hash(key)))).one_or_none()
        found, key_campaign = row if row is not None else (None, None)
        caller = _key_caller(_live_key(found))
        if key_campaign is None or caller.key_campaign_id != key_campaign.id:
            raise missing
        return Access(key_campaign, caller, None)
    assert bearer is not None
    user_id = _token_user(bearer, secret)
    # The user (are they still there?), the campaign and their membership: outer joins, so each can be missing.
    connection = await session.connection()
    row = (await connection.execute(MEMBER_ACCESS, {"user": user_id, "slug": slug})).one_or_none()
    if row is None:
        raise Unauthenticated("The token's user no longer exists.")
    if row.id is None or row.role is None:
        raise missing
    campaign = Campaign(id=row.id, slug=row.slug, name=row.name, claim_lapse_hours=row.claim_lapse_hours,
                        created_at=row.created_at)
    return Access(campaign, Caller(user_id=user_id), Role(row.role))


# A member's access, on every request a member makes to a campaign: the user (are they still there?), the
# campaign and the membership, outer-joined so each can be missing. Core, built once: the ORM's work per
# statement cost more than the query.
_user, _campaign, _membership = User.__table__.c, Campaign.__table__.c, Membership.__table__.c
MEMBER_ACCESS = (
    select(_campaign.id, _campaign.slug, _campaign.name, _campaign.claim_lapse_hours, _campaign.created_at,
           _membership.role)
    .select_from(User.__table__
                 .outerjoin(Campaign.__table__, _campaign.slug == bindparam("slug"))
                 .outerjoin(Membership.__table__, and_(_membership.campaign_id == _campaign.id,
                                                       _membership.user_id == _user.id)))
    .where(_user.id == bindparam("user")))


def authorize(access: Access, *, roles: Collection[Role], scope: Scope | None) -> None:
    """Check a member has one of `roles`, or an API key has `scope`. Raises Forbidden."""
    if access.role is not None:
        if access.role not in roles:
            raise Forbidden(f"A {access.role} can't do this; it needs {' or '.join(sorted(roles))}.")
        return
    if scope is None:
        raise Forbidden("API keys can't do this.")
    if scope not in access.caller.scopes:
        raise Forbidden(f"This API key lacks the scope {scope}.")


async def create_api_key(session: AsyncSession, campaign_id: int, *, name: str, scopes: Sequence[Scope],
                         created_by: UUID | None) -> tuple[ApiKey, str]:
    """Make an API key; returns the row and the key, which is not stored and can't be shown again."""
    if not scopes:
        raise Invalid("an API key needs at least one scope", field="scopes")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(campaign_id=campaign_id, name=name.strip(), prefix=key[:12], key_hash=_key_hash(key),
                 scopes=" ".join(sorted({str(s) for s in scopes})), created_by=created_by)
    session.add(row)
    await session.commit()
    return row, key


async def list_api_keys(session: AsyncSession, campaign_id: int) -> Sequence[ApiKey]:
    return (await session.execute(select(ApiKey).where(ApiKey.campaign_id == campaign_id)
                                  .order_by(ApiKey.created_at, ApiKey.id))).scalars().all()


async def revoke_api_key(session: AsyncSession, campaign_id: int, key_id: UUID) -> ApiKey:
    """Revoke a key; revoking twice is harmless. Raises NotFound."""
    row = (await session.execute(select(ApiKey).where(ApiKey.campaign_id == campaign_id,
                                                      ApiKey.id == key_id))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No API key {key_id} in this campaign.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.commit()
    return row
