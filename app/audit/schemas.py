import uuid
from datetime import datetime

from sqlmodel import SQLModel


class AuditEventRead(SQLModel):
    """One read of personal data: who (a user or an API key), what, when, from where, and how many records."""

    id: int
    at: datetime
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    action: str
    subject: str
    records: int | None
    client: str | None
    user_agent: str | None


class AuditPage(SQLModel):
    items: list[AuditEventRead]
    next_cursor: str | None
