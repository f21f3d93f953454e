from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, StringConstraints, field_validator, model_validator
from sqlmodel import Field, SQLModel

from app.text import no_nul
from app.values import Id

# Ids phones send back in answers and results: short, stable, readable in an export.
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
# Stripped, then measured (" " is no label), then refused if it holds a NUL.
Label = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True), AfterValidator(no_nul)]


class Choice(SQLModel):
    id: Slug
    label: Label
    tag: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None = Field(default=None, description=(
        "A tag (an activist code such as `volunteer_prospect`) set on the person spoken to when they give this "
        "answer."))


class Question(SQLModel):
    id: Slug = Field(description="Answers are keyed by it: `support`, `issue_1`.")
    text: Annotated[str, StringConstraints(min_length=1, max_length=1000, strip_whitespace=True),
                    AfterValidator(no_nul)]
    kind: Literal["single", "multiple", "text"] = Field(
        description="single: one choice; multiple: any of the choices; text: a short free answer.")
    choices: list[Choice] = Field(default=[], max_length=50)

    @model_validator(mode="after")
    def _choices_fit_kind(self) -> "Question":
        if self.kind == "text" and self.choices:
            raise ValueError(f"question {self.id!r} takes text, so it has no choices")
        if self.kind != "text" and len(self.choices) < 2:
            raise ValueError(f"question {self.id!r} needs at least two choices")
        ids = [c.id for c in self.choices]
        if len(set(ids)) != len(ids):
            raise ValueError(f"question {self.id!r} has a choice id twice")
        return self


class ResultCode(SQLModel):
    code: Slug
    label: Label
    contacted: bool = Field(default=False, description="Whether this result counts as talking to someone.")


class ScriptIn(SQLModel):
    name: Label
    questions: list[Question] = Field(default=[], max_length=100)
    result_codes: list[ResultCode] = Field(
        default=[], max_length=50,
        description="The campaign's own door results, beside the standard ones every script has.")

    @field_validator("questions")
    @classmethod
    def _unique_questions(cls, questions: list[Question]) -> list[Question]:
        ids = [q.id for q in questions]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"question ids must be unique: {', '.join(twice)} appear more than once")
        return questions


class ScriptUses(SQLModel):
    default: bool = Field(default=False, description="Whether turfs with no other script use this one.")
    precincts: list[Annotated[str, StringConstraints(max_length=64), AfterValidator(no_nul)]] = Field(
        default=[], max_length=10000, description="Codes of the precincts whose turfs use it.")
    turf_ids: list[Id] = Field(default=[], max_length=100000, description="Turfs using it whatever their precinct.")


class ScriptVersionRead(SQLModel):
    script_id: int
    version: int
    name: str
    questions: list[Question]
    result_codes: list[ResultCode] = Field(description="Every door result: the standard ones, then the campaign's.")
    frozen: bool = Field(description="Put to use: a change makes a new version.")
    created_at: datetime


class VersionBrief(SQLModel):
    version: int
    frozen: bool
    created_at: datetime


class ScriptRead(SQLModel):
    id: int
    name: str
    version: int = Field(description="The current version.")
    uses: ScriptUses
    turfs_using: int = Field(description="Active turfs whose walk lists carry this script.")
    current: ScriptVersionRead
    versions: list[VersionBrief]
    created_at: datetime
    updated_at: datetime


class ScriptPage(SQLModel):
    items: list[ScriptRead]
