"""Settings, read from the environment (prefix DOORSTEP_) and a local `.env` file."""

from typing import Annotated
from urllib.parse import urlsplit

from limits import parse as parse_rate
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOORSTEP_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./doorstep.db"
    # No default secret: `doorstep init` writes a random one into `.env`; the app refuses to start without one.
    jwt_secret: SecretStr | None = None
    token_minutes: int = 60
    # A refresh token outlives a shift offline: the phone trades it for a new access token before it syncs.
    refresh_days: int = 30
    # Log-in, refresh, join and password-change attempts allowed (the `limits` notation, e.g. "10/minute"), per
    # account (an email, a refresh token's user) and per client address. Each server process counts its own.
    rate_per_account: str = "10/minute"
    rate_per_address: str = "60/minute"
    # Threads hashing and checking passwords at once (argon2, a fifth of a second of CPU each), apart from the
    # pool geometry and compression use, so unauthenticated calls can't take every worker thread.
    hash_threads: int = 2
    # Uploads over HTTP are read into a temporary file; bigger ones get 413.
    upload_max_bytes: int = 200 * 1024 * 1024
    # JSON request bodies are refused with 413 past this size, before they are parsed (sync has its own bound).
    json_max_bytes: int = 1024 * 1024
    # POST .../precincts carries a whole state's precincts as GeoJSON.
    precinct_body_max_bytes: int = 256 * 1024 * 1024
    # Vertices in one geometry: Cambridge's largest precinct has 325, a drawn turf a few dozen; the rest is headroom
    # for rivers and coastlines, short of shapes whose checks would hold a request for seconds.
    turf_max_vertices: int = 10_000
    precinct_max_vertices: int = 100_000
    page_max: int = 1000
    # A GeoJSON collection asked for whole (no `limit`) is read and streamed this many features a query.
    geojson_page: int = Field(default=1000, ge=1)
    # Progress streams one caller (a user, an API key) may hold open on one server process.
    streams_per_caller: int = Field(default=8, ge=1)
    # A quiet progress stream sends a comment this often (proxies close silent connections), and its caller's
    # access is checked again as often.
    stream_keep_alive_s: float = Field(default=15.0, gt=0)
    # A canvass launch lasts hours, and is planned weeks ahead at most: its pool is reserved from its creation to
    # its end, so a longer or further event would keep turfs from self-claims that long.
    event_max_hours: int = 24
    event_max_days_ahead: int = 30
    # PostgreSQL connections the server keeps open, and how many more it may open under load (walk lists at a
    # canvass launch come in bursts; a connection opened per burst costs more than the query).
    db_pool_size: int = 20
    db_max_overflow: int = 20
    # How long the server waits on PostgreSQL before it answers 503: to connect, for a free pooled connection,
    # and for one statement (a hung server holds no request for ever; the CLI's long imports set none).
    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    db_statement_timeout_s: float = Field(default=60.0, gt=0)
    # Webhook deliveries: how often the worker looks for due ones, the first retry's wait (doubling after, up to
    # an hour), how many attempts before one is given up, and how long a receiver may take to answer.
    webhook_poll_s: float = 1.0
    webhook_backoff_s: float = 5.0
    webhook_max_attempts: int = 12
    webhook_timeout_s: float = 10.0
    # Webhooks reach only the public internet (checked at registration, within webhook_timeout_s, and at each
    # delivery); this lets them reach loopback and private addresses too, for development. Never a URL's user.
    webhook_allow_private_targets: bool = False
    # Strict-Transport-Security's max-age, for deployments behind TLS; 0 (the default) sends no HSTS header.
    hsts_max_age_s: int = 0
    # The audit of voter-data reads is written in batches this often; a fuller buffer is written at once.
    audit_flush_s: float = 1.0
    audit_buffer_max: int = 10_000
    # Web pages on other origins that may call the API from a browser (CORS): none by default. Comma-separated
    # origins (`https://dashboard.example.org,http://localhost:5173`), or `*` for any.
    cors_origins: Annotated[list[str], NoDecode] = []

    @field_validator("database_url")
    @classmethod
    def async_driver(cls, url: str) -> str:
        """Accept the plain scheme names and pick the async driver the app uses."""
        for plain, driver in (("postgresql://", "postgresql+asyncpg://"), ("postgres://", "postgresql+asyncpg://"),
                              ("sqlite://", "sqlite+aiosqlite://")):
            if url.startswith(plain):
                return driver + url.removeprefix(plain)
        return url

    @field_validator("rate_per_account", "rate_per_address")
    @classmethod
    def rate(cls, rate: str) -> str:
        parse_rate(rate)  # a ValueError naming the rate, at start-up rather than at the first log-in
        return rate

    @field_validator("jwt_secret")
    @classmethod
    def strong_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("DOORSTEP_JWT_SECRET must be at least 32 characters; `doorstep init` makes one")
        return secret

    @field_validator("cors_origins", mode="before")
    @classmethod
    def origins(cls, value: str | list[str]) -> list[str]:
        """Origins as a browser sends them: a scheme, a host and maybe a port; nothing after."""
        items = [o.strip() for o in value.split(",")] if isinstance(value, str) else value
        origins = [o for o in items if o]
        for origin in origins:
            if origin == "*":
                continue
            parts = urlsplit(origin)
            try:
                port = parts.port
            except ValueError:
                port = -1
            # Matched as written against the Origin a browser sends: lower case, no wildcard, a real port.
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query \
                    or parts.fragment or parts.username or origin.endswith("/") or "*" in origin \
                    or origin != origin.lower() or port == -1 or port == 0:
                raise ValueError(f"DOORSTEP_CORS_ORIGINS: {origin!r} is no origin as a browser sends it "
                                 "(scheme://host[:port] in lower case, no path, no wildcard)")
        return origins
