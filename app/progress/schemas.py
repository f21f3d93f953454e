from datetime import datetime

from pydantic import BaseModel, Field


class Figures(BaseModel):
    doors: int = Field(description="Doors (households) in scope.")
    doors_attempted: int = Field(description="Doors knocked at least once (in the window, if one is given).")
    doors_contacted: int = Field(description="Doors where someone was reached (a result that counts as contact).")
    knocks: int = Field(description="Knocks, retries included.")
    results: dict[str, int] = Field(description="Knocks by result code.")
    share_attempted: float = Field(description="doors_attempted / doors: the share done.")
    share_contacted: float = Field(description="doors_contacted / doors.")
    last_knock_at: datetime | None = Field(description="The latest knock, in corrected time.")


class TurfProgress(Figures):
    id: int
    name: str
    precinct: str = Field(description="The precinct's code.")
    holders: int = Field(description="Canvassers holding the turf now.")


class PrecinctProgress(Figures):
    code: str
    name: str


class CampaignProgress(Figures):
    precincts: int
    turfs: int = Field(description="Active turfs.")
