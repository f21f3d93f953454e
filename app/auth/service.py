"""Who is calling: passwords to tokens, tokens and API keys to callers, callers to their rights in a campaign."""

import hashlib
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiKey, LoginSession
from app.auth.passwords import check_password, hash_password, password_matches
from app.auth.scopes import Scope
from app.auth.sessions import end_sessions
from app.campaigns.models import Campaign, Membership, User
from app.campaigns.roles import Role
from app.campaigns.service import find_user
from app.db import begin_write, utcnow
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


WRONG_LOGIN = "Wrong email or password."


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    """The user with this email and password, not disabled. Raises Unauthenticated, the same for every reason."""
    user = await find_user(session, email) if "\x00" not in email else None
    if user is not None:
        session.expunge(user)
    # End the read: no pooled connection waits in a transaction while argon2 works.
    await session.rollback()
    if not await password_matches(user.password_hash if user else None, password) or user is None:
        raise Unauthenticated(WRONG_LOGIN)
    if user.disabled_at is not None:
        raise Unauthenticated(WRONG_LOGIN)
    return user


def _timestamp(at: datetime) -> float:
    # A float, not JWT's usual whole seconds: a token made just after a password change must not count as
    # issued before it (see tokens_valid_after).
    return at.timestamp()


def issue_token(user_id: UUID, *, secret: str, minutes: int, sid: UUID | None = None) -> str:
    """An access token. Logins name their session (`sid`), so logging out ends the token; a token without one
    (tests and benches mint such) is checked only against the user's disabled_at and tokens_valid_after."""
    now = utcnow()
    claims: dict[str, Any] = {"sub": str(user_id), "iat": _timestamp(now),
                              "exp": _timestamp(now + timedelta(minutes=minutes)), "iss": ISSUER}
    if sid is not None:
        claims["sid"] = str(sid)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def issue_refresh_token(user_id: UUID, *, secret: str, days: int, sid: UUID | None = None,
                        jti: str | None = None) -> str:
    """A long-lived token that only buys access tokens (POST /v1/auth/refresh); never an access token itself.

    Only one naming its session (`sid`) and that session's current one-time id (`jti`) is accepted.
    """
    now = utcnow()
    claims: dict[str, Any] = {"sub": str(user_id), "iat": _timestamp(now),
                              "exp": _timestamp(now + timedelta(days=days)), "iss": ISSUER, "typ": REFRESH}
    if sid is not None:
        claims |= {"sid": str(sid), "jti": jti}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


@dataclass(frozen=True)
class Tokens:
    """What a login answers: an access token and the refresh token of its session."""

    access_token: str
    refresh_token: str
    session_id: UUID


def _session_tokens(user_id: UUID, sid: UUID, jti: str, *, secret: str, minutes: int, days: int) -> Tokens:
    return Tokens(issue_token(user_id, secret=secret, minutes=minutes, sid=sid),
                  issue_refresh_token(user_id, secret=secret, days=days, sid=sid, jti=jti), sid)


async def open_session(session: AsyncSession, user_id: UUID, *, secret: str, minutes: int, days: int,
                       commit: bool = True) -> Tokens:
    """Start a login session for the user; returns its first tokens. With `commit=False`, only adds the row."""
    if commit:
        await begin_write(session)
    jti = secrets.token_urlsafe(24)
    row = LoginSession(user_id=user_id, refresh_jti=jti, expires_at=utcnow() + timedelta(days=days))
    session.add(row)
    if commit:
        await session.commit()
    else:
        await session.flush()
    return _session_tokens(user_id, row.id, jti, secret=secret, minutes=minutes, days=days)


def _refresh_claims(token: str, secret: str) -> tuple[UUID, UUID, str]:
    """The user, session and one-time id a refresh token names. Raises Unauthenticated."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["sub", "exp"]})
        user_id = UUID(claims["sub"])
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthenticated("The refresh token is expired or invalid; log in again.") from exc
    if claims.get("typ") != REFRESH:
        raise Unauthenticated("That is an access token; send the refresh token from the login.")
    try:
        return user_id, UUID(claims["sid"]), str(claims["jti"])
    except (KeyError, TypeError, ValueError) as exc:
        # Refresh tokens from before sessions existed name none: they can't be revoked, so they don't count.
        raise Unauthenticated("The refresh token is expired or invalid; log in again.") from exc


def refresh_user(token: str, *, secret: str) -> UUID | None:
    """The user a genuine refresh token names (for rate limits), or None."""
    try:
        return _refresh_claims(token, secret)[0]
    except Unauthenticated:
        return None


async def refresh(session: AsyncSession, token: str, *, secret: str, minutes: int, days: int) -> Tokens:
    """Rotate a session's refresh token: new tokens for the current one, which is spent.

    A spent refresh token sent again was copied (or the phone is replaying): the session is revoked, so neither
    copy buys anything more (OAuth 2.0 Security BCP 4.14.2). Raises Unauthenticated.
    """
    user_id, sid, jti = _refresh_claims(token, secret)
    await begin_write(session)
    now, new_jti = utcnow(), secrets.token_urlsafe(24)
    # One statement: of two requests racing with one token, only one rotates.
    rotated = await session.execute(
        update(LoginSession).where(LoginSession.id == sid, LoginSession.user_id == user_id,
                                   LoginSession.refresh_jti == jti, LoginSession.revoked_at.is_(None),
                                   LoginSession.expires_at > now)
        .values(refresh_jti=new_jti, rotated_at=now, expires_at=now + timedelta(days=days))
        .execution_options(synchronize_session=False))
    user = await session.get(User, user_id)
    if rotated.rowcount and user is not None and user.disabled_at is None:
        await session.commit()
        return _session_tokens(user_id, sid, new_jti, secret=secret, minutes=minutes, days=days)
    if not rotated.rowcount:
        reused = await session.execute(
            update(LoginSession).where(LoginSession.id == sid, LoginSession.user_id == user_id,
                                       LoginSession.refresh_jti != jti, LoginSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason="reuse").execution_options(synchronize_session=False))
        await session.commit()
        if reused.rowcount:
            raise Unauthenticated("This refresh token was used already, so the login was ended; log in again.")
    await session.rollback()
    raise Unauthenticated("The login was ended (logged out, a password change, or an account change); "
                          "log in again.")


async def log_out(session: AsyncSession, token: str, *, secret: str) -> None:
    """End the session a refresh token names; ending one that is over is harmless. Raises Unauthenticated."""
    user_id, sid, _ = _refresh_claims(token, secret)
    await begin_write(session)
    await session.execute(update(LoginSession).where(LoginSession.id == sid, LoginSession.user_id == user_id,
                                                     LoginSession.revoked_at.is_(None))
                          .values(revoked_at=utcnow(), revoked_reason="logout")
                          .execution_options(synchronize_session=False))
    await session.commit()


async def change_password(session: AsyncSession, user_id: UUID, *, current: str, new: str, secret: str,
                          minutes: int, days: int) -> Tokens:
    """Set a new password: every token the user holds stops working, and a new session starts for the caller.

    Raises Invalid naming `new_password` for one the policy refuses, `current_password` for a wrong one.
    """
    user = await session.get(User, user_id)
    if user is None:
        raise Unauthenticated("The token's user no longer exists.")
    email, old_hash = user.email, user.password_hash
    await session.rollback()  # no connection held in a transaction while argon2 works
    check_password(new, email=email, field="new_password")
    if not await password_matches(old_hash, current):
        raise Invalid("that is not the account's current password", field="current_password")
    new_hash = await hash_password(new)
    await begin_write(session)
    await session.execute(update(User).where(User.id == user_id).values(password_hash=new_hash)
                          .execution_options(synchronize_session=False))
    await end_sessions(session, user_id, reason="password")
    tokens = await open_session(session, user_id, secret=secret, minutes=minutes, days=days, commit=False)
    await session.commit()
    return tokens


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    sid: UUID | None
    issued: datetime


def _token_claims(bearer: str, secret: str) -> AccessClaims:
    """What an access token names. Raises Unauthenticated (the user and session may be gone: see _check_live)."""
    try:
        claims = jwt.decode(bearer, secret, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["sub", "exp", "iat"]})
        user_id = UUID(claims["sub"])
        sid = UUID(claims["sid"]) if "sid" in claims else None
        issued = datetime.fromtimestamp(float(claims["iat"]), UTC)
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, OSError) as exc:
        raise Unauthenticated("The token is expired or invalid; refresh it or log in again.") from exc
    if claims.get("typ") == REFRESH:
        raise Unauthenticated("A refresh token only buys access tokens: POST it to /v1/auth/refresh.")
    return AccessClaims(user_id, sid, issued)


def _check_live(row: Any, claims: AccessClaims) -> None:
    """Refuse a token whose user is gone or disabled, issued before the user's cut-off, or whose session ended.

    `row` is MEMBER_ACCESS's. Raises Unauthenticated.
    """
    if row is None:
        raise Unauthenticated("The token's user no longer exists.")
    if row.disabled_at is not None or (row.tokens_valid_after is not None and claims.issued < row.tokens_valid_after):
        raise Unauthenticated("This token was ended (a password change or an account change); log in again.")


def _check_session(row: Any, claims: AccessClaims) -> None:
    if claims.sid is not None and (row.session_id is None or row.revoked_at is not None
                                   or row.session_expires_at <= utcnow()):
        raise Unauthenticated("This login was ended (logged out, or its refresh token reused); log in again.")


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
    claims = _token_claims(bearer, secret)
    connection = await session.connection()
    row = (await connection.execute(MEMBER_ACCESS, {"user": claims.user_id, "slug": None, "sid": claims.sid})
           ).one_or_none()
    _check_live(row, claims)
    _check_session(row, claims)
    return Caller(user_id=claims.user_id)


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
    claims = _token_claims(bearer, secret)
    user_id = claims.user_id
    # The user (are they still there?), the campaign, their membership and the token's session: outer joins, so
    # each can be missing.
    connection = await session.connection()
    row = (await connection.execute(MEMBER_ACCESS, {"user": user_id, "slug": slug, "sid": claims.sid})
           ).one_or_none()
    _check_live(row, claims)
    # Not a member comes before an ended session: a removed member's token (their sessions revoked) gets the
    # campaign's 404, as for any campaign not theirs; everywhere else it gets 401.
    if row.id is None or row.role is None:
        raise missing
    _check_session(row, claims)
    campaign = Campaign(id=row.id, slug=row.slug, name=row.name, claim_lapse_hours=row.claim_lapse_hours,
                        created_at=row.created_at, event_max_turfs=row.event_max_turfs)
    return Access(campaign, Caller(user_id=user_id), Role(row.role))


# A member's access, on every request a member makes to a campaign: the user (are they still there, not
# disabled, the token not older than their cut-off?), the campaign, the membership and the token's session
# (not revoked?), outer-joined so each can be missing; with no slug or no sid, that part is missing. Core, built
# once: the ORM's work per statement cost more than the query.
_user, _campaign, _membership = User.__table__.c, Campaign.__table__.c, Membership.__table__.c
_session = LoginSession.__table__.c
MEMBER_ACCESS = (
    select(_campaign.id, _campaign.slug, _campaign.name, _campaign.claim_lapse_hours, _campaign.created_at,
           _campaign.event_max_turfs, _membership.role, _user.disabled_at, _user.tokens_valid_after,
           _session.id.label("session_id"), _session.revoked_at, _session.expires_at.label("session_expires_at"))
    .select_from(User.__table__
                 .outerjoin(Campaign.__table__, _campaign.slug == bindparam("slug"))
                 .outerjoin(Membership.__table__, and_(_membership.campaign_id == _campaign.id,
                                                       _membership.user_id == _user.id))
                 .outerjoin(LoginSession.__table__, and_(_session.id == bindparam("sid"),
                                                         _session.user_id == _user.id)))
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
    # A writer from the start: on SQLite a read transaction (the access check) can't become one once a cut or a
    # sync has committed since ("database is locked" at once).
    await begin_write(session)
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
    await begin_write(session)
    row = (await session.execute(select(ApiKey).where(ApiKey.campaign_id == campaign_id,
                                                      ApiKey.id == key_id))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No API key {key_id} in this campaign.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.commit()
    return row
