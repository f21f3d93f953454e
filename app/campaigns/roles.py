"""A member's role in a campaign, without the tables: the command line offers it as a choice before anything
of the database is imported."""

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    organizer = "organizer"
    host = "host"
    canvasser = "canvasser"
