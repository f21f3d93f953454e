from datetime import datetime
from uuid import UUID

from sqlmodel import Field, SQLModel

from app.auth.scopes import Scope
from app.text import Text


class ApiKeyCreate(SQLModel):
    name: Text = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)


class ApiKeyRead(SQLModel):
    id: UUID
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it by.")
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key itself. It is shown this once and never again.")
