"""Survey scripts: the questions and door results a canvasser records, kept in immutable versions once used."""

from datetime import datetime

from sqlalchemy import Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Script(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("campaign_id", "name"),
        # At most one default script per campaign: the one turfs use when nothing else is set.
        Index("uq_script_default", "campaign_id", unique=True, postgresql_where=text("is_default"),
              sqlite_where=text("is_default")),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    # The current version's number; older versions stay for the results that answered them.
    version: int = 1
    is_default: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ScriptVersion(SQLModel, table=True):
    """One version of a script. Frozen once the script is put to use: a change then makes a new version."""

    __tablename__ = "script_version"
    __table_args__ = (UniqueConstraint("script_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True, ondelete="CASCADE")
    script_id: int = Field(foreign_key="script.id", ondelete="CASCADE")
    version: int
    name: str = Field(max_length=200)
    # JSON arrays, stored as text: walk lists embed them as they are, without parsing.
    questions: str = Field(sa_type=Text)
    result_codes: str = Field(sa_type=Text)
    frozen: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
