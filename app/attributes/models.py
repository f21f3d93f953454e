"""Voter-file columns a campaign keeps on purpose (typed attributes of people or households), activist tags, and
the do-not-contact marks that keep a door off every list."""

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Attribute(SQLModel, table=True):
    """A column of the voter (or address) file the campaign keeps, declared once: its name, its type, whose it is
    (a person's or a household's) and whether canvassers see it in walk lists."""

    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    name: str = Field(max_length=64)
    # text, integer, number, boolean or date (app.attributes.schemas.Kind).
    kind: str = Field(max_length=16)
    # person or household (the API's `of`).
    applies_to: str = Field(max_length=16)
    canvassers_see: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AttributeValue(SQLModel, table=True):
    """One person's (or household's) value of one attribute; none stored for a blank. Numbers, integers and
    booleans (0, 1) in `number`; text and dates (ISO, so they compare as dates do) in `text`: one typed column to
    filter on, on both databases, with an index each."""

    __tablename__ = "attribute_value"
    __table_args__ = (Index("ix_attribute_value_number", "attribute_id", "number"),
                      Index("ix_attribute_value_text", "attribute_id", "text"),
                      Index("ix_attribute_value_subject", "subject_id"))

    attribute_id: int = Field(foreign_key="attribute.id", primary_key=True, ondelete="CASCADE")
    # The person's or the household's id, as the attribute's `of` says.
    subject_id: int = Field(primary_key=True)
    number: float | None = None
    text: str | None = Field(default=None, max_length=200)


class Tag(SQLModel, table=True):
    """An activist code (`volunteer_prospect`): set on people by an import or by a knock's answers."""

    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    name: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PersonTag(SQLModel, table=True):
    __tablename__ = "person_tag"
    __table_args__ = (Index("ix_person_tag_person", "person_id"),)

    tag_id: int = Field(foreign_key="tag.id", primary_key=True, ondelete="CASCADE")
    person_id: int = Field(foreign_key="person.id", primary_key=True, ondelete="CASCADE")
    # import, answer or organizer.
    source: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
