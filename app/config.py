"""Settings, read from the environment (prefix DOORSTEP_) and a local `.env` file."""

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOORSTEP_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./doorstep.db"
    # No default secret: `doorstep init` writes a random one into `.env`; the app refuses to start without one.
    jwt_secret: SecretStr | None = None
    token_minutes: int = 60
    # A refresh token outlives a shift offline: the phone trades it for a new access token before it syncs.
    refresh_days: int = 30
    # Uploads over HTTP are read into a temporary file; bigger ones get 413.
    upload_max_bytes: int = 200 * 1024 * 1024
    page_max: int = 1000
    # PostgreSQL connections the server keeps open, and how many more it may open under load (walk lists at a
    # canvass launch come in bursts; a connection opened per burst costs more than the query).
    db_pool_size: int = 20
    db_max_overflow: int = 20
    # Webhook deliveries: how often the worker looks for due ones, the first retry's wait (doubling after, up to
    # an hour), how many attempts before one is given up, and how long a receiver may take to answer.
    webhook_poll_s: float = 1.0
    webhook_backoff_s: float = 5.0
    webhook_max_attempts: int = 12
    webhook_timeout_s: float = 10.0

    @field_validator("database_url")
    @classmethod
    def async_driver(cls, url: str) -> str:
        """Accept the plain scheme names and pick the async driver the app uses."""
        for plain, driver in (("postgresql://", "postgresql+asyncpg://"), ("postgres://", "postgresql+asyncpg://"),
                              ("sqlite://", "sqlite+aiosqlite://")):
            if url.startswith(plain):
                return driver + url.removeprefix(plain)
        return url

    @field_validator("jwt_secret")
    @classmethod
    def strong_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("DOORSTEP_JWT_SECRET must be at least 32 characters; `doorstep init` makes one")
        return secret
